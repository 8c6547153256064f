"""The Detector: one saved bundle -> preprocessing, model, calibration, threshold, verdict.

The CLI, the app and the evaluation all predict through this class, so a probability means the
same thing everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.imaging import (
    ImageError,
    ImageSource,
    as_sources,
    crop_at,
    load_rgb,
    prepare,
)
from deepfake_detection.inference import bundle
from deepfake_detection.inference.attribution import FamilyHead
from deepfake_detection.inference.novelty import Novelty, feature_output
from deepfake_detection.inference.shipped import ASSETS, OPERATING_POINTS

DEFAULT_BUNDLE = ASSETS / "default_detector"
# Beyond this scale factor the model sees an image very unlike its training data.
RESCALE_WARNING_FACTOR = 4.0
# A native-resolution detector scores at most NATIVE_GRID x NATIVE_GRID crops of an image, so
# the cost of one verdict is bounded whatever the image size.
NATIVE_GRID = 3
# How a size warning ends when the detector cannot be relied on there: the verdict is then
# `uncertain` (the probability is still reported).
UNRELIABLE = "unreliable, so the verdict is 'uncertain'"
# A `real` verdict of a native detector is withheld (`uncertain`) when one of its crops scores at
# least this: on the 197 two-crop images of mixed-256 test it moved 3 of 104 reals called real
# and 4 of 14 fakes called real to `uncertain` (at 0.9: 1 and 0; benchmarks/verdict_rule.py).
CROPS_DISAGREE = 0.8
# The most a native detector enlarges an image and still gives a verdict: mixed-256 test crops
# shrunk to 128 and 192 px and enlarged back scored ROC-AUC 0.950 / 0.955 (reals called AI 0.09 /
# 0.08, fakes called real 0.07 / 0.08), against cifake's 0.653 on the same images
# (benchmarks/small_images.py). Smaller ones are enlarged too, but answered `uncertain`.
NATIVE_MAX_ENLARGE = 2.0
# Images in the first batch of a stream (predict_many), so its first records come soon.
FIRST_CHUNK = 4


@dataclass
class Prediction:
    """One image's result. `prob_fake` is calibrated; `error` is set (and prob NaN) on failure."""

    source: str
    prob_fake: float = float("nan")
    label: str | None = None
    verdict: str | None = None
    threshold: float = float("nan")
    operating_point: str = "balanced"
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    tiles: list[float] | None = None
    detector: str | None = None
    regions: list[dict[str, Any]] | None = None
    novelty: float | None = None
    provenance: dict[str, Any] | None = None
    verdict_basis: str = "pixels"
    # Which generator family, said only when the verdict is `fake` (see inference.attribution):
    # a family's name (its probability, the next answer), or "unknown" when no family reaches
    # 50% (the probability of a generator it was not trained on, the closest family).
    generator_family: str | None = None
    generator_family_prob: float | None = None
    generator_runner_up: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (no NaN: a failed image has `prob_fake` None)."""
        values = asdict(self)
        if self.error:
            values["prob_fake"] = None
        return values


def _source_name(source: ImageSource, index: int) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"<image {index}>"


class Detector:
    """A loaded detector.

    Args:
        saved: Bundle. The model and its validated metadata (image spec, threshold,
            calibration); `model`, `metadata`, `spec`, `threshold` and `calibration` are its.
        uncertain_margin: float. Half-width of the `uncertain` band around the threshold, in
            calibrated probability. Defaults to 0.1.
        novelty: Novelty or None. When given, images unlike the training data (see
            `deepfake_detection.inference.novelty`) get the verdict `uncertain` and a warning.
        family_head: FamilyHead or None. When given, a `fake` verdict names the generator
            family (or "unknown"; see `deepfake_detection.inference.attribution`).
        operating_point: str. `balanced` (the bundle's threshold, both kinds of error weighed
            equally) or `strict`: `fake` only from the threshold that called at most 1% of
            the validation reals AI, and never below the balanced one (`real` verdicts stay
            those of `balanced`). Defaults to `balanced`.
    """

    def __init__(self, saved: bundle.Bundle, uncertain_margin: float = 0.1,
                 novelty: Novelty | None = None, family_head: FamilyHead | None = None,
                 operating_point: str = "balanced"):
        import keras
        import tensorflow as tf

        self.bundle = saved
        self.model, self.metadata = saved.model, saved.metadata
        self.spec = saved.spec
        self._set_operating_point(operating_point)
        self.calibration = saved.calibration
        self.uncertain_margin = uncertain_margin
        self.bundle_dir = saved.folder  # where the model card lives
        self.name = saved.name
        self.novelty, self.family_head = novelty, family_head
        model = self.model
        layers = (novelty or family_head).layers if (novelty or family_head) else None
        if novelty and family_head and family_head.layers != novelty.layers:
            raise bundle.BundleError("the family head reads other layers than the novelty "
                                     "check; refit it (deepfake-detection family-head)")
        both = model if layers is None else keras.Model(
            model.inputs, [model.output, feature_output(model, layers)])
        self._forward = tf.function(lambda x: both(x, training=False), reduce_retracing=True)

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs) -> Detector:
        """Load a bundle folder (default: the detector shipped with the package)."""
        path = Path(path) if path else DEFAULT_BUNDLE
        if path == DEFAULT_BUNDLE and not path.exists():
            raise bundle.BundleError(
                f"no bundled detector at {path}; pass --model BUNDLE or train one with "
                "`deepfake-detection train`"
            )
        if path.is_dir():
            kwargs.setdefault("novelty", Novelty.load(path))
            kwargs.setdefault("family_head", FamilyHead.load(path))
        return cls(bundle.Bundle.load(path), **kwargs)

    def _set_operating_point(self, name: str) -> None:
        if name not in OPERATING_POINTS:
            raise bundle.BundleError(f"unknown operating point {name!r}; choose "
                                     f"{', '.join(OPERATING_POINTS)}")
        self.operating_point, self.threshold = name, self.bundle.operating_point(name)

    def at(self, operating_point: str) -> Detector:
        """This detector (the same loaded model) deciding at another operating point."""
        other = copy.copy(self)
        other._set_operating_point(operating_point)
        return other

    @property
    def native(self) -> bool:
        """Whether this detector looks at crops of the pixels as they are (never resized)."""
        return self.spec.fit == "native"

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Raw logits for prepared images (N x size x size x 3, 0..255), in inference mode."""
        return self.scores(images)[0]

    def scores(self, images: np.ndarray, chunk: int = 256
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(logits, novelty scores or NaN, family probabilities or None) for prepared images,
        `chunk` at a time so a large native batch keeps bounded activations."""
        images = np.asarray(images, np.float32)
        if self.native:
            chunk = min(chunk, 32)
        logits, features = [np.zeros(0)], []
        for i in range(0, len(images), chunk):
            out = self._forward(images[i:i + chunk])
            if isinstance(out, (list, tuple)):
                logits.append(np.asarray(out[0]).reshape(-1))
                features.append(np.asarray(out[1]))
            else:
                logits.append(np.asarray(out).reshape(-1))
        logits_all = np.concatenate(logits)
        if not features:
            return logits_all, np.full(len(logits_all), np.nan), None
        feats = np.concatenate(features)
        novelty = (self.novelty.score(feats) if self.novelty
                   else np.full(len(logits_all), np.nan))
        families = self.family_head.probabilities(feats) if self.family_head else None
        return logits_all, novelty, families

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated FAKE probabilities for prepared images."""
        return self.calibrated(self.logits(images))

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """The bundle's calibration: logits -> calibrated FAKE probabilities."""
        return self.calibration.apply(logits)

    @property
    def temperature(self) -> float:
        return self.calibration.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.calibration = dataclasses.replace(self.calibration, temperature=float(value))

    def verdict(self, prob: float) -> str:
        """`fake` from the threshold plus the margin up, `real` below the threshold minus the
        margin, `uncertain` between; and never a class the probability contradicts: 50% and
        more is never `real`, under 50% never `fake` (the band widens to 50% when the
        threshold is far from it)."""
        low, high = self.band
        if prob >= high:
            return "fake"
        return "real" if prob < low else "uncertain"

    @property
    def band(self) -> tuple[float, float]:
        """(below this: real, from this up: fake) in calibrated probability; between them the
        verdict is `uncertain`. The strict point only raises the upper limit."""
        balanced = self.threshold if self.operating_point == "balanced" else self.bundle.threshold
        low, high = verdict_band(balanced, self.uncertain_margin)
        return low, max(high, self.threshold)

    def prepare(self, source: ImageSource) -> tuple[np.ndarray, list[str]]:
        """Decode and resize one image as the model needs it, with warnings about the change.

        A native detector's single view is the centre crop; `views` gives all its crops.
        """
        rgb = load_rgb(source)
        return prepare(rgb, self.spec), self._size_warnings(*rgb.shape[:2])

    def views(self, rgb: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
        """What the model scores for one decoded image: (K x size x size x 3, K boxes).

        A resizing detector sees the whole image once. A native one sees up to NATIVE_GRID x
        NATIVE_GRID crops spread evenly over the image (all of it up to 3x the crop side);
        their mean logit is the verdict and each crop's probability is reported as a region.
        """
        height, width = rgb.shape[:2]
        size = self.spec.size
        if not self.native or min(height, width) < size:
            return prepare(rgb, self.spec)[None], [[0, 0, width, height]]
        tops = _spread(height, size)
        lefts = _spread(width, size)
        boxes = [[left, top, left + size, top + size] for top in tops for left in lefts]
        return np.stack([crop_at(rgb, b[1], b[0], size) for b in boxes]), boxes

    def _size_warnings(self, height: int, width: int) -> list[str]:
        if self.native:
            return self._native_warnings(height, width)
        warnings = []
        scale = max(height, width) / self.spec.size
        if scale >= RESCALE_WARNING_FACTOR or scale <= 1 / RESCALE_WARNING_FACTOR:
            verb = "shrunk" if scale > 1 else "enlarged"
            factor = scale if scale > 1 else 1 / scale
            warnings.append(
                f"this {width}x{height} image was {verb} {factor:.0f}x to the model's "
                f"{self.spec.size}x{self.spec.size} input, far from the training data: the "
                f"result is {UNRELIABLE}"
            )
        if self.spec.fit == "center_crop" and height != width:
            warnings.append(f"only the centre {min(height, width)}px square was analysed")
        return warnings

    def _native_warnings(self, height: int, width: int) -> list[str]:
        size = self.spec.size
        if min(height, width) < size:
            factor = size / min(height, width)
            why = (f"the result is {UNRELIABLE}" if factor > NATIVE_MAX_ENLARGE else
                   f"up to {NATIVE_MAX_ENLARGE:g}x it was measured to hold (ROC-AUC 0.95 on test "
                   "crops shrunk to 128-192 px)")
            return [f"this {width}x{height} image is smaller than the native detector's "
                    f"{size}x{size} crop: it was enlarged {factor:.1f}x, so its pixel-level "
                    f"traces are not native; {why}"]
        covered = (min(height, NATIVE_GRID * size) * min(width, NATIVE_GRID * size)
                   / (height * width))
        if covered < 0.999:
            return [f"{len(_spread(height, size)) * len(_spread(width, size))} crops of "
                    f"{size}x{size} px cover {covered:.0%} of this {width}x{height} image"]
        return []

    def predict(self, source: ImageSource) -> Prediction:
        """Score one image; raises ImageError for unreadable input."""
        rgb = load_rgb(source)
        views, boxes = self.views(rgb)
        return self._aggregate(_source_name(source, 0), *self.scores(views), boxes,
                               self._size_warnings(*rgb.shape[:2]))

    def _aggregate(self, name: str, logits: np.ndarray, novelty: np.ndarray,
                   families: np.ndarray | None, boxes: list[list[int]], warnings: list[str]
                   ) -> Prediction:
        """One verdict from the logits of an image's views (their mean: a log-odds average),
        withheld as `uncertain` when the image is unlike the training data; a `fake` one names
        the generator family from the views' mean family probabilities."""
        result = self._result(name, float(self.calibrated(np.mean(logits))), warnings)
        if self.novelty is not None:
            result.novelty = float(np.mean(novelty))
            if result.novelty > self.novelty.threshold:
                result.verdict = "uncertain"
                result.warnings = [*warnings, (
                    f"unlike the images this detector was trained on (novelty "
                    f"{result.novelty:.1f}, above {self.novelty.threshold:.1f}, the "
                    f"{self.novelty.percentile:g}th percentile of held-out training images): "
                    "its probability is not to be trusted, so the verdict is 'uncertain'")]
        if self.native:
            probs = self.calibrated(logits)
            result.regions = [{"box": box, "prob_fake": float(p)} for box, p in zip(boxes, probs)]
            if result.verdict == "real" and len(probs) > 1 and probs.max() >= CROPS_DISAGREE:
                result.verdict = "uncertain"
                result.warnings = [*result.warnings, (
                    f"the crops disagree: one scores {probs.max():.0%} AI while their average "
                    f"is {result.prob_fake:.0%}, so the verdict is 'uncertain' (part of the "
                    "picture may be generated or edited)")]
        if families is not None and result.verdict == "fake":
            for key, value in self.family_head.attribute(families.mean(axis=0)).items():
                setattr(result, key, value)
        return result

    def _result(self, name: str, prob: float, warnings: list[str]) -> Prediction:
        """The record; a detector that warns its result is unreliable gives no verdict."""
        unreliable = any(w.endswith(UNRELIABLE) for w in warnings)
        return Prediction(
            source=name,
            prob_fake=prob,
            label="FAKE" if prob >= self.threshold else "REAL",
            verdict="uncertain" if unreliable else self.verdict(prob),
            threshold=self.threshold,
            operating_point=self.operating_point,
            warnings=warnings,
            detector=self.name,
        )

    def predict_many(
        self, sources: Sequence[ImageSource] | Iterable[ImageSource] | str | Path,
        batch_size: int = 256, workers: int | None = None, first: int = FIRST_CHUNK,
    ) -> Iterator[Prediction]:
        """Score many images in batches, decoding in threads; bad files yield an error result.

        `sources` is a list or iterable of images, or one folder (recursive) or glob. Yields one
        Prediction per source, in order, so callers can stream and show progress; the first
        batch holds at most `first` images, so the first records come soon.
        """
        sources = as_sources(sources)
        workers = workers or min(8, (os.cpu_count() or 2) * 2)
        if self.native:  # up to NATIVE_GRID**2 crops of an image are held at once
            batch_size = max(1, min(batch_size, 256 // NATIVE_GRID**2))

        def load(item: tuple[int, ImageSource]):
            index, source = item
            try:
                rgb = load_rgb(source)
                return (_source_name(source, index), *self.views(rgb),
                        self._size_warnings(*rgb.shape[:2]), None)
            except ImageError as error:  # the record names the file: the reason is enough
                name = _source_name(source, index)
                return name, None, None, [], str(error).removeprefix(f"{name}: ")

        with ThreadPoolExecutor(workers) as pool:
            for chunk in chunked(enumerate(sources), batch_size, first):
                yield from self._score_chunk(list(pool.map(load, chunk)))

    def predict_tiles(self, source: ImageSource, grid: int = 2) -> Prediction:
        """Score a grid x grid split of the image (each tile resized to the input), plus the
        whole image, and report the mean probability; per-tile values go into `tiles`.

        Large photos lose most of their pixels in one whole-image resize; tiles keep more detail.
        """
        rgb = load_rgb(source)
        height, width = rgb.shape[:2]
        crops = [rgb]
        for row in range(grid):
            for col in range(grid):
                crops.append(rgb[row * height // grid:(row + 1) * height // grid,
                                 col * width // grid:(col + 1) * width // grid])
        usable = [c for c in crops if min(c.shape[:2]) >= 1]
        probs = self.probabilities(np.stack([prepare(c, self.spec) for c in usable]))
        result = self._result(_source_name(source, 0), float(probs.mean()),
                              self._size_warnings(height, width))
        result.tiles = [float(p) for p in probs[1:]]
        return result

    def _score_chunk(self, loaded: list) -> Iterator[Prediction]:
        good = [row for row in loaded if row[4] is None]
        logits, novelty, families = (self.scores(np.concatenate([row[1] for row in good]))
                                     if good else ([], [], None))
        start = 0
        for name, views, boxes, warnings, error in loaded:
            if error is None:
                part = slice(start, start + len(views))
                yield self._aggregate(name, logits[part], novelty[part],
                                      None if families is None else families[part], boxes,
                                      warnings)
                start += len(views)
            else:
                yield Prediction(source=name, threshold=self.threshold, error=error,
                                 detector=self.name, operating_point=self.operating_point)


def verdict_band(threshold: float, margin: float) -> tuple[float, float]:
    """The one verdict rule's limits: the threshold ± margin, widened to reach 50% so that no
    verdict contradicts its probability."""
    return min(threshold - margin, 0.5), max(threshold + margin, 0.5)


def chunked(items: Iterable, size: int, first: int = FIRST_CHUNK) -> Iterator[list]:
    """`items` in lists of `size`, the first one of at most `first`: a stream's first
    records come out after a few images, not a whole batch (throughput is the batch's)."""
    iterator = iter(items)
    chunk = list(itertools.islice(iterator, min(first, size)))
    while chunk:
        yield chunk
        chunk = list(itertools.islice(iterator, size))


def _spread(length: int, size: int) -> list[int]:
    """Start offsets of up to NATIVE_GRID windows of `size` spread evenly over `length`."""
    count = min(NATIVE_GRID, -(-length // size))
    if count == 1:
        return [(length - size) // 2]
    return [round(i * (length - size) / (count - 1)) for i in range(count)]
