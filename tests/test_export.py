"""`deepfake-detection export`: SavedModel and TFLite files that return the detector's own
calibrated probabilities, checked in their own runtimes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_detection.inference.detector import Detector
from deepfake_detection.interfaces import cli


@pytest.mark.parametrize("fmt,name", [("savedmodel", "saved"), ("tflite", "model.tflite")])
def test_export_gives_the_detectors_probabilities(tiny_bundle, tmp_path, fmt, name, capsys):
    import tensorflow as tf

    out = tmp_path / name
    assert cli.main(["export", "--model", str(tiny_bundle[1]), "--format", fmt, "--out",
                     str(out)]) == 0
    detector = Detector.load(tiny_bundle[1])
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(out))  # kept: its variables die with it
        got = np.asarray(loaded.serve(tf.constant(x))).reshape(-1)
    else:
        interpreter = tf.lite.Interpreter(model_path=str(out))
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)
    np.testing.assert_allclose(got, detector.probabilities(x), atol=1e-5)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["threshold"]["value"] == detector.threshold
    assert sidecar["export"]["format"] == fmt
    assert "calibrated P(FAKE)" in capsys.readouterr().out


def test_export_refuses_to_replace_without_force(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"keep")
    args = ["export", "--model", str(tiny_bundle[1]), "--format", "tflite", "--out", str(out)]
    assert cli.main(args) == 2 and "pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep"
    assert cli.main([*args, "--force"]) == 0 and out.stat().st_size > 1000
