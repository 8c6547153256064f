"""Attacks, their sanity checks and adversarial training, on small models the tests train."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepfake_detection import attacks
from deepfake_detection.evaluation import robustness
from deepfake_detection.inference.detector import Detector
from deepfake_detection.training.config import PhaseConfig
from deepfake_detection.training.trainer import catastrophic_overfitting, train

from .test_training import tiny_config


@pytest.fixture(scope="module")
def batch(tiny_bundle):
    detector = Detector.load(tiny_bundle[1])
    root = tiny_bundle[0] / "data" / "test"
    paths = sorted(str(p) for p in root.rglob("*.png"))
    x = np.stack([detector.prepare(p)[0] for p in paths])
    y = np.array([1 if "/FAKE/" in p else 0 for p in paths])
    return detector, x, y


@pytest.mark.parametrize("text, value", [("8/255", 8.0), ("8", 8.0), ("1", 1.0),
                                         ("0.05", 12.75), ("2/255", 2.0),
                                         ("0.03137254901960784/1", 8.0)])
def test_eps_is_read_in_255ths(text, value):
    assert attacks.parse_eps(text) == pytest.approx(value, rel=1e-6)


def test_the_designs_eps_is_a_fraction_of_the_range_and_reports_say_so():
    assert attacks.describe_eps("0.05") == ("12.75/255 (given as 0.05, a fraction of the 0..255 "
                                            "pixel range)")
    assert attacks.describe_eps("8") == "8/255 (given as 8, a number of 1/255 steps)"


@pytest.mark.parametrize("text", ["0", "-2", "300", "abc", "8/0", "nan"])
def test_nonsense_eps_is_refused(text):
    with pytest.raises(ValueError, match="eps"):
        attacks.parse_eps(text)


def test_in_graph_fgsm_equals_art_fgsm(batch):
    detector, x, y = batch
    art = attacks.generate(attacks.art_classifier(detector.model, 32), "fgsm", x, y, 4.0)
    ours = attacks.fgsm_tf(detector.model, x, y.astype("float32"), 4.0).numpy()
    np.testing.assert_allclose(ours, art, atol=1e-4)


def test_two_logit_softmax_is_the_sigmoid(batch):
    import tensorflow as tf

    detector, x, _ = batch
    two = tf.nn.softmax(attacks.TwoLogits(detector.model)(x[:4])).numpy()[:, 1]
    # The attack target is the model's own logit, before the bundle's temperature.
    np.testing.assert_allclose(two, 1 / (1 + np.exp(-detector.logits(x[:4]))), atol=1e-6)


def test_pgd_stays_in_budget_and_range(batch):
    detector, x, y = batch
    x_adv = attacks.pgd_tf(detector.model, x, y, 8.0, steps=5, step_size=2.0, seed=1).numpy()
    check = attacks.perturbation_check(x, x_adv, 8.0)
    assert check["within_eps"] and check["nonzero"] and check["in_range"]
    assert check["linf_255"] == pytest.approx(8.0, abs=1e-3)


def test_sweep_sanity_checks_hold_and_are_seeded(batch):
    detector, x, y = batch
    plan = robustness.AttackPlan(pgd_steps=5, progress=False)
    result = robustness.sweep(detector, x, y, plan, eps_list=(2.0, 8.0))
    assert result["sanity"]["all_passed"], result["sanity"]
    pgd8 = next(r for r in result["rows"] if r["attack"] == "pgd" and r["eps_255"] == 8.0)
    # The synthetic task's checkerboard is far above 8/255, so it only dents this model; that
    # an undefended detector on real images breaks is tested in test_shared_data.py.
    assert pgd8["accuracy"] < result["clean_accuracy"] and sum(pgd8["flips"].values()) > 0
    again = robustness.sweep(detector, x, y, plan, eps_list=(2.0, 8.0))
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in result["rows"]]


def test_sanity_checks_catch_a_broken_attack():
    rows = [{"attack": k, "eps_255": e, "accuracy": a, "perturbation": {"within_eps": True,
                                                                     "nonzero": True}}
            for k, e, a in [("fgsm", 1, 0.5), ("pgd", 1, 0.6), ("fgsm", 2, 0.7), ("pgd", 2, 0.4)]]
    checks = robustness.sanity_checks({"rows": rows, "n": 100, "clean_accuracy": 0.9}, 0.0)
    assert not checks["pgd_not_weaker_than_fgsm"]
    assert not checks["accuracy_not_rising_with_eps"]
    assert not checks["input_gradient_nonzero"] and not checks["all_passed"]


def test_scenarios_attack_a_seeded_30_percent(batch):
    detector, x, y = batch
    result = robustness.scenarios(detector, x, y, robustness.AttackPlan(8.0, seed=3))
    assert result["adversarial"]["at_threshold"]["n"] == round(0.3 * len(x))
    # the design's mixed set is the union: every clean image plus the adversarial copies
    assert result["mixed"]["at_threshold"]["n"] == len(x) + round(0.3 * len(x))
    assert {"precision", "recall", "f1"} <= set(result["mixed"]["at_threshold"])
    assert (result["adversarial"]["at_threshold"]["accuracy"]
            < result["standard"]["at_threshold"]["accuracy"])
    assert result["sanity"]["within_eps"]


def test_attacks_aim_at_the_detectors_own_threshold(batch):
    """ART's argmax over [offset, z] is the detector's verdict, whatever its threshold and
    temperature, so an attack succeeds exactly when the verdict flips."""
    detector, x, y = batch
    detector.threshold, detector.temperature = 0.8, 0.5
    try:
        logits = robustness.decision_classifier(detector).predict(x)
        assert ((logits.argmax(1) == 1) == (detector.probabilities(x) >= 0.8)).all()
    finally:
        reloaded = type(detector).load(detector.bundle_dir)
        detector.threshold, detector.temperature = reloaded.threshold, reloaded.temperature


def test_catastrophic_overfitting_detector():
    collapse = {"adv": {"val_pgd_acc": [0.4, 0.45, 0.05], "val_fgsm_acc": [0.5, 0.55, 0.9]}}
    healthy = {"adv": {"val_pgd_acc": [0.4, 0.45, 0.47], "val_fgsm_acc": [0.5, 0.55, 0.6]}}
    assert catastrophic_overfitting(collapse) and not catastrophic_overfitting(healthy)


@pytest.mark.parametrize("attack", ["fgsm_rs", "pgd"])
def test_adversarial_training_runs_and_is_carried_through(tiny_dataset, tmp_path, attack):
    config = tiny_config(tiny_dataset, tmp_path / "b", export_stem="", adv_attack=attack,
                         adv_steps=2, adv_monitor_images=16,
                         phases=[PhaseConfig("frozen_base", 1, 3e-3, freeze_base=True),
                                 PhaseConfig("adversarial", 1, 1e-3, adversarial=True),
                                 PhaseConfig("fine_tune", 1, 1e-4)])
    out = train(config)
    meta = json.loads((out / "metadata.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert meta["adversarial_training"]["applied"] and attack in meta["adversarial_training"][
        "threat_model"]
    for phase in ("adversarial", "fine_tune"):  # monitored, so adversarial in both
        assert len(history[phase]["val_pgd_acc"]) == 1 and history[phase]["loss"][0] > 0
    assert "val_pgd_acc" not in history["frozen_base"]


def test_the_designs_fgsm_copies_are_added_to_the_training_set(tiny_dataset, tmp_path,
                                                               caplog):
    """`--adv-attack fgsm`: ART FGSM copies of 30% of the training images, made once when the
    adversarial phase starts, are added (not substituted), and the fine-tune keeps them."""
    import logging

    caplog.set_level(logging.INFO, logger="deepfake_detection")
    config = tiny_config(tiny_dataset, tmp_path / "f", export_stem="", adv_attack="fgsm",
                         adv_monitor_images=16,
                         phases=[PhaseConfig("frozen_base", 1, 3e-3, freeze_base=True),
                                 PhaseConfig("adversarial", 1, 1e-3, adversarial=True),
                                 PhaseConfig("fine_tune", 1, 1e-4)])
    out = train(config)
    meta = json.loads((out / "metadata.json").read_text())
    n_train = sum(meta["data"]["train"].values())
    added = [r.getMessage() for r in caplog.records if r.getMessage().startswith("added ")]
    assert added == [f"added {round(0.3 * n_train)} ART FGSM copies (eps 8/255) to the "
                     f"{n_train} training images"]  # made once, for both phases
    assert "ART FGSM copies of 30% of the training set added" in meta["adversarial_training"][
        "threat_model"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["fine_tune"]["val_pgd_acc"]) == 1


def test_robustness_study_command_compares_both_models(tiny_dataset, tmp_path):
    from deepfake_detection.interfaces import cli

    out = tmp_path / "study"
    code = cli.main(["robustness-study", "--data", str(tiny_dataset), "--arch", "resnet_small",
                     "--weights", "none", "--out", str(out), "--batch-size", "16",
                     "--epochs", "frozen_base=1", "--epochs", "fine_tune=1",
                     "--adv-epochs", "1", "--attack-subset", "12", "--pgd-steps", "3"])
    assert code == 0
    summary = json.loads((out / "robustness_study.json").read_text())
    assert summary["undefended"]["trained_against"] == "nothing"
    assert "L-inf, eps 8/255" in summary["defended"]["trained_against"]
    for name in ("undefended", "defended"):
        assert summary[name]["adversarial"]["sweep"]["sanity"]["perturbation_within_eps"]
    text = (out / "robustness_study.md").read_text()
    assert "| undefended | nothing |" in text and "PGD 8/255" in text
    assert (out / "robustness_curve.png").is_file()


def test_attacks_without_art_is_a_one_line_error_before_any_work(monkeypatch, capsys):
    import importlib.util

    from deepfake_detection.interfaces import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "art" else real(name, *rest))
    assert cli.main(["evaluate", "--attacks", "--data", "nowhere"]) == 2
    assert 'pip install -e ".[attacks]"' in capsys.readouterr().err


def test_the_strongest_check_is_a_worst_case_per_image(batch):
    """APGD-CE, APGD-margin, PGD-50 and Square: an image is robust only if all fail, so the
    robust accuracy is at most every single attack's, and every perturbation stays in eps."""
    detector, x, y = batch
    plan = robustness.AttackPlan(progress=False)
    suite = robustness.strongest_suite(detector, x[:12], y[:12], (8.0, 2.0), plan, 200)
    assert list(suite) == ["2", "8"]  # smallest first: it decides what the next one attacks
    result = suite["8"]
    accuracies = [a["accuracy"] for a in result["attacks"]]
    assert [a["attack"] for a in result["attacks"]] == list(attacks.STRONG_ATTACKS)
    assert accuracies == sorted(accuracies, reverse=True)  # a cascade only removes images
    assert result["robust_accuracy"] == accuracies[-1] <= result["clean_accuracy"]
    assert result["robust_accuracy"] <= suite["2"]["robust_accuracy"]
    attacked = [a["attacked"] for a in result["attacks"]]
    assert attacked[0] <= round(suite["2"]["robust_accuracy"] * 12)
    assert all(a["perturbation"]["within_eps"] for a in result["attacks"] if a["attacked"])
    assert "worst case per image" in result["threat_model"]
    # At the smallest eps the first attack sees every correctly classified image.
    first = suite["2"]
    assert first["attacks"][0]["attacked"] == round(first["clean_accuracy"] * 12)


def test_evaluate_writes_the_attack_results_into_the_model_card(tiny_bundle, tmp_path, capsys):
    import shutil

    from deepfake_detection.interfaces import cli

    bundle_copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle[1], bundle_copy)
    code = cli.main(["evaluate", "--model", str(bundle_copy), "--data",
                     str(tiny_bundle[0] / "data"), "--attacks", "--attack-subset", "8",
                     "--pgd-steps", "2", "--eps", "0.05", "--model-card"])
    assert code == 0
    card = (bundle_copy / "model_card.md").read_text()
    assert "## Under attack" in card and "PGD-2 accuracy" in card
    assert "- **Verdict:** `fake` (likely AI-generated) from" in card  # the one rule
    assert f"train --config {os.path.relpath(bundle_copy / 'config.json')}" in card
    report = (bundle_copy / "report" / "report.md").read_text()
    assert "12.75/255 (given as 0.05, a fraction of the 0..255 pixel range)" in report
    assert "scenarios_confusion.png" in report


def test_attack_batches_shrink_with_the_input_so_memory_stays_bounded(batch):
    """128 images of gradients at 256x256 took 23 GB (killed); batches follow the pixel count,
    and the gradient check gives the same value however it is chunked."""
    assert [attacks.attack_batch(s) for s in (32, 64, 128, 256, 1024)] == [128, 128, 32, 8, 8]
    detector, x, y = batch
    whole = attacks.input_gradient_norm(detector.model, x, y, chunk=len(x))
    assert attacks.input_gradient_norm(detector.model, x, y, chunk=5) == pytest.approx(whole)
