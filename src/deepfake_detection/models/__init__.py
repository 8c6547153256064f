"""One door for architectures: `build_model(name, ...)` and `list_models()`.

Every registered model maps float pixels in 0..255 (shape size x size x 3) to one FAKE logit, and
names its classification head layers `head_*` so training can freeze "the base" generically and
Grad-CAM can find the last feature map (the input of `head_pool`) without per-model code.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras
import numpy as np

from deepfake_detection.errors import DetectionError

HEAD_PREFIX = "head_"
_STAGE_OUT = re.compile(r"^(stage\d+)_block\d+_out$")
_REGISTRY: dict[str, Callable[..., keras.Model]] = {}


class ModelError(DetectionError, ValueError):
    """A model that cannot be built as asked (unknown name, unreachable weights)."""


def register(name: str) -> Callable:
    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        _REGISTRY[name] = builder
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, image_size: int = 32, weights: str = "none", **overrides) -> keras.Model:
    """Build a registered architecture.

    Args:
        name: str. One of `list_models()`.
        image_size: int. Square input side. Defaults to 32.
        weights: str. `none`, `imagenet` (where the family has it) or a weights-file path.
        **overrides: family-specific options (e.g. `dropout`).
    """
    if name not in _REGISTRY:
        raise ModelError(f"unknown architecture {name!r}; choose from {list_models()}")
    return _REGISTRY[name](image_size=image_size, weights=weights, **overrides)


def classification_head(features, dropout: float):
    """GlobalAveragePooling2D -> Dropout -> Dense(1) logit; sigmoid stays outside the model."""
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_PREFIX + "pool")(features)
    x = keras.layers.Dropout(dropout, name=HEAD_PREFIX + "dropout")(x)
    return keras.layers.Dense(1, name=HEAD_PREFIX + "logit", dtype="float32")(x)


def set_base_trainable(model: keras.Model, trainable: bool,
                       freeze_batchnorm: bool = False) -> None:
    """Freeze or unfreeze every non-head layer (frozen BatchNorm then runs in inference mode);
    with `freeze_batchnorm` the base's BatchNorm layers stay frozen either way."""
    for layer in model.layers:
        if not layer.name.startswith(HEAD_PREFIX):
            batchnorm = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = trainable and not (freeze_batchnorm and batchnorm)


def stage_outputs(model: keras.Model) -> list[str]:
    """The last block output (`stageN_blockM_out`) of every stage, in order: the network's own
    summary of an image at each scale (used by linear probes and the novelty check)."""
    last: dict[str, str] = {}
    for layer in model.layers:
        match = _STAGE_OUT.match(layer.name)
        if match:
            last[match.group(1)] = layer.name
    return list(last.values())


def stage_statistics(base: keras.Model, stages: tuple[str, ...] | None = None) -> list:
    """(mean, RMS) per channel of every stage's last block output (`stage_outputs`), or of the
    named stages (`("stage3", ...)`) only: one flat list of tensors from `base`'s graph."""
    names = [name for name in stage_outputs(base)
             if stages is None or name.split("_")[0] in stages]
    return [stat for name in names for stat in channel_statistics(base.get_layer(name).output)]


def channel_statistics(fmap):
    """(mean, root-mean-square) per channel over the positions of an NHWC activation map."""
    mean = keras.ops.mean(fmap, axis=(1, 2))
    rms = keras.ops.sqrt(keras.ops.mean(keras.ops.square(fmap), axis=(1, 2)) + 1e-6)
    return mean, rms


def feature_layer_name(model: keras.Model) -> str:
    """Name of the layer whose output feeds the head: the last spatial feature map."""
    pool = model.get_layer(HEAD_PREFIX + "pool")
    return pool.input._keras_history.operation.name


def fuse_logits(first: keras.Model, second: keras.Model, weights: list[float]) -> keras.Model:
    """One network whose logit is weights[0] x `first`'s + weights[1] x `second`'s, both
    reading the same input. `first`'s layers stay at the top level (its stages, head and
    evidence-map layer are the fused model's); `second` is one nested layer."""
    second = keras.Model(second.inputs[0], second.output, name="second_network")
    combine = keras.layers.Dense(1, use_bias=False, name="fused_logit", dtype="float32",
                                 trainable=False)
    both = keras.layers.Concatenate(name="fused_logits")([first.output,
                                                          second(first.inputs[0])])
    fused = keras.Model(first.inputs, combine(both), name=f"{first.name}_fused")
    combine.set_weights([np.asarray(weights, np.float32).reshape(2, 1)])
    return fused


# Families register themselves on import.
from deepfake_detection.models import efficientnet, efficientnet_lite, local, resnet  # noqa: E402,F401
