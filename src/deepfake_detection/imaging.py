"""Turn any image file into the exact pixels a model consumes.

Training, the Detector, attacks and evaluation all call `load_rgb` and `prepare`, so an image is
decoded, converted and resized the same way everywhere. Models consume float pixels in 0..255
(Keras EfficientNet rescales internally), which is also the range attacks perturb in.
"""

from __future__ import annotations

import glob
import io
import itertools
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from deepfake_detection.errors import DetectionError

# The pixel budget of one image, read from its header before anything is decoded: a real
# 10000x10000 photo (100 MP) passes, a 280 KB PNG that claims 17000x17000 (289 MP, 4.3 GB once
# decoded) is refused. Memory is then bounded by the images decoded at once, whatever a folder
# holds. DFD_MAX_PIXELS changes it.
MAX_PIXELS = int(os.environ.get("DFD_MAX_PIXELS", 100_000_000))
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's own guard, for any decode outside load_rgb
ImageFile.LOAD_TRUNCATED_IMAGES = False


def _register_heif() -> None:
    """HEIC/HEIF (what iPhones save) through pillow-heif, Pillow's plugin for it; AVIF is
    Pillow's own. libheif applies the file's rotation and resets EXIF orientation to 1, so
    `exif_transpose` below never turns a HEIC picture twice."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # the image still gets a clear "not an image PIL can read"
        return
    register_heif_opener()


_register_heif()

# What a folder scan picks up: every format a single file is read in (a file named on its own is
# tried whatever its suffix).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic",
                  ".heif", ".avif")

ImageSource = str | Path | bytes | Image.Image | np.ndarray

_RESAMPLE = {  # the values of ResizeMethod
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


Fit = Literal["center_crop", "squash", "native"]
FITS = get_args(Fit)
ResizeMethod = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]


class ImageError(DetectionError, ValueError):
    """An input that cannot be read as an image; the message says which and why."""


# The pixels every model consumes; attacks clip to it and express eps in 1/255 of it.
PIXEL_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class ImageSpec:
    """How raw images become model input; saved in every bundle.

    Args:
        size: int. Square side of the model input.
        resize_method: str. PIL filter name (`lanczos` matches how CIFAKE-style sets were made).
        fit: str. `center_crop` (keep aspect, crop the long side, resize), `squash` (resize the
            whole image) or `native` (never resize: the model sees size x size crops of the
            pixels as they are; `prepare` takes the centre crop, the Detector a grid of crops).
        pixel_min: float. Lowest input value the model consumes (PIXEL_RANGE: every model
            of this project takes 0..255, so attacks and perturbations work in those pixels).
        pixel_max: float. Highest input value the model consumes.
    """

    size: int = 32
    resize_method: str = "lanczos"
    fit: str = "center_crop"
    pixel_min: float = 0.0
    pixel_max: float = 255.0

    def __post_init__(self) -> None:
        if self.resize_method not in _RESAMPLE:
            raise ValueError(f"resize_method must be one of {sorted(_RESAMPLE)}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}")
        if (self.pixel_min, self.pixel_max) != PIXEL_RANGE:
            raise ValueError(f"pixel range must be {PIXEL_RANGE} (models take 0..255 pixels)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode (alpha, palette, grayscale, 16-bit, CMYK, float) to 8-bit RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: scale the full range to 8 bit rather than clipping.
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Composite on white, as a viewer shows a transparent image.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_rgb(source: ImageSource) -> np.ndarray:
    """Decode a path, bytes, PIL image or array into an HxWx3 uint8 array.

    Raises:
        ImageError: the file is missing, empty, truncated, corrupt or not an image.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _to_uint8_rgb(_checked_size(source, "<image>"))
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise ImageError(f"cannot read an image from {type(source).__name__}; pass a path, "
                         "bytes, a PIL image or an array")
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageError("empty input (0 bytes)")
            handle: Any = io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise ImageError(f"{name}: empty file (0 bytes)")
            handle = path
        with warnings.catch_warnings():
            # Pillow warns between MAX_PIXELS and twice that; _checked_size refuses those in
            # one line, so its two-line DecompressionBombWarning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                _checked_size(image, name).load()
                return _to_uint8_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image file PIL can read") from error
    except Image.DecompressionBombError as error:  # PIL's guard, at twice MAX_PIXELS
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(claimed[1]) / 1e6:.0f} MP" if claimed else "too many pixels"
        raise ImageError(_too_large(name, size)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name}: corrupt or truncated image ({error})") from error


def _checked_size(image: Image.Image, name: str) -> Image.Image:
    """Refuse, from the header alone, an image with no pixels or more than MAX_PIXELS."""
    width, height = image.size
    if not width or not height:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large(name, f"{width}x{height}, {width * height / 1e6:.0f} MP"))
    return image


def _too_large(name: str, size: str) -> str:
    return (f"{name}: image too large ({size}; the limit is {MAX_PIXELS / 1e6:.0f} MP, set by "
            "DFD_MAX_PIXELS)")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ImageError(f"array of shape {array.shape} is not an HxW, HxWx1, HxWx3 or HxWx4 image")
    if not arr.shape[0] or not arr.shape[1]:
        raise ImageError(f"array of shape {array.shape} has no pixels")
    if arr.dtype != np.uint8 and not np.isfinite(arr).all():
        raise ImageError("array contains NaN or infinite values; pass finite pixels")
    if arr.dtype != np.uint8:
        top = 65535.0 if arr.max() > 255 else (1.0 if arr.max() <= 1.0 else 255.0)
        arr = np.clip(arr.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] == 4:
        return _to_uint8_rgb(Image.fromarray(arr, "RGBA"))
    return np.ascontiguousarray(arr)


def prepare(rgb: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Crop/resize an RGB uint8 array to the model input: size x size x 3 float32 in 0..255.

    With the `native` fit an image at least `size` on each side is only cropped (its centre);
    a smaller one is enlarged to `size` (the Detector warns: its pixels are no longer native).
    """
    height, width = rgb.shape[:2]
    if spec.fit == "native" and min(height, width) >= spec.size:
        return crop_at(rgb, (height - spec.size) // 2, (width - spec.size) // 2, spec.size)
    image = Image.fromarray(rgb)
    if spec.fit in ("center_crop", "native") and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (spec.size, spec.size):
        # reducing_gap keeps huge photos fast with a negligible change in the result.
        image = image.resize(
            (spec.size, spec.size), _RESAMPLE[spec.resize_method], reducing_gap=3.0
        )
    return np.asarray(image, dtype=np.float32)


def crop_at(rgb: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """One size x size window of an RGB array as float32 model input, no resampling."""
    return np.asarray(rgb[top:top + size, left:left + size], dtype=np.float32)


def add_noise(pixels: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of `sigma` (in /255) per pixel and channel, rounded to 8 bits: what a
    noise filter leaves (the laundering battery's and the noise-hardened probe's)."""
    noisy = np.asarray(pixels, np.float32) + rng.normal(0.0, sigma, np.shape(pixels))
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def load_prepared(source: ImageSource, spec: ImageSpec) -> np.ndarray:
    """`load_rgb` then `prepare`: the one path from a file to model input."""
    return prepare(load_rgb(source), spec)


def iter_image_files(items: Sequence[str | os.PathLike], unmatched: list[str] | None = None,
                     skipped: Counter[str] | None = None) -> Iterator[str]:
    """Files, folders (recursive, IMAGE_SUFFIXES only) and globs -> image paths, lazily.

    Folders are walked one directory at a time in sorted order, so a folder of millions of files
    streams in bounded memory and in the same order on every run. Explicit files are kept
    whatever their suffix, so a mislabelled image is still tried. Items that match nothing are
    appended to `unmatched`; files a folder holds that are not images are counted in `skipped`
    by suffix (`.txt`, or `(none)`), so a summary can say what was left out.
    """
    for item in map(str, items):
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches or not all(Path(m).exists() for m in matches):
            if unmatched is not None:
                unmatched.append(item)
            continue
        for match in matches:
            if not Path(match).is_dir():
                yield match
                continue
            for root, dirs, names in os.walk(match):
                dirs.sort()
                for name in sorted(names):
                    suffix = Path(name).suffix.lower()
                    if suffix in IMAGE_SUFFIXES:
                        yield os.path.join(root, name)
                    elif skipped is not None:
                        skipped[suffix or "(none)"] += 1


def is_many(source: object) -> bool:
    """Whether a path-like names a folder or a glob (many images) rather than one file."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    return Path(text).is_dir() or (glob.has_magic(text) and not Path(text).exists())


def as_sources(sources: object) -> object:
    """Many images from one argument: a folder or a glob becomes its image files (lazily), a
    single path a one-item list; anything else (a list, a generator) is passed on as it is.

    Raises:
        ImageError: a folder, glob or file that names nothing.
    """
    if not isinstance(sources, (str, os.PathLike)):
        return sources
    unmatched: list[str] = []
    files = iter_image_files([sources], unmatched)
    first = next(files, None)
    if unmatched:
        raise ImageError(f"{os.fspath(sources)}: no such file, folder or match")
    return [] if first is None else itertools.chain([first], files)
