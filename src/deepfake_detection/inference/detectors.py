"""The shipped detectors by name, and the automatic choice between them.

Bundles are data: `cifake` (32x32, the original design's setting), `native` (256x256 crops of
the pixels as they are) and `robust` (the cifake detector trained against L-inf attacks, for
users who worry about evasion; chosen by name, never automatically) sit side by side under
`assets/`. `load("auto")` picks per image between the first two:

    the native detector when both sides of the image are at least half its crop (128 px;
    smaller than the crop, the image is enlarged: measured to hold up to 2x), else the cifake
    detector (thumbnails).

Every Prediction names the detector that answered (`detector`), so a record says which rule fired.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detection.imaging import ImageSource, as_sources
from deepfake_detection.inference.bundle import BundleError
from deepfake_detection.inference.detector import (
    NATIVE_MAX_ENLARGE,
    Detector,
    Prediction,
    chunked,
)
from deepfake_detection.inference.shipped import AUTO, BUNDLES, CHOICES, check_name

__all__ = ["AUTO", "BUNDLES", "CHOICES", "AutoDetector", "load", "resolve"]
RULE = ("native detector when both image sides are at least half its crop size (128 px), "
        "otherwise the cifake (32x32) detector")


def resolve(name_or_path: str | Path | None) -> Path:
    """A bundle folder from a shipped name (`cifake`, `native`, `robust`) or a path."""
    if name_or_path is None:
        return BUNDLES["cifake"]
    check_name(name_or_path)
    text = str(name_or_path)
    if text in BUNDLES:
        if not BUNDLES[text].exists():
            raise BundleError(f"the {text} detector is not installed at {BUNDLES[text]}")
        return BUNDLES[text]
    return Path(text)


def load(name_or_path: str | Path | None = AUTO, **kwargs) -> Detector | AutoDetector:
    """`auto` (or None): an AutoDetector over the shipped bundles; else one Detector."""
    if name_or_path is None or str(name_or_path) == AUTO:
        return AutoDetector.load(**kwargs)
    detector = Detector.load(resolve(name_or_path), **kwargs)
    if str(name_or_path) in BUNDLES:
        detector.name = str(name_or_path)
    return detector


def _image_size(source: ImageSource) -> tuple[int, int] | None:
    """(height, width) from the header alone where possible; None when unreadable (the
    detector that gets it then reports the error)."""
    try:
        if isinstance(source, np.ndarray):
            return source.shape[0], source.shape[1]
        if isinstance(source, Image.Image):
            return source.height, source.width
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.height, image.width
    except Exception:  # any unreadable input: let the Detector produce its error record
        return None


class AutoDetector:
    """Routes each image to the cifake or the native detector (see the module's RULE)."""

    name = AUTO

    def __init__(self, cifake: Detector, native: Detector | None):
        self.cifake, self.native = cifake, native
        self.uncertain_margin = cifake.uncertain_margin
        self.operating_point = cifake.operating_point

    @classmethod
    def load(cls, **kwargs) -> AutoDetector:
        native = (load("native", **kwargs) if BUNDLES["native"].exists() else None)
        return cls(load("cifake", **kwargs), native)

    @property
    def threshold(self) -> float:
        return self.cifake.threshold

    def at(self, operating_point: str) -> AutoDetector:
        """The same two detectors deciding at another operating point."""
        return AutoDetector(self.cifake.at(operating_point),
                            self.native and self.native.at(operating_point))

    def choose(self, source: ImageSource) -> Detector:
        size = _image_size(source)
        if self.native and size and min(size) * NATIVE_MAX_ENLARGE >= self.native.spec.size:
            return self.native
        return self.cifake

    def predict(self, source: ImageSource) -> Prediction:
        return self.choose(source).predict(source)

    def predict_tiles(self, source: ImageSource, grid: int = 2) -> Prediction:
        detector = self.choose(source)
        return detector.predict(source) if detector.native else detector.predict_tiles(
            source, grid)

    def predict_many(self, sources: Sequence[ImageSource] | Iterable[ImageSource] | str | Path,
                     batch_size: int = 256, workers: int | None = None) -> Iterator[Prediction]:
        """Like Detector.predict_many, in input order, each chunk split between detectors."""
        for chunk in chunked(as_sources(sources), batch_size):
            yield from self._route(chunk, workers)

    def _route(self, chunk: list[ImageSource], workers: int | None) -> Iterator[Prediction]:
        chosen = [self.choose(source) for source in chunk]
        results: dict[int, Prediction] = {}
        for detector in {id(d): d for d in chosen}.values():
            index = [i for i, d in enumerate(chosen) if d is detector]
            # One batch: the stream's short first batch was cut by predict_many above.
            for i, result in zip(index, detector.predict_many(
                    [chunk[i] for i in index], len(index), workers, first=len(index))):
                results[i] = result
        for i in range(len(chunk)):
            yield results[i]
