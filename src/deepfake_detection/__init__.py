"""deepfake-detection: tell real photographs from AI-generated images, and show the evidence.

The short way in (the subpackages stay for everything else)::

    import deepfake_detection as dfd

    detector = dfd.load()                  # "auto", "native", "cifake", "robust" or a folder
    strict = dfd.load(operating_point="strict")  # AI only where <= 1% of real pictures score
    result = detector.predict("photo.jpg")  # the pixels' verdict: a Prediction
    record = dfd.check("photo.jpg")         # pixels and what the file declares (C2PA, ...)
    print(record.verdict, record.prob_fake, record.detector, record.provenance["summary"])
    for record in dfd.check("photos/"):     # a folder or a glob: records as they are scored
        print(record.source, record.verdict)

Nothing heavy is imported until one of these is used, so `import deepfake_detection` is quick.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("deepfake-detection")  # one place: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed (Spaces)
    __version__ = "unknown"

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from deepfake_detection.imaging import ImageSource
    from deepfake_detection.inference.detector import Detector, Prediction
    from deepfake_detection.inference.detectors import AutoDetector

__all__ = ["Checker", "Detector", "Prediction", "check", "load", "read_provenance"]
_LAZY = {"Detector": "deepfake_detection.inference.detector",
         "Prediction": "deepfake_detection.inference.detector",
         "Checker": "deepfake_detection.inference.checking"}
_LOADED: dict[tuple[str, float, str], Any] = {}


def load(model: str | Path = "auto", uncertain_margin: float = 0.1,
         operating_point: str = "balanced") -> Detector | AutoDetector:
    """A detector: `auto` (the native detector for images of 128 px and more, the cifake one
    below), `native`, `cifake`, `robust`, or a bundle folder. Its `predict(image)` takes a path,
    bytes, a PIL image or an RGB array and returns a `Prediction`. `operating_point="strict"`
    says AI only where at most 1% of the detector's validation real pictures scored as high
    (fewer fakes caught; `real` verdicts unchanged)."""
    from deepfake_detection import tensorflow_logs

    tensorflow_logs.import_quietly()
    from deepfake_detection.inference import detectors

    return detectors.load(model, uncertain_margin=uncertain_margin,
                          operating_point=operating_point)


def check(source: ImageSource, model: str | Path = "auto", trust_metadata: bool = False,
          uncertain_margin: float = 0.1, batch_size: int = 32, operating_point: str = "balanced"
          ) -> Prediction | Iterator[Prediction]:
    """One image's whole record: the pixel verdict joined with what the file declares about
    itself (`record.provenance`), as `deepfake-detection predict` reports it. A folder
    (recursive) or a glob gives an iterator of records instead, yielded as each batch of
    `batch_size` is scored (unreadable files as records with `error` set). The detector is
    loaded on the first call and kept for the next ones."""
    from deepfake_detection.imaging import is_many
    from deepfake_detection.inference.checking import Checker

    key = (str(model), uncertain_margin, operating_point)
    if key not in _LOADED:
        _LOADED[key] = load(model, uncertain_margin, operating_point)
    checker = Checker(_LOADED[key], trust_metadata=trust_metadata)
    if is_many(source):
        return checker.check_many(source, batch_size=batch_size)
    return checker.check(source)


def read_provenance(source: str | Path | bytes) -> dict[str, Any]:
    """What a file declares about its origin (C2PA, IPTC/XMP, PNG text, EXIF), without the
    pixels; never raises for a bad file (see the `warnings` key)."""
    from deepfake_detection.inference import provenance

    return provenance.read(source).to_dict()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepfake_detection' has no attribute {name!r}")
