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


def feature_model(arch: str, image_size: int, weights: str = "imagenet",
                  stages: tuple[str, ...] | None = None, top: bool = True) -> keras.Model:
    """Pixels -> [mean, rms] of every stage's last block output (or of `stages` only) and, with
    `top`, of the top features."""
    if arch not in VARIANTS:
        raise ValueError(f"probes are defined for {sorted(VARIANTS)}, not {arch!r}")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    base = keras.Model(inputs, backbone(inputs, arch))
    if weights == "imagenet":
        load_imagenet_weights(base, arch)
    pooled = [*stage_statistics(base, stages), *(channel_statistics(base.output) if top else [])]
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


# What the trace probe reads: every stage's statistics without the top, the part of frozen
# ImageNet features that carried over best to generator families held out of training
# (leave-one-family-out mean ROC-AUC 0.823 against 0.807 with the top and 0.770 with stages
# 0-3 only: `python benchmarks/lofo.py --tag probe_stages --probe efficientnet_lite0
# --probe-parts stage0 ... stage6`).
TRACE_STAGES = tuple(f"stage{i}" for i in range(7))


def fuse(model: keras.Model, features: keras.Model, pipeline: Pipeline,
         weight: float = 0.5) -> keras.Model:
    """One network whose logit is (1 - weight) x `model`'s + weight x the probe's.

    `features` (frozen) reads the same pixels as `model`; `pipeline`'s standardiser and logistic
    regression become fixed layers: the feature means subtracted by their own layer (folded
    into the bias instead, large features would cancel in float32), then one Dense holding the
    coefficients over the scales. The result is an ordinary Keras model, so a bundle, the
    Detector and every check treat it like any other.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], not {weight}")
    scaler, regression = pipeline[0], pipeline[-1]
    features.trainable = False
    centre = keras.layers.Normalization(mean=scaler.mean_, variance=np.ones_like(scaler.mean_),
                                        name="trace_probe_centre", dtype="float32")
    probe_logit = keras.layers.Dense(1, name="trace_probe_logit", dtype="float32",
                                     trainable=False)
    combine = keras.layers.Dense(1, use_bias=False, name="fused_logit", dtype="float32",
                                 trainable=False)
    probe_out = probe_logit(centre(features(model.inputs[0])))
    fused = combine(keras.layers.Concatenate(name="fused_logits")([model.output, probe_out]))
    probe_logit.set_weights([(regression.coef_ / scaler.scale_).T.astype(np.float32),
                             regression.intercept_.astype(np.float32)])
    combine.set_weights([np.array([[1 - weight], [weight]], np.float32)])
    return keras.Model(model.inputs, fused, name=f"{model.name}_trace_probe")
