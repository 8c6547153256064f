"""Image folders in CIFAKE's layout: discovery, bad-file screening, splits and `tf.data` input.

A data folder holds `train/` and `test/`, each with `REAL/` and `FAKE/` (any case) containing
images of any format and size. Labels: REAL = 0, FAKE = 1.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.errors import DetectionError
from deepfake_detection.imaging import (
    IMAGE_SUFFIXES,
    ImageError,
    ImageSpec,
    load_prepared,
    load_rgb,
)

log = logging.getLogger(__name__)

CLASS_NAMES = ("REAL", "FAKE")
CIFAKE_HANDLE = "birdy654/cifake-real-and-ai-generated-synthetic-images"


class DataError(DetectionError, ValueError):
    """A data folder that cannot be used as given; the message says how to fix it."""


@dataclass
class FileList:
    """Image paths with labels, plus the files that were rejected and why."""

    paths: list[str]
    labels: np.ndarray
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(CLASS_NAMES)}


def _class_dir(split_dir: Path, name: str) -> Path | None:
    for child in split_dir.iterdir():
        if child.is_dir() and child.name.upper() == name:
            return child
    return None


def discover(split_dir: str | Path) -> FileList:
    """List the images of one split folder (e.g. `data/train`), labelled by sub-folder.

    Files are searched recursively under `REAL/` and `FAKE/`; anything without an image suffix
    is listed as rejected rather than silently ignored.

    Raises:
        DataError: the folder is missing, lacks REAL/ or FAKE/, or a class has no images.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: no such folder")
    paths: list[str] = []
    labels: list[int] = []
    rejected: list[tuple[str, str]] = []
    class_dirs = [_class_dir(split_dir, name) for name in CLASS_NAMES]
    for name, class_dir in zip(CLASS_NAMES, class_dirs):
        if class_dir is None:
            raise DataError(
                f"{split_dir}: missing the {name}/ sub-folder; expected {split_dir}/REAL and "
                f"{split_dir}/FAKE holding images (CIFAKE's layout)"
            )
    for label, class_dir in enumerate(class_dirs):
        found = 0
        for file in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(file))
                labels.append(label)
                found += 1
            elif not file.name.startswith("."):
                rejected.append((str(file), "not an image suffix"))
        if found == 0:
            raise DataError(f"{class_dir}: no images; both REAL and FAKE need at least one")
    return FileList(paths, np.asarray(labels, dtype=np.int32), rejected)


def screen(files: FileList, workers: int | None = None) -> FileList:
    """Decode every file once and drop the ones that fail, recording the reason.

    Doing this before training turns a corrupt file into a log line instead of a crash mid-epoch.
    """

    def check(path: str) -> str | None:
        try:
            load_rgb(path)
        except ImageError as error:
            return str(error)
        return None

    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(check, files.paths))
    keep = [i for i, problem in enumerate(problems) if problem is None]
    rejected = files.rejected + [
        (path, problem) for path, problem in zip(files.paths, problems) if problem is not None
    ]
    for path, reason in rejected[len(files.rejected):]:
        log.warning("skipping bad image %s: %s", path, reason)
    return FileList([files.paths[i] for i in keep], files.labels[keep], rejected)


def load_split(split_dir: str | Path, max_per_class: int = 0, seed: int = 0) -> FileList:
    """`discover`, optionally subsample each class (seeded), then `screen`; one class errors."""
    files = discover(split_dir)
    if max_per_class:
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for label in range(len(CLASS_NAMES)):
            idx = np.flatnonzero(files.labels == label)
            keep.extend(sorted(rng.permutation(idx)[:max_per_class].tolist()))
        files = FileList([files.paths[i] for i in keep], files.labels[keep], files.rejected)
    files = screen(files)
    missing = [name for name, n in files.counts().items() if n == 0]
    if missing:
        raise DataError(f"{split_dir}: no readable {' or '.join(missing)} images left")
    return files


def image_id(path: str) -> str:
    """The source image a file was cut from: its stem without a `_c<k>` crop suffix, so the
    crops of one picture (mixed-256 keeps one or two) never straddle train and validation."""
    return re.sub(r"_c\d+$", "", Path(path).stem)


def stratified_split(files: FileList, fraction: float, seed: int) -> tuple[FileList, FileList]:
    """Carve a seeded validation set with the same class ratio out of `files`, keeping the
    crops of one source image (see `image_id`) on the same side."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("validation fraction must be strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    ids = np.asarray([image_id(p) for p in files.paths])
    val_mask = np.zeros(len(files.paths), dtype=bool)
    for label in range(len(CLASS_NAMES)):
        idx = np.flatnonzero(files.labels == label)
        grouped = len(set(ids[idx])) < len(idx)
        # With one file per image this is the original per-file draw, so old splits stay put.
        units = rng.permutation(np.unique(ids[idx]) if grouped else idx)
        n_val = max(1, round(len(units) * fraction))
        if n_val >= len(units):
            raise DataError(f"too few {CLASS_NAMES[label]} images to carve a validation split")
        val_mask[idx[np.isin(ids[idx], units[:n_val])] if grouped else units[:n_val]] = True

    def subset(mask: np.ndarray) -> FileList:
        idx = np.flatnonzero(mask)
        return FileList([files.paths[i] for i in idx], files.labels[idx])

    return subset(~val_mask), subset(val_mask)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights, so each class contributes equally to the loss."""
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.arange(len(CLASS_NAMES))
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(i): float(w) for i, w in zip(classes, weights)}


def source_weights(paths: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """Per-image weights under which every source (`group_of`) weighs the same within its
    class and both classes weigh the same; they average 1 over the set.

    Without them a detector learns what the largest sources look like: on mixed-256 that is
    "art = fake, photo = real", since most fakes are art-styled and most reals photographs.
    """
    groups = np.asarray([group_of(p) for p in paths])
    labels = np.asarray(labels)
    weights = np.zeros(len(labels))
    classes = np.unique(labels)
    for label in classes:
        in_class = labels == label
        sources = np.unique(groups[in_class])
        for source in sources:
            mask = in_class & (groups == source)
            weights[mask] = len(labels) / (len(classes) * len(sources) * mask.sum())
    return weights


def group_of(path: str) -> str:
    """The source group of a file: its name's prefix before the first `_` (e.g. `cifar`, `ddb`)."""
    stem = Path(path).stem
    return stem.split("_", 1)[0] if "_" in stem else Path(path).parent.name


@dataclass(frozen=True, eq=False)
class Training:
    """What makes a dataset a training one: reshuffled every epoch, augmented with fresh draws
    every epoch (after the cache), and optionally weighted per image.

    Args:
        seed: int. Seeds the shuffle and the augmentation's per-image seed stream.
        augment: Augmentation or None.
        sample_weights: array or None. One weight per image (`source_weights`).
    """

    seed: int = 0
    augment: Augmentation | None = None
    sample_weights: np.ndarray | None = None


def make_dataset(paths: Sequence[str], labels: np.ndarray | None, spec: ImageSpec,
                 batch_size: int, training: Training | None = None, cache: bool = False):
    """A batched `tf.data.Dataset` of (0..255 float32 images, float labels[, weights]), or
    images only; for `training`, shuffled, augmented and weighted as it says.

    Decoding runs in parallel through `imaging.load_prepared`, the same function the Detector
    uses. Files that fail to decode anyway (changed since screening) are dropped, not fatal.
    """
    import tensorflow as tf

    columns: list[Any] = [list(paths)]
    if labels is not None:
        columns.append(np.asarray(labels, np.float32))
        if training and training.sample_weights is not None:
            columns.append(np.asarray(training.sample_weights, np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tuple(columns) if len(columns) > 1 else columns[0])
    if training and not cache:
        ds = ds.shuffle(len(paths), seed=training.seed, reshuffle_each_iteration=True)
    ds = _decoded(ds, spec, images_only=labels is None)
    if cache:
        ds = ds.cache()
        if training:
            ds = ds.shuffle(min(len(paths), 20000), seed=training.seed,
                            reshuffle_each_iteration=True)
    if training and training.augment and training.augment.active:
        ds = _augmented(ds, training, images_only=labels is None)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _decoded(ds, spec: ImageSpec, images_only: bool):
    """Paths decoded to model input in parallel; files that fail to decode are dropped."""
    import tensorflow as tf

    def load(path: tf.Tensor) -> np.ndarray:
        return load_prepared(path.numpy().decode(), spec)

    def decode(path: tf.Tensor) -> tf.Tensor:
        image = tf.py_function(load, [path], tf.float32)
        image.set_shape((spec.size, spec.size, 3))
        return image

    fn = decode if images_only else (lambda p, *rest: (decode(p), *rest))
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)


def center_crop(images, side: int):
    """The central side x side window of a batch of images (NHWC tensor)."""
    top = (images.shape[1] - side) // 2
    left = (images.shape[2] - side) // 2
    return images[:, top:top + side, left:left + side]


def _augmented(ds, training: Training, images_only: bool):
    """Each image draws from its own stateless seed, taken from a seeded stream that differs
    every epoch: augmentation is then the same on every run, however the parallel map
    schedules its work (a shared random generator would hand out draws in thread order)."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=training.seed, rerandomize_each_iteration=True).batch(2)
    fn = training.augment.image_fn()
    return tf.data.Dataset.zip(ds, seeds).map(
        (lambda x, key: fn(x, key)) if images_only else
        (lambda item, key: (fn(item[0], key), *item[1:])),
        num_parallel_calls=tf.data.AUTOTUNE)


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation of prepared (model-input-size, 0..255) images.

    Written on tf.image's stateless ops rather than Keras' RandomFlip/RandomTranslation, whose
    shared generator hands out draws in the parallel map's thread order: here every draw comes
    from the image's own seed, so two runs of one command augment identically.

    Args:
        flip: bool. Random horizontal flips.
        shift: int. Random translation by up to this many pixels each way (reflect padding, then
            a random crop back to size): the CIFAR recipe for small from-scratch CNNs.
        blur_jpeg_p: float. Wang et al. (2020): with this probability Gaussian blur with sigma
            ~ U[0, blur_sigma_max], then, independently with the same probability, a JPEG
            re-encode at quality ~ U[jpeg_min, 100]. Teaches the detector that a re-save or a
            soft resize is not evidence either way.
        blur_sigma_max: float. Upper bound of the blur sigma in pixels of the model input.
        jpeg_min: int. Lowest JPEG quality drawn.
        rescale_p: float. Probability of shrinking by a factor ~ U[rescale_min, 1] and
            enlarging back (bilinear), as a downscaled upload looks to a native detector.
        rescale_min: float. Smallest factor drawn.
        crop: int. Cut a random crop of this side first (0 = keep the whole image).
        zoom_p: float. Probability of cutting a random square of a side ~ U[zoom_min, 1] of
            the image and enlarging it back (Lanczos), as the Detector enlarges a cropped
            upload that fell below its crop: the content looks bigger and softer.
        zoom_min: float. Smallest side share drawn.
        noise_p: float. Probability of adding Gaussian noise with sigma ~ U[0, noise_max] (in
            /255), before blur and JPEG: a free noise filter is the cheapest way to launder a
            fake, and a high-ISO photo is noisy too.
        noise_max: float. Largest noise sigma drawn, in /255.
        rotate_p, rotate_max: SAFE's transforms (Li et al., KDD 2025), which teach a detector
            that where and how strongly a trace shows is no evidence: with probability
            rotate_p a rotation by ~ U[-rotate_max, rotate_max] degrees (nearest neighbour,
            black corners, as torchvision's RandomRotation) ...
        color_p, color_strength: ... with probability color_p brightness, contrast and
            saturation each scaled by ~ U[1 - strength, 1 + strength] (ColorJitter) ...
        mask_p, mask_max, mask_patch: ... and with probability mask_p a share ~ U[0,
            mask_max] of the mask_patch-pixel grid cells blacked out (RandomMask), so that no
            one region has to carry the verdict. All three come last, on keys of their own.
    """

    flip: bool = False
    shift: int = 0
    blur_jpeg_p: float = 0.0
    blur_sigma_max: float = 3.0
    jpeg_min: int = 30
    rescale_p: float = 0.0
    rescale_min: float = 0.25
    crop: int = 0
    zoom_p: float = 0.0
    zoom_min: float = 0.6
    noise_p: float = 0.0
    noise_max: float = 16.0
    rotate_p: float = 0.0
    rotate_max: float = 180.0
    color_p: float = 0.0
    color_strength: float = 0.5
    mask_p: float = 0.0
    mask_max: float = 0.75
    mask_patch: int = 16

    @property
    def active(self) -> bool:
        return (self.flip or self.shift > 0 or self.blur_jpeg_p > 0 or self.rescale_p > 0
                or self.crop > 0 or self.zoom_p > 0 or self.noise_p > 0 or self.rotate_p > 0
                or self.color_p > 0 or self.mask_p > 0)

    def image_fn(self):
        """A tf function `(HxWx3 float image, seed of shape [2]) -> image`: every random choice
        is a stateless draw from that seed, so the same seed always gives the same image."""
        import tensorflow as tf

        radius = max(1, int(np.ceil(3 * self.blur_sigma_max)))
        taps = tf.range(-radius, radius + 1, dtype=tf.float32)

        def draw(keys, i, low=0.0, high=1.0, dtype=tf.float32):
            return tf.random.stateless_uniform((), keys[i], low, high, dtype)

        def blur(image, keys):
            sigma = tf.maximum(draw(keys, 0, 0.0, self.blur_sigma_max), 1e-3)
            kernel = tf.exp(-0.5 * tf.square(taps / sigma))
            kernel /= tf.reduce_sum(kernel)
            padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                            mode="SYMMETRIC")
            rows = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, 3, 1))
            cols = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), (1, 1, 3, 1))
            out = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
            return tf.nn.depthwise_conv2d(out, cols, (1, 1, 1, 1), "VALID")[0]

        def jpeg(image, keys):
            quality = draw(keys, 1, self.jpeg_min, 101, tf.int32)
            encoded = tf.image.adjust_jpeg_quality(tf.round(image) / 255.0, quality)
            return encoded * 255.0

        def rescale(image, keys):
            size = tf.shape(image)[:2]
            factor = draw(keys, 2, self.rescale_min, 1.0)
            small = tf.maximum(tf.cast(tf.cast(size, tf.float32) * factor, tf.int32), 1)
            return tf.image.resize(tf.image.resize(image, small, "bilinear", antialias=True),
                                   size, "bilinear")

        def zoom(image, keys):
            size = tf.shape(image)
            side = tf.maximum(tf.cast(tf.cast(tf.reduce_min(size[:2]), tf.float32)
                                      * draw(keys, 1, self.zoom_min, 1.0), tf.int32), 1)
            window = tf.image.stateless_random_crop(image, tf.stack([side, side, 3]), keys[2])
            return tf.image.resize(window, size[:2], "lanczos3")

        def noise(image, keys):
            sigma = draw(keys, 10, 0.0, self.noise_max)
            return image + sigma * tf.random.stateless_normal(tf.shape(image), keys[11])

        safe = self._safe_fn(draw)

        def apply(image, seed):
            keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 13)
            if self.crop:
                image = tf.image.stateless_random_crop(image, (self.crop, self.crop, 3), keys[9])
            if self.zoom_p:  # keys of its own, so the other draws stay as they were
                zoom_keys = tf.random.experimental.stateless_split(
                    tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 13), 3)
                if draw(zoom_keys, 0) < self.zoom_p:
                    image = zoom(image, zoom_keys)
            size = tf.shape(image)
            if self.rescale_p and draw(keys, 3) < self.rescale_p:
                image = rescale(image, keys)
            if self.shift:
                s = self.shift
                padded = tf.pad(image, [[s, s], [s, s], [0, 0]], mode="REFLECT")
                dy = draw(keys, 4, 0, 2 * s + 1, tf.int32)
                dx = draw(keys, 5, 0, 2 * s + 1, tf.int32)
                image = padded[dy:dy + size[0], dx:dx + size[1]]
            if self.noise_p and draw(keys, 12) < self.noise_p:
                image = tf.clip_by_value(tf.round(noise(image, keys)), 0.0, 255.0)
            if self.blur_jpeg_p:
                if draw(keys, 6) < self.blur_jpeg_p:
                    image = blur(image, keys)
                if draw(keys, 7) < self.blur_jpeg_p:
                    image = jpeg(image, keys)
            if self.flip and draw(keys, 8) < 0.5:
                image = tf.reverse(image, axis=[1])
            image = tf.clip_by_value(safe(image, seed), 0.0, 255.0)
            return tf.ensure_shape(image, (None, None, 3))

        return apply

    def _safe_fn(self, draw):
        """SAFE's rotation, colour jitter and patch mask: `(image, seed) -> image`, each draw
        (`draw`, image_fn's) from keys folded out of the seed apart from the other transforms'
        keys."""
        import tensorflow as tf

        def rotate(image, keys):
            angle = draw(keys, 1, -self.rotate_max, self.rotate_max) * (np.pi / 180)
            size = tf.cast(tf.shape(image)[:2], tf.float32)
            cy, cx = (size[0] - 1) / 2, (size[1] - 1) / 2
            cos, sin = tf.cos(angle), tf.sin(angle)
            # Output pixel (x, y) reads input (cos x - sin y + a, sin x + cos y + b).
            matrix = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                               sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=image[None], transforms=matrix[None], output_shape=tf.shape(image)[:2],
                fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")[0]

        def color(image, keys):
            low, high = 1 - self.color_strength, 1 + self.color_strength
            image = image * draw(keys, 3, low, high)
            mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
            image = tf.clip_by_value((image - mean) * draw(keys, 4, low, high) + mean, 0.0, 255.0)
            gray = tf.image.rgb_to_grayscale(image)
            return gray + (image - gray) * draw(keys, 5, low, high)

        def mask(image, keys):
            cells = -(-tf.shape(image)[:2] // self.mask_patch)
            share = draw(keys, 7, 0.0, self.mask_max)
            keep = tf.random.stateless_uniform(cells, keys[8]) >= share
            keep = tf.repeat(tf.repeat(keep, self.mask_patch, 0), self.mask_patch, 1)
            keep = keep[:tf.shape(image)[0], :tf.shape(image)[1], None]
            return image * tf.cast(keep, image.dtype)

        def apply(image, seed):
            if not (self.rotate_p or self.color_p or self.mask_p):
                return image
            keys = tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 14), 9)
            if self.rotate_p and draw(keys, 0) < self.rotate_p:
                image = rotate(image, keys)
            if self.color_p and draw(keys, 2) < self.color_p:
                image = tf.clip_by_value(color(image, keys), 0.0, 255.0)
            if self.mask_p and draw(keys, 6) < self.mask_p:
                image = mask(image, keys)
            return image

        return apply


def download_cifake(cache_dir: str | None = None) -> Path:
    """Fetch CIFAKE from Kaggle with kagglehub and return the folder holding train/ and test/.

    Raises:
        DataError: kagglehub is missing or the download fails (e.g. offline), with what to do.
    """
    try:
        import kagglehub
    except ImportError as error:
        raise DataError("--download needs kagglehub: pip install kagglehub") from error
    if cache_dir:
        os.environ.setdefault("KAGGLEHUB_CACHE", cache_dir)
    try:
        root = Path(kagglehub.dataset_download(CIFAKE_HANDLE))
    except Exception as error:  # kagglehub raises many network/auth error types
        raise DataError(
            f"could not download CIFAKE ({CIFAKE_HANDLE}) from Kaggle: "
            f"{type(error).__name__}: {str(error)[:200]}. If you are offline, download it "
            "elsewhere and pass the folder holding train/ and test/ with --data DIR."
        ) from error
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise DataError(f"downloaded CIFAKE to {root} but found no train/ and test/ folders in it")
