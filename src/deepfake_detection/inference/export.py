"""Deployment formats of a bundle: a TensorFlow SavedModel or a TFLite flatbuffer.

What is exported is the detector's probability, not a bare logit: the model followed by its
temperature (`Rescaling(1 / T)`) and a sigmoid, so the exported file returns exactly the
calibrated P(FAKE) that `Detector.probabilities` returns. The threshold and image spec go beside
it in `<out>.json` (the bundle's metadata), and each export is reloaded in its own runtime and
checked against the Detector before it is reported done. ONNX is not offered: tf2onnx, its
maintained converter, does not support this TensorFlow (2.21) yet.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import keras
import numpy as np

from deepfake_detection.errors import DetectionError
from deepfake_detection.inference import bundle
from deepfake_detection.inference.detector import Detector

FORMATS = ("savedmodel", "tflite")
TOLERANCE = 1e-5


class ExportError(DetectionError, ValueError):
    """An export that cannot be written or does not reproduce the detector's probabilities."""


def probability_model(detector: Detector) -> keras.Model:
    """The detector's model with its calibration on top: pixels (0..255) -> P(FAKE)."""
    scaled = keras.layers.Rescaling(1.0 / detector.temperature, name="temperature")(
        detector.model.output)
    prob = keras.layers.Activation("sigmoid", name="prob_fake")(scaled)
    return keras.Model(detector.model.input, prob, name=f"{detector.name}_probability")


def export(detector: Detector, fmt: str, out: str | Path, force: bool = False) -> dict:
    """Write `out` in `fmt`, check it, and return what was written and the largest difference
    from the Detector's probabilities on a seeded batch."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {FORMATS}")
    out = Path(out)
    for path in (out, bundle.sidecar(out)):
        if path.exists() and not force:
            raise ExportError(f"{path} exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise ExportError(f"{out}: folder {out.parent} does not exist")
    model = probability_model(detector)
    size = detector.spec.size
    batch = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    if out.is_dir():
        shutil.rmtree(out)
    runner = _write_savedmodel if fmt == "savedmodel" else _write_tflite
    got = runner(model, out, batch)
    diff = float(np.max(np.abs(got - detector.probabilities(batch))))
    if diff > TOLERANCE:
        raise ExportError(f"{out}: exported probabilities differ by {diff:.2e} (> {TOLERANCE})")
    written = bundle.write_sidecar(out, {**detector.metadata, "export": {
        "format": fmt, "output": "calibrated P(FAKE) (temperature and sigmoid included)",
        "max_abs_prob_diff": diff}})
    return {"format": fmt, "path": str(out), "sidecar": str(written), "max_abs_prob_diff": diff}


def _write_savedmodel(model: keras.Model, out: Path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    model.export(str(out), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(out))
    return np.asarray(loaded.serve(tf.constant(batch))).reshape(-1)


def _write_tflite(model: keras.Model, out: Path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    out.write_bytes(converter.convert())
    with warnings.catch_warnings():  # its successor, ai_edge_litert, reads the same file
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=str(out))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)
