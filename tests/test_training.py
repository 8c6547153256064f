"""End to end: train a few epochs on images the test writes, save, reload, evaluate, via CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from deepfake_detection.evaluation.report import evaluate
from deepfake_detection.inference import bundle
from deepfake_detection.inference.detector import Detector
from deepfake_detection.interfaces import cli
from deepfake_detection.models import build_model
from deepfake_detection.training.config import ConfigError, PhaseConfig, TrainConfig, recipe
from deepfake_detection.training.trainer import resized, train

from .conftest import REPO


def tiny_config(data_dir, out, **overrides) -> TrainConfig:
    values = dict(
        data_dir=str(data_dir), output_dir=str(out), arch="resnet_small", weights="none",
        batch_size=16, export_stem=str(out.parent / "models" / "final_model"),
        phases=[PhaseConfig("frozen_base", 4, 3e-3, freeze_base=True),
                PhaseConfig("adversarial", 0, 1e-4, adversarial=True),
                PhaseConfig("fine_tune", 1, 1e-4)],
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def trained(tiny_bundle):
    return tiny_bundle


def test_config_round_trip_and_rejects_typos(tmp_path):
    config = tiny_config(tmp_path, tmp_path / "b")
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"learning_rat": 1})


def test_training_writes_a_complete_bundle(trained):
    root, out = trained
    saved = bundle.Bundle.load(out)
    _, meta = saved.model, saved.metadata
    assert meta["architecture"] == "resnet_small"
    assert meta["image_spec"]["size"] == 32 and meta["image_spec"]["pixel_max"] == 255
    assert meta["data"]["train"] == {"REAL": 32, "FAKE": 32}
    assert meta["data"]["validation"] == {"REAL": 8, "FAKE": 8}
    assert "validation" in meta["threshold"]["rule"] and 0 < meta["threshold"]["value"] < 1
    assert meta["training"]["epochs"]["adversarial"] == 0  # 0 epochs: an undefended model
    assert not meta["adversarial_training"]["applied"]
    assert meta["versions"]["tensorflow"] and "config" in meta
    assert TrainConfig.load(out / bundle.CONFIG_FILE).arch == "resnet_small"
    history = json.loads((out / bundle.HISTORY_FILE).read_text())
    assert len(history["frozen_base"]["loss"]) >= 1
    assert (root / "models" / "final_model.h5").is_file()
    assert (root / "models" / "final_model.keras").is_file()


def test_the_detector_learned_the_synthetic_task(trained):
    root, out = trained
    report = evaluate(Detector.load(out), root / "data", root / "report", progress=False)
    assert report["clean"]["roc_auc"] > 0.9
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "roc.png",
                 "pr_curve.png", "misclassified.csv"):
        assert (root / "report" / name).is_file(), name
    saved = json.loads((root / "report" / "metrics.json").read_text())
    assert saved["clean"]["at_threshold"]["threshold"] == pytest.approx(
        json.loads((out / bundle.METADATA_FILE).read_text())["threshold"]["value"])
    assert set(saved["clean"]["per_group"]) == {"photo", "gen"}
    assert "| accuracy |" in (root / "report" / "report.md").read_text()


def test_frozen_phase_trains_only_the_head(tiny_dataset, tmp_path):
    keras.utils.set_random_seed(0)
    start = build_model("resnet_small")
    start.save_weights(tmp_path / "start.weights.h5")
    config = tiny_config(tiny_dataset, tmp_path / "b", weights=str(tmp_path / "start.weights.h5"),
                         phases=[PhaseConfig("frozen_base", 1, 1e-2, freeze_base=True)],
                         export_stem="")
    saved = bundle.Bundle.load(train(config))
    model, _ = saved.model, saved.metadata
    for name in ("stem_conv", "stage2_block1_bn2"):
        for a, b in zip(model.get_layer(name).get_weights(), start.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_layer("head_logit").get_weights()[0],
                              start.get_layer("head_logit").get_weights()[0])


def test_cli_evaluate_and_its_errors(trained, capsys):
    root, out = trained
    code = cli.main(["evaluate", "--model", str(out), "--data", str(root / "data"),
                     "--out", str(root / "cli-report")])
    assert code == 0 and "ROC-AUC" in capsys.readouterr().out
    assert (root / "cli-report" / "metrics.json").is_file()
    assert cli.main(["evaluate", "--model", str(root / "nope"), "--data", str(root)]) == 2
    assert "no such model bundle" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(root / "x")]) == 2
    assert "--data DIR" in capsys.readouterr().err
    assert cli.main(["train", "--data", str(root / "data"), "--epochs", "warmup=3"]) == 2


def test_original_evaluate_script_runs_the_same_code(trained):
    root, out = trained
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), "--model", str(out), "--data",
         str(root / "data" / "test"), "--out", str(root / "script-report")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    a = json.loads((root / "script-report" / "metrics.json").read_text())["clean"]
    b = evaluate(Detector.load(out), root / "data" / "test", root / "in-process-report",
                 progress=False)["clean"]  # its own reference: no test has to run before it
    assert a["roc_auc"] == pytest.approx(b["roc_auc"], abs=1e-6)


def test_cli_train_on_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "train" / "REAL").mkdir(parents=True)
    (tmp_path / "train" / "FAKE").mkdir(parents=True)
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--export", ""]) == 2
    assert "no images" in capsys.readouterr().err


def test_upscaled_input_resolution_travels_with_the_bundle(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "b", image_size=48, export_stem="",
                         phases=[PhaseConfig("frozen_base", 1, 1e-3, freeze_base=True)])
    detector = Detector.load(train(config))
    assert detector.spec.size == 48 and detector.model.input_shape[1:] == (48, 48, 3)
    image, _ = detector.prepare(str(next((tiny_dataset / "test" / "REAL").iterdir())))
    assert image.shape == (48, 48, 3)


def test_crop_training_saves_the_network_at_the_full_size(tiny_dataset, tmp_path):
    """With augment_crop the network trains on 24 px crops, yet the bundle takes 32 px images,
    carries every trained weight over, and still tells the synthetic classes apart."""
    config = tiny_config(tiny_dataset, tmp_path / "b", augment_crop=24, export_stem="",
                         backup=False, batch_size=8, phases=[PhaseConfig("main", 8, 1e-3)])
    small = build_model("resnet_small", image_size=24)
    small.set_weights([np.random.default_rng(0).normal(size=w.shape) for w in small.weights])
    for a, b in zip(small.get_weights(), resized(small, config).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    detector = Detector.load(train(config))
    assert detector.model.input_shape[1:] == (32, 32, 3)
    report = evaluate(detector, tiny_dataset / "test", tmp_path / "report", progress=False)
    assert report["clean"]["roc_auc"] > 0.9
    with pytest.raises(ConfigError, match="augment_crop"):
        tiny_config(tiny_dataset, tmp_path / "c", augment_crop=40)


def test_train_config_file_keeps_its_data_unless_overridden(tmp_path):
    saved = tiny_config(tmp_path / "data", tmp_path / "b")
    saved.save(tmp_path / "config.json")
    args = cli.build_parser().parse_args(["train", "--config", str(tmp_path / "config.json"),
                                          "--epochs", "fine_tune=2"])
    config = cli._train_config(args)
    assert config.data_dir == saved.data_dir and config.phases[-1].epochs == 2
    args = cli.build_parser().parse_args(["train", "--config", str(tmp_path / "config.json"),
                                          "--data", "elsewhere"])
    assert cli._train_config(args).data_dir == "elsewhere"


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from deepfake_detection.training.trainer import learning_rate

    phase = PhaseConfig("main", epochs=5, learning_rate=2e-3, schedule="cosine")
    schedule = learning_rate(phase, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(2e-4)
    assert float(schedule(10)) == pytest.approx(2e-3)
    assert float(schedule(30)) < 2e-3 and float(schedule(50)) == pytest.approx(0, abs=1e-9)
    assert learning_rate(PhaseConfig("x", 5, 1e-3), 10) == 1e-3
    with pytest.raises(ConfigError, match="schedule"):
        PhaseConfig("x", 5, 1e-3, schedule="linear")


def test_recipe_and_set_overrides(tmp_path):
    from deepfake_detection.interfaces.cli import _train_config, build_parser

    args = build_parser().parse_args(
        ["train", "--recipe", "fast", "--data", str(tmp_path), "--set", "augment_blur_jpeg=0.3",
         "--set", "augment_flip=false", "--set", "fit=squash", "--epochs", "main=3"])
    config = _train_config(args)
    assert config.arch == "resnet_s2d" and config.augment_shift == 2
    assert config.augment_blur_jpeg == 0.3 and config.augment_flip is False
    assert config.fit == "squash" and config.phases[0].epochs == 3
    assert config.phases[0].schedule == "cosine"
    for bad in (["--set", "nope=1"], ["--recipe", "nope"]):
        with pytest.raises(ConfigError):
            _train_config(build_parser().parse_args(["train", "--data", str(tmp_path), *bad]))


@pytest.mark.parametrize("bad,message", [
    (["--set", "val_fraction=1.5"], "val_fraction 1.5 is outside"),
    (["--set", "adv_attack=pgdd"], "adv_attack 'pgdd' is not one of"),
    (["--set", "fit=stretch"], "fit 'stretch' is not one of"),
    (["--set", "augment_jpeg_min=0"], "augment_jpeg_min 0 is outside"),
    (["--set", "batch_size=big"], "batch_size 'big' is not of type int"),
    (["--set", "class_balance=sources"], "class_balance"),
    (["--set", "batch_size=0"], "batch_size 0 is outside"),
    (["--epochs", "main=3", "--set", "ema_momentum=1"], r"ema_momentum 1(\.0)? is outside"),
])
def test_flags_and_set_are_validated_like_a_config_file(tmp_path, bad, message):
    """`--set` and flags used to bypass validation (a typo'd choice or an impossible value
    failed, if at all, deep inside training); now each is refused before any work."""
    from deepfake_detection.interfaces.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "--recipe", "fast", "--data", str(tmp_path), *bad])
    with pytest.raises(ConfigError, match=message):
        _train_config(args)
    with pytest.raises(ConfigError, match=message.split()[0]):
        TrainConfig.from_dict({**recipe("fast").to_dict(), **_as_values(bad)})


def _as_values(flags: list[str]) -> dict:
    """The same bad values as config-file entries (typed as JSON would give them)."""
    import json

    values = {}
    for flag, item in zip(flags[::2], flags[1::2]):
        if flag == "--set":
            key, _, raw = item.partition("=")
            try:
                values[key] = json.loads(raw)
            except ValueError:
                values[key] = raw
    return values


def test_another_folder_gets_an_in_distribution_comparison(trained, tmp_path):
    """A folder the detector never saw (other seed, 64px images): same report, the bundle's
    threshold and temperature carried over unchanged, and a side-by-side with validation."""
    from .conftest import write_split

    root, out = trained
    write_split(tmp_path / "other" / "test", 10, np.random.default_rng(7), size=64)
    detector = Detector.load(out)
    report = evaluate(detector, tmp_path / "other", tmp_path / "rep", progress=False)
    g = report["generalisation"]
    meta = json.loads((out / "metadata.json").read_text())
    assert g["retuned"] is False and g["same_source_as_training"] is False
    assert g["threshold"] == detector.threshold == meta["threshold"]["value"]
    assert report["clean"]["at_threshold"]["threshold"] == detector.threshold
    assert g["in_distribution"]["ROC-AUC"] == meta["validation_metrics"]["roc_auc"]
    assert g["this"]["accuracy"] == report["clean"]["at_threshold"]["accuracy"]
    assert g["fake_share"]["this"] == 0.5 and 0 < g["fake_share"]["in_distribution"] < 1
    assert g["finding"]  # one of the three verdicts, naming what changed
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## In-distribution vs this folder" in text and "Finding:" in text
    own = evaluate(detector, root / "data", tmp_path / "own", progress=False)
    assert own["generalisation"]["same_source_as_training"] is True


def test_same_seed_same_data_same_command_gives_the_same_model(tiny_dataset, tmp_path):
    """Two runs of one recipe, with every random part on (flips, shifts, blur/JPEG, FGSM from a
    random start, dropout, shuffling), end with identical weights, threshold and temperature."""
    runs = []
    for name in ("a", "b"):
        config = tiny_config(
            tiny_dataset, tmp_path / name, export_stem="", augment_shift=2,
            augment_blur_jpeg=0.5, adv_monitor_images=0, backup=False,
            phases=[PhaseConfig("main", 2, 3e-3),
                    PhaseConfig("adversarial", 1, 1e-3, adversarial=True),
                    PhaseConfig("fine_tune", 0, 1e-4)])
        out = train(config)
        meta = json.loads((out / "metadata.json").read_text())
        weights = keras.models.load_model(out / "model.keras", compile=False).get_weights()
        runs.append((weights, meta["threshold"]["value"], meta["calibration"]["temperature"]))
    (wa, ta, ca), (wb, tb, cb) = runs
    assert ta == tb and ca == cb
    assert len(wa) == len(wb) and all(np.array_equal(a, b) for a, b in zip(wa, wb))


def test_ema_and_frozen_batchnorm_change_what_training_ends_on(tiny_dataset, tmp_path):
    """From one start and seed: a run with weight EMA ends on other weights than the same run
    without (early stopping's restore once overwrote the averaged weights, so EMA did nothing),
    and with freeze_batchnorm the base's BatchNorm layers end exactly as they started while its
    convolutions train."""
    keras.utils.set_random_seed(0)
    start = build_model("resnet_small")
    start.save_weights(tmp_path / "start.weights.h5")
    runs = {}
    for name, extra in {"plain": {}, "ema": {"ema_momentum": 0.9},
                        "fbn": {"freeze_batchnorm": True}}.items():
        config = tiny_config(tiny_dataset, tmp_path / name, export_stem="", backup=False,
                             weights=str(tmp_path / "start.weights.h5"), adv_monitor_images=0,
                             phases=[PhaseConfig("fine_tune", 2, 3e-3)], **extra)
        runs[name] = bundle.Bundle.load(train(config)).model
    plain, ema, fbn = (runs[k].get_layer("stem_conv").get_weights()[0] for k in runs)
    assert not np.allclose(plain, ema) and not np.allclose(start.get_layer(
        "stem_conv").get_weights()[0], fbn)
    norm = "stage2_block1_bn2"
    for a, b in zip(runs["fbn"].get_layer(norm).get_weights(), start.get_layer(norm).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(
        runs["plain"].get_layer(norm).get_weights(), start.get_layer(norm).get_weights()))
