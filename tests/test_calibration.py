"""The Calibration value: what training fits is what the Detector, attacks and plots undo."""

import numpy as np
import pytest

from deepfake_detection.calibration import Calibration


def test_undo_inverts_apply():
    cal = Calibration(temperature=0.6)
    logits = np.linspace(-8, 8, 33)
    np.testing.assert_allclose(cal.undo(cal.apply(logits)), logits, atol=1e-9)
    np.testing.assert_allclose(cal.uncalibrated(cal.apply(logits)), 1 / (1 + np.exp(-logits)))


def test_a_mapped_threshold_keeps_every_decision():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 1000)
    old, new = Calibration(temperature=1.0), Calibration(temperature=0.4)
    threshold = 0.37
    mapped = new.map_threshold(threshold, old)
    assert mapped != pytest.approx(threshold)
    np.testing.assert_array_equal(old.apply(logits) >= threshold, new.apply(logits) >= mapped)


def test_fit_finds_the_temperature_and_lowers_ece():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logits))).astype(int)
    cal = Calibration.fit(labels, true_logits * 3)  # an overconfident model
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert cal.val_ece_after < cal.val_ece_before
    assert Calibration.fit(labels, true_logits * 3, enabled=False).temperature == 1.0


def test_metadata_round_trip_and_absent_section():
    cal = Calibration(temperature=0.5, method="m", val_ece_before=0.1, val_ece_after=0.05)
    assert Calibration.from_metadata({"calibration": cal.to_dict()}) == cal
    assert Calibration.from_metadata({}).temperature == 1.0
