"""Local-artifact networks: a fixed residual that drops what the picture shows, then a small
network trained from scratch on what is left.

Generators leave their mark in how neighbouring pixels relate (upsampling, decoders), cameras
theirs (demosaicing, noise); the content (faces, art, landscapes) is what a detector must not
learn, since that is where training fakes and reals differ most on mixed-256. Two fixed
residuals, both from the literature:

- `median` (FerretNet, NeurIPS 2025, "local pixel dependency"): each pixel minus the median of
  its 8 neighbours.
- `npr` (Tan et al., CVPR 2024): each pixel minus its 2x2 block's top-left one (the image minus
  its nearest-neighbour down-and-up copy).

`ferretnet` follows FerretNet's layout (two plain convolutions, then stages of dilated
depthwise blocks, 1x1 projection, GAP) at half its width (WIDTH), without its CBAM attention;
`ferretnet_npr` swaps the residual.
`efficientnet_lite0_lpd` is the cheaper variant: the median residual as the input of the
ImageNet-pretrained native backbone.
"""

from __future__ import annotations

from pathlib import Path

import keras

from deepfake_detection.layers import LocalResidual
from deepfake_detection.models import ModelError, classification_head, register

# FerretNet's width is 96 (1.1M parameters); at 48 (0.25M) it scores 256 px crops at 0.49x the
# native network's speed on this CPU (benchmarks/results/native_speed_local.json), at 96 at
# about a quarter (a first side-by-side timing, batch 32).
WIDTH = 48
# A residual of 0..255 pixels rarely exceeds +-30; this brings it near unit scale.
RESIDUAL_SCALE = 1 / 32


def _bn_relu(x, name: str, relu: bool = True):
    x = keras.layers.BatchNormalization(name=name + "_bn")(x)
    return keras.layers.ReLU(name=name + "_relu")(x) if relu else x


def _block(x, filters: int, stride: int, name: str):
    """FerretNet's block: depthwise 3x3 at dilations 1 and 2, summed and projected, then a
    separable 3x3; a residual shortcut."""
    # Keras takes no dilation with a stride: a block that halves the size has one branch.
    branches = [keras.layers.DepthwiseConv2D(3, stride, "same", dilation_rate=d, use_bias=False,
                                             name=f"{name}_dw{d}")(x)
                for d in ((1, 2) if stride == 1 else (1,))]
    y = keras.layers.Add(name=name + "_dilated")(branches) if len(branches) > 1 else branches[0]
    y = _bn_relu(keras.layers.Conv2D(filters, 1, use_bias=False, name=name + "_pw")(y),
                 name + "_1")
    y = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                     name=name + "_sep")(y)
    y = _bn_relu(y, name + "_2", relu=False)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn_relu(keras.layers.Conv2D(filters, 1, stride, name=name + "_proj")(x),
                            name + "_proj", relu=False)
    return keras.layers.ReLU(name=name + "_out")(keras.layers.Add(name=name + "_add")(
        [y, shortcut]))


def ferretnet(image_size: int, weights: str, residual: str, width: int = WIDTH,
              depths: tuple[int, ...] = (2, 2), dropout: float = 0.2) -> keras.Model:
    """The residual, two plain convolutions (the second at stride 2), `len(depths)` stages of
    blocks doubling the width at stride 2, a 1x1 convolution, GAP, Dropout, the logit."""
    if weights == "imagenet":
        raise ModelError("ferretnet is trained from scratch; use --weights none or a file")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = LocalResidual(residual, name="residual")(inputs)
    x = keras.layers.Rescaling(RESIDUAL_SCALE, name="residual_scale")(x)
    x = _bn_relu(keras.layers.Conv2D(width // 2, 3, padding="same", use_bias=False,
                                     name="stem1_conv")(x), "stem1")
    x = _bn_relu(keras.layers.Conv2D(width, 3, 2, "same", use_bias=False, name="stem2_conv")(x),
                 "stem2")
    for stage, depth in enumerate(depths):
        width *= 2
        for block in range(depth):
            x = _block(x, width, 2 if block == 0 else 1, f"stage{stage}_block{block}")
    x = keras.layers.Conv2D(width, 1, use_bias=False, name="top_conv")(x)
    model = keras.Model(inputs, classification_head(x, dropout),
                        name="ferretnet" + ("" if residual == "median" else "_" + residual))
    if weights != "none":
        if not Path(weights).is_file():
            raise ModelError(f"--weights {weights!r}: not 'none' or an existing file")
        model.load_weights(weights)
    return model


@register("ferretnet")
def build_ferretnet(image_size: int = 256, weights: str = "none", **overrides) -> keras.Model:
    """ferretnet: 8-neighbour median residual + FerretNet-style network from scratch (0.25M
    parameters at the default width)."""
    return ferretnet(image_size, weights, "median", **overrides)


@register("ferretnet_npr")
def build_ferretnet_npr(image_size: int = 256, weights: str = "none", **overrides) -> keras.Model:
    """ferretnet_npr: NPR residual (x minus its 2x2 block's corner) + the same network."""
    return ferretnet(image_size, weights, "npr", **overrides)
