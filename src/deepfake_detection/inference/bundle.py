"""A trained detector on disk: one folder with `model.keras` and `metadata.json`.

Everything a consumer needs to reproduce a prediction (image spec, threshold, calibration,
class names, training config) lives in the metadata, written by code, never by hand.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from scipy.special import expit

from deepfake_detection import layers  # noqa: F401  (registers the custom layers bundles use)
from deepfake_detection.calibration import Calibration
from deepfake_detection.errors import DetectionError
from deepfake_detection.imaging import ImageSpec

SCHEMA_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
# A bundle fusing two networks (`fuse-networks`) keeps the second one's training config here.
SECOND_CONFIG_FILE = "second_config.json"
CARD_FILE = "model_card.md"
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
    points = metadata.get("operating_points", {})
    if not isinstance(points, dict):
        raise _field(meta_path, "operating_points", points, "must be an object")
    for name in points:
        value = _number(points, name, "value")
        if not (isinstance(value, (int, float)) and 0 < value < 1):
            raise _field(meta_path, f"operating_points.{name}.value", value, "must be a "
                         "probability strictly between 0 and 1")
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


@dataclass
class Bundle:
    """A trained detector on disk, and the one owner of its files.

    A folder holds `model.keras`, `metadata.json` (validated on load), `config.json`,
    `history.json`, `novelty.npz` and `model_card.md`; a bare `.keras`/`.h5` export reads its
    sidecar `<stem>.json` (or a `metadata.json` beside it; else threshold 0.5, no calibration).

    Args:
        path: Path. The bundle folder, or the bare model file.
        metadata: dict. Validated metadata (image spec, threshold, calibration, config, ...).
        model: keras.Model or None. Maps 0..255 pixels to one FAKE logit; read from `path` on
            first use (and checked against the metadata's image size) when not given.
    """

    path: Path
    metadata: dict[str, Any]
    _model: keras.Model | None = None

    @classmethod
    def open(cls, path: str | Path) -> Bundle:
        """The bundle's validated metadata; its model is read when first used."""
        return cls._read(Path(path), None)

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """The bundle with its model read (first: an unreadable model is the error to report)
        and checked against the metadata."""
        model = _read_model(_files(Path(path))[0])
        saved = cls._read(Path(path), model)
        validate_metadata(saved.metadata, _files(saved.path)[1], int(model.input_shape[1]))
        return saved

    @classmethod
    def _read(cls, path: Path, model: keras.Model | None) -> Bundle:
        model_path, meta_path = _files(path)
        if meta_path is None:  # a bare model: its input size is the only metadata
            model = model or _read_model(model_path)
            size = int(model.input_shape[1])
            return cls(path, {"schema_version": SCHEMA_VERSION, "image_spec": {"size": size}},
                       model)
        return cls(path, read_metadata(meta_path), model)

    @property
    def model(self) -> keras.Model:
        if self._model is None:
            model_path, meta_path = _files(self.path)
            self._model = _read_model(model_path)
            validate_metadata(self.metadata, meta_path, int(self._model.input_shape[1]))
        return self._model

    @property
    def folder(self) -> Path:
        """Where the bundle's files live (for a bare export: its folder)."""
        return self.path.parent if self.path.is_file() else self.path

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or (self.path.stem if self.path.is_file()
                                                  else self.path.name))

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec(**self.metadata.get("image_spec", {}))

    @property
    def threshold(self) -> float:
        return float((self.metadata.get("threshold") or {}).get("value", 0.5))

    def operating_point(self, name: str) -> float:
        """The threshold of a named operating point (`balanced`: the bundle's threshold;
        `strict`: at most 1% of validation reals called AI, where the bundle has it, and never
        below the balanced one: strict calls fewer images AI, not more)."""
        if name == "balanced":
            return self.threshold
        points = self.metadata.get("operating_points") or {}
        if name not in points:
            raise BundleError(f"{self.name}: no {name!r} operating point in this bundle "
                              f"(it has balanced{''.join(', ' + n for n in points)}); add it "
                              f"with `deepfake-detection operating-points --model "
                              f"{self.folder}`")
        return max(float(points[name]["value"]), self.threshold)

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_metadata(self.metadata)

    @property
    def config(self) -> dict[str, Any]:
        """The training configuration as saved (a `TrainConfig.to_dict()`), or empty."""
        return self.metadata.get("config") or {}

    @property
    def history(self) -> dict[str, Any] | None:
        """The per-epoch training history (`history.json`), or None (a bare export, or a
        folder written without one)."""
        path = self.path / HISTORY_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def save(self, check_batch: np.ndarray) -> Path:
        """Write model and metadata, then prove the saved model reloads to the same predictions."""
        self.path.mkdir(parents=True, exist_ok=True)
        _inference_copy(self.model).save(self.path / MODEL_FILE)
        self.metadata = {"schema_version": SCHEMA_VERSION, **self.metadata}
        self.metadata["reload_check"] = {
            "max_abs_prob_diff": verify_reload(self.model, self.path / MODEL_FILE, check_batch),
            "n_images": int(len(check_batch)),
        }
        self.write_metadata()
        return self.path

    def write_metadata(self) -> None:
        """The one writer of metadata.json (training, recalibration, novelty)."""
        _write_json(self.folder / METADATA_FILE, self.metadata)

    def write_json(self, name: str, value: Any) -> Path:
        """`config.json`, `history.json` or `second_config.json` beside the model."""
        if name not in (CONFIG_FILE, HISTORY_FILE, SECOND_CONFIG_FILE):
            raise ValueError(f"{name} is not a bundle file")
        path = self.folder / name
        path.write_text(json.dumps(value, indent=2, default=str))
        return path

    def write_card(self, text: str) -> Path:
        """`model_card.md`, rendered by the evaluation."""
        path = self.folder / CARD_FILE
        path.write_text(text)
        return path

    def export(self, stem: str | Path, check_batch: np.ndarray) -> list[Path]:
        """`<stem>.keras`, `<stem>.h5` and their sidecar (see `export_model`)."""
        return export_model(self.model, stem, check_batch, self.metadata)


def _read_model(model_path: Path) -> keras.Model:
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as error:  # keras raises many types for unreadable files
        raise BundleError(f"{model_path}: cannot load model ({error})") from error


def _files(path: Path) -> tuple[Path, Path | None]:
    """(model file, metadata file or None) of a bundle folder or a bare export."""
    if path.is_file() and path.suffix in (".keras", ".h5"):
        return path, next((p for p in (sidecar(path), path.parent / METADATA_FILE)
                           if p.is_file()), None)
    if not path.is_dir():
        raise BundleError(f"{path}: no such model bundle (a folder with {MODEL_FILE})")
    if not (path / MODEL_FILE).is_file():
        raise BundleError(f"{path}: missing {MODEL_FILE}; is this a model bundle?")
    return path / MODEL_FILE, path / METADATA_FILE
