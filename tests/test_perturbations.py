from __future__ import annotations

import shutil

import numpy as np
import pytest

from deepfake_detection.evaluation import perturbations
from deepfake_detection.evaluation.report import Parts, evaluate
from deepfake_detection.inference.detector import Detector
from deepfake_detection.training.trainer import recalibrate

IMAGE = np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("family", sorted(perturbations.BATTERY))
def test_every_level_changes_the_image_and_keeps_its_shape(family):
    for level in perturbations.BATTERY[family]:
        out = perturbations.apply(IMAGE, family, level, np.random.default_rng(0))
        assert out.shape == IMAGE.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 255
        assert np.abs(out - np.round(IMAGE)).mean() > 0.1, (family, level)


def test_stronger_levels_change_more_and_noise_is_seeded():
    def change(family, level):
        return np.abs(perturbations.apply(IMAGE, family, level, np.random.default_rng(0))
                      - IMAGE).mean()

    assert change("jpeg_quality", 10) > change("jpeg_quality", 90)
    assert change("gaussian_blur_sigma", 1.5) > change("gaussian_blur_sigma", 0.3)
    a = perturbations.apply(IMAGE, "gaussian_noise_sigma_255", 8, np.random.default_rng(5))
    b = perturbations.apply(IMAGE, "gaussian_noise_sigma_255", 8, np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        perturbations.apply(IMAGE, "sharpen", 1, np.random.default_rng(0))


def test_battery_and_calibration_appear_in_the_report(tiny_bundle, tmp_path):
    root, model = tiny_bundle
    report = evaluate(Detector.load(model), root / "data", tmp_path, Parts(perturbations=True),
                      progress=False)
    assert set(report["perturbations"]["families"]) == set(perturbations.BATTERY)
    assert len(report["perturbations"]["families"]["jpeg_quality"]) == 6
    assert 0 <= report["calibration"]["ece_calibrated"] <= 1
    text = (tmp_path / "report.md").read_text()
    assert "## Perturbation battery" in text and "Calibration:" in text
    assert (tmp_path / "perturbation_jpeg_quality.png").is_file()
    assert (tmp_path / "reliability.png").is_file()


def test_training_fits_a_temperature_and_recalibration_keeps_decisions(tiny_bundle, tmp_path):
    root, model = tiny_bundle
    before = Detector.load(model)
    assert before.metadata["calibration"]["temperature"] > 0
    assert "validation" in before.metadata["calibration"]["method"]
    copy = tmp_path / "bundle"
    shutil.copytree(model, copy)
    recalibrate(copy)
    after = Detector.load(copy)
    images = np.stack([before.prepare(p)[0] for p in sorted((root / "data" / "test")
                                                             .rglob("*.png"))])
    p0, p1 = before.probabilities(images), after.probabilities(images)
    assert np.array_equal(p0 >= before.threshold, p1 >= after.threshold)


def test_recalibration_keeps_the_strict_decisions_too(tiny_bundle, tmp_path):
    """A bundle saved with another temperature, recalibrated: the strict threshold is mapped
    through the new temperature like the balanced one, so it decides as before."""
    import json

    root, model = tiny_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(model, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["calibration"]["temperature"] *= 1.5
    meta["operating_points"]["strict"]["value"] = 0.9999995  # above the balanced threshold
    (copy / "metadata.json").write_text(json.dumps(meta))
    before = Detector.load(copy, operating_point="strict")
    recalibrate(copy)
    after = Detector.load(copy, operating_point="strict")
    assert after.temperature != pytest.approx(before.temperature)
    assert after.threshold == pytest.approx(after.calibration.map_threshold(
        0.9999995, before.calibration), abs=1e-12) and after.threshold != 0.9999995
    images = np.stack([before.prepare(p)[0] for p in sorted((root / "data" / "test")
                                                             .rglob("*.png"))])
    p0, p1 = before.probabilities(images), after.probabilities(images)
    assert np.array_equal(p0 >= before.threshold, p1 >= after.threshold)


def test_comparison_plot_has_a_panel_per_family(tmp_path):
    from PIL import Image

    from deepfake_detection.evaluation.perturbations import BATTERY
    from deepfake_detection.evaluation.rendering import plot_comparison

    def fake_result(drop: float) -> dict:
        clean = {"accuracy": 0.9, "roc_auc": 0.95}
        return {"clean": clean, "families": {
            f: [{"level": v, "accuracy": 0.9 - drop * i, "roc_auc": 0.95 - drop * i}
                for i, v in enumerate(levels, 1)] for f, levels in BATTERY.items()}}

    path = plot_comparison({"plain": fake_result(0.05), "augmented": fake_result(0.01)},
                           tmp_path / "battery.png")
    width, height = Image.open(path).size
    assert width > 3 * height  # one panel per family, side by side


def test_baseline_comparison_of_two_batteries(tiny_bundle, tmp_path, capsys):
    """The same detector as its own baseline: every change must be exactly zero; a real
    baseline is a second bundle whose battery is run on the same images."""
    from deepfake_detection.interfaces import cli

    root, model = tiny_bundle
    report = evaluate(Detector.load(model), root / "data", tmp_path,
                      Parts(perturbations=True, baseline=Detector.load(model)), progress=False)
    this, base = report["perturbations"], report["baseline"]["perturbations"]
    assert this["families"] == base["families"] and this["clean"] == base["clean"]
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Compared with a baseline detector")[1].split("\n## ")[0]
    levels = sum(len(v) for v in perturbations.BATTERY.values())
    assert section.count("| +0.000 |") == levels + 1  # every level and the clean row
    assert (tmp_path / "battery_comparison.png").is_file()
    assert cli.main(["evaluate", "--model", str(model), "--data", str(root / "data"),
                     "--baseline", str(model), "--out", str(tmp_path / "x")]) == 2
    assert "add --perturbations" in capsys.readouterr().err
