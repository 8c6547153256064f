"""What platforms and people do to an image before anyone checks it, as a benchmark.

An operation is a short string, `name:value` (`jpeg:80`, `resize:0.53`, `noise:8`), and a chain
joins operations with `>` (`crop:0.9>resize:0.53>jpeg:80`), so a table row says exactly what was
done. Operations work on whole files as a user would upload them, at any size, and the result is
scored by the Detector as an upload: a native detector takes its crops from it, and enlarges an
image smaller than its crop (as it would a small upload).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detection import imaging
from deepfake_detection.metrics import score

# Platform resizes are given by the scale factor they apply: a 2048 px long side brought to
# 1080 px is 0.53x, 2048 -> 1280 is 0.63x, 1280 -> 1080 is 0.84x.
SINGLE = (
    "resize:0.84", "resize:0.63", "resize:0.53", "resize:0.5",
    "jpeg:95", "jpeg:85", "jpeg:75", "jpeg:60", "webp:80",
    "screenshot:0.8", "screenshot:1.25", "crop:0.9", "crop:0.8", "crop:0.7",
    "sharpen:1", "denoise:3", "noise:2", "noise:4", "noise:8", "noise:16",
)
CHAINS = (
    "crop:0.9>resize:0.53>jpeg:80", "screenshot:0.8>jpeg:85", "resize:0.63>webp:80",
    "noise:8>jpeg:80", "sharpen:1>jpeg:75", "denoise:3>resize:0.5>jpeg:80",
    "screenshot:1.25>crop:0.8>jpeg:75",
)
WORDS = {
    "resize": "resize (Lanczos) by {v}x", "jpeg": "JPEG quality {v}, 4:2:0",
    "webp": "WebP quality {v}", "screenshot": "screenshot: {v}x (bicubic), saved as PNG",
    "crop": "centre crop to {v:.0%} of each side", "sharpen": "unsharp mask (radius {v}, 60%)",
    "denoise": "median filter {v}x{v}", "noise": "Gaussian noise sigma {v}/255",
}


def reencode(image: Image.Image, fmt: str, **options) -> Image.Image:
    """The image after a save in `fmt` and a decode: what a re-encoding platform hands on."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _scaled(image: Image.Image, factor: float, method: Image.Resampling) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, method)


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """The centre `fraction` of each side."""
    width, height = max(1, round(image.width * fraction)), max(1, round(image.height * fraction))
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def add_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise of `sigma` (in /255) per pixel and channel, rounded to 8 bits."""
    return Image.fromarray(imaging.add_noise(np.asarray(image), sigma, rng))


OPERATIONS: dict[str, Callable[[Image.Image, float, np.random.Generator], Image.Image]] = {
    "resize": lambda im, v, _: _scaled(im, v, Image.Resampling.LANCZOS),
    "jpeg": lambda im, v, _: reencode(im, "JPEG", quality=int(v), subsampling=2),
    "webp": lambda im, v, _: reencode(im, "WEBP", quality=int(v)),
    "screenshot": lambda im, v, _: reencode(_scaled(im, v, Image.Resampling.BICUBIC), "PNG"),
    "crop": lambda im, v, _: centre_crop(im, v),
    "sharpen": lambda im, v, _: im.filter(ImageFilter.UnsharpMask(radius=v, percent=60,
                                                                  threshold=0)),
    "denoise": lambda im, v, _: im.filter(ImageFilter.MedianFilter(int(v))),
    "noise": add_noise,
}


def parse(chain: str) -> list[tuple[str, float]]:
    """`crop:0.9>jpeg:80` -> [("crop", 0.9), ("jpeg", 80.0)]; raises ValueError when unknown."""
    steps = []
    for step in chain.split(">"):
        name, _, value = step.strip().partition(":")
        if name not in OPERATIONS:
            raise ValueError(f"unknown laundering operation {name!r} in {chain!r}; choose from "
                             f"{', '.join(OPERATIONS)}")
        try:
            steps.append((name, float(value)))
        except ValueError:
            raise ValueError(f"{step!r} in {chain!r}: give a number after the colon, "
                             "e.g. jpeg:80") from None
    return steps


def describe(chain: str) -> str:
    """The chain in words, for tables."""
    return " -> ".join(WORDS[name].format(v=value if name == "crop" else f"{value:g}")
                       for name, value in parse(chain))


def launder(image: Image.Image, chain: str, rng: np.random.Generator) -> Image.Image:
    """Apply a chain of operations to an RGB image (any size)."""
    image = image.convert("RGB")
    for name, value in parse(chain):
        image = OPERATIONS[name](image, value, rng)
    return image


def laundered(paths: Sequence[str], chain: str, seed: int = 0) -> Iterator[Image.Image]:
    """Each image after `chain`, the noise of image i drawn from (seed, i): reproducible."""
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            yield launder(image, chain, np.random.default_rng([seed, index]))


def upload_probabilities(detector, sources: Iterable) -> np.ndarray:
    """The detector's calibrated FAKE probability per file or image, scored as uploads are."""
    return np.array([p.prob_fake for p in detector.predict_many(sources, batch_size=64)])


def benchmark(detector, paths: Sequence[str], labels: np.ndarray, chains: Sequence[str],
              seed: int = 0) -> dict[str, Any]:
    """ROC-AUC and both class accuracies at the detector's threshold per chain (`clean`: the
    files as they are)."""
    rows = {}
    for chain in chains:
        sources = paths if chain == "clean" else laundered(paths, chain, seed)
        figures = score(labels, upload_probabilities(detector, sources), detector.threshold)
        at = figures["at_threshold"]
        rows[chain] = {"roc_auc": figures["roc_auc"],
                       "REAL_accuracy": at["per_class_accuracy"]["REAL"],
                       "FAKE_accuracy": at["per_class_accuracy"]["FAKE"]}
    return rows
