"""A trained detector on disk: one folder with `model.keras` and `metadata.json`.

Everything a consumer needs to reproduce a prediction (image spec, threshold, calibration,
class names, training config) lives in the metadata, written by code, never by hand.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
from scipy.special import expit

from deepfake_detection.errors import DetectionError

SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
RELOAD_TOLERANCE = 1e-5


class BundleError(DetectionError, ValueError):
    """A bundle that is missing, incomplete, or does not reload to the same predictions."""


def library_versions() -> dict[str, str]:
    import PIL
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "scikit-learn": sklearn.__version__,
    }


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current commit (suffixed `-dirty` with uncommitted changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _logits(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False), dtype=np.float64).reshape(-1)


def verify_reload(model: keras.Model, path: str | Path, batch: np.ndarray) -> float:
    """Reload `path` and return the max |sigmoid| difference on `batch`; raise beyond 1e-5.

    Keras has had EfficientNet save/reload bugs (keras-team/keras#20147); this catches them.
    """
    reloaded = keras.models.load_model(path, compile=False)
    before = expit(_logits(model, batch))
    after = expit(_logits(reloaded, batch))
    diff = float(np.max(np.abs(before - after)))
    if diff > RELOAD_TOLERANCE:
        raise BundleError(
            f"{path}: reloaded model's probabilities differ by {diff:.2e} (> {RELOAD_TOLERANCE})"
        )
    return diff


def _inference_copy(model: keras.Model) -> keras.Model:
    """The same layers and weights without the optimizer, which would triple the file size."""
    return keras.Model(model.input, model.output, name=model.name)


def save_bundle(
    model: keras.Model, directory: str | Path, metadata: dict[str, Any], check_batch: np.ndarray
) -> Path:
    """Write model and metadata, then prove the saved model reloads to the same predictions."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _inference_copy(model).save(directory / MODEL_FILE)
    metadata = {"schema_version": SCHEMA_VERSION, **metadata}
    metadata["reload_check"] = {
        "max_abs_prob_diff": verify_reload(model, directory / MODEL_FILE, check_batch),
        "n_images": int(len(check_batch)),
    }
    write_metadata(directory, metadata)
    return directory


def write_metadata(directory: str | Path, metadata: dict[str, Any]) -> None:
    """The one writer of a bundle's metadata.json (training, recalibration, novelty)."""
    _write_json(Path(directory) / METADATA_FILE, metadata)


def write_sidecar(model_file: str | Path, metadata: dict[str, Any]) -> Path:
    """An export's metadata beside it (`sidecar`); returns that file."""
    path = sidecar(model_file)
    _write_json(path, metadata)
    return path


def _write_json(path: Path, metadata: dict[str, Any]) -> None:
    path.write_text(json.dumps(metadata, indent=2, default=str))


def export_model(model: keras.Model, stem: str | Path, check_batch: np.ndarray,
                 metadata: dict[str, Any] | None = None) -> list[Path]:
    """Write `<stem>.keras` and legacy `<stem>.h5` (the original project's format), both checked,
    and with `metadata` their sidecar `<stem>.json`."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".keras", ".h5"):
        path = stem.with_suffix(suffix)
        _inference_copy(model).save(path)
        verify_reload(model, path, check_batch)
        written.append(path)
    if metadata is not None:
        written.append(write_sidecar(stem, metadata))
    return written


def sidecar(model_file: str | Path) -> Path:
    """`models/final_model.json` beside `models/final_model.{keras,h5}`: the export's metadata
    (threshold, temperature, image spec), so a bare model file means what its bundle means."""
    return Path(model_file).with_suffix(".json")


def _field(meta_path: Path, name: str, value: Any, why: str) -> BundleError:
    return BundleError(f"{meta_path}: field {name} {why}, got {value!r}")


def _number(metadata: dict, section: str, key: str) -> Any:
    part = metadata.get(section, {})
    return part.get(key) if isinstance(part, dict) else part


def validate_metadata(metadata: Any, meta_path: Path, input_size: int | None) -> dict[str, Any]:
    """Refuse metadata that would load and then give wrong verdicts, naming the field."""
    import math

    from deepfake_detection.imaging import ImageSpec

    if not isinstance(metadata, dict):
        raise BundleError(f"{meta_path}: not a JSON object")
    version = metadata.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise _field(meta_path, "schema_version", version, "must be an integer up to "
                     f"{SCHEMA_VERSION} (newer bundles need a newer deepfake-detection)")
    spec = metadata.get("image_spec", {})
    try:
        size = ImageSpec(**spec).size
    except (TypeError, ValueError) as error:
        raise _field(meta_path, "image_spec", spec, f"is invalid ({error})") from None
    if not isinstance(size, int) or size < 1 or (input_size and size != input_size):
        raise _field(meta_path, "image_spec.size", size, "must be the model's input side "
                     f"({input_size})")
    threshold = _number(metadata, "threshold", "value")
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and 0 < threshold < 1):
        raise _field(meta_path, "threshold.value", threshold, "must be a probability strictly "
                     "between 0 and 1")
    temperature = _number(metadata, "calibration", "temperature")
    if temperature is not None and not (isinstance(temperature, (int, float))
                                        and math.isfinite(temperature) and temperature > 0):
        raise _field(meta_path, "calibration.temperature", temperature, "must be a finite "
                     "number above 0")
    names = metadata.get("class_names", ["REAL", "FAKE"])
    if names != ["REAL", "FAKE"]:
        raise _field(meta_path, "class_names", names, 'must be ["REAL", "FAKE"]')
    return metadata


def read_metadata(meta_path: Path, input_size: int | None = None) -> dict[str, Any]:
    """A bundle's metadata.json (or an export's sidecar), parsed and validated."""
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BundleError(f"{meta_path}: unreadable metadata ({error})") from None
    return validate_metadata(metadata, meta_path, input_size)


def load_bundle(directory: str | Path) -> tuple[keras.Model, dict[str, Any]]:
    """Load a bundle folder, or a bare `.keras`/`.h5` file with its sidecar (`sidecar`) or a
    `metadata.json` beside it (else default metadata: threshold 0.5, no calibration)."""
    path = Path(directory)
    if path.is_file() and path.suffix in (".keras", ".h5"):
        meta_path = next((p for p in (sidecar(path), path.parent / METADATA_FILE)
                          if p.is_file()), None)
        model_path = path
    else:
        model_path, meta_path = path / MODEL_FILE, path / METADATA_FILE
        if not path.is_dir():
            raise BundleError(f"{path}: no such model bundle (a folder with {MODEL_FILE})")
        if not model_path.is_file():
            raise BundleError(f"{path}: missing {MODEL_FILE}; is this a model bundle?")
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as error:  # keras raises many types for unreadable files
        raise BundleError(f"{model_path}: cannot load model ({error})") from error
    size = model.input_shape[1]
    if meta_path is None:
        return model, {"schema_version": SCHEMA_VERSION, "image_spec": {"size": int(size)}}
    return model, read_metadata(meta_path, size)
