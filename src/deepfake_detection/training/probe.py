"""Linear probes on frozen pretrained features: extract once, then fit a logistic regression.

The cheapest way to ask what ImageNet features know about generated images (Ojha et al. 2023
probe CLIP the same way): no backpropagation through the network, so on this CPU a probe over
mixed-256 takes about a minute. Features are, for every stage of an EfficientNet-Lite, the
mean and the root-mean-square of each channel: low stages keep the pixel-level traces
generators leave, the top keeps what the image shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from deepfake_detection.imaging import ImageSpec, load_prepared
from deepfake_detection.models import channel_statistics, stage_statistics
from deepfake_detection.models.efficientnet_lite import VARIANTS, backbone, load_imagenet_weights


def feature_model(arch: str, image_size: int, weights: str = "imagenet") -> keras.Model:
    """Pixels -> [mean, rms] of every stage's last block output and of the top features."""
    if arch not in VARIANTS:
        raise ValueError(f"probes are defined for {sorted(VARIANTS)}, not {arch!r}")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    top = backbone(inputs, arch)
    base = keras.Model(inputs, top)
    if weights == "imagenet":
        load_imagenet_weights(base, arch)
    pooled = [*stage_statistics(base), *channel_statistics(top)]
    return keras.Model(inputs, keras.layers.Concatenate()(pooled), name=f"{arch}_probe")


def extract(model: keras.Model, paths: Sequence[str], spec: ImageSpec, batch_size: int = 64,
            perturb: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Features of every image (decoded and prepared as the Detector would), optionally after
    `perturb` (an HxWx3 0..255 -> same function, e.g. a JPEG re-save)."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    out = []
    for start in range(0, len(paths), batch_size):
        images = [load_prepared(p, spec) for p in paths[start:start + batch_size]]
        if perturb:
            images = [perturb(image) for image in images]
        out.append(np.asarray(forward(np.stack(images).astype(np.float32))))
    return np.concatenate(out)


def fit(features: np.ndarray, labels: np.ndarray, sample_weights: np.ndarray | None = None,
        c: float = 0.01) -> Pipeline:
    """Standardise, then an L2 logistic regression (strong regularisation: thousands of
    features, a few thousand images)."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    pipeline.fit(features, labels, logisticregression__sample_weight=sample_weights)
    return pipeline
