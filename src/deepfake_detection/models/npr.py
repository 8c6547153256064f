"""A second view of an image: its neighbouring-pixel residuals (NPR, Tan et al., CVPR 2024).

Generators upsample: nearest, transposed-convolution or learned decoders copy or blend each
low-resolution value into a 2x2 block, so pixels within a block are related in a way a camera's
pixels are not. The residual of an image against its own nearest-neighbour down-and-up copy
keeps that relation and drops most of the content (what the picture shows), which is why NPR
detectors carry over to generators they were not trained on better than RGB ones.

Here the residual is one fixed 2x2 stride-2 convolution: for each colour, the three pixels of a
block minus its top-left one (the fourth residual is zero), i.e. x - up(down(x)) laid out at half
resolution. A small trainable CNN turns it into a vector that joins the RGB features at the head.
Every layer is named `head_npr_*`, so it trains in the frozen-base phase as well.
"""

from __future__ import annotations

import keras
import numpy as np

from deepfake_detection.models import HEAD_PREFIX

PREFIX = HEAD_PREFIX + "npr_"
WIDTHS = (32, 64, 128)  # channels of the branch's three 3x3 convolutions


def residual_kernel() -> np.ndarray:
    """(2, 2, 3, 9) weights: output 3c + k is pixel k+1 of the block (row-major) minus pixel 0,
    for colour c."""
    kernel = np.zeros((2, 2, 3, 9), np.float32)
    for colour in range(3):
        for k, (row, col) in enumerate([(0, 1), (1, 0), (1, 1)]):
            kernel[row, col, colour, 3 * colour + k] = 1.0
            kernel[0, 0, colour, 3 * colour + k] = -1.0
    return kernel


def npr_branch(pixels):
    """0..255 pixels (N x H x W x 3, H and W even) -> N x 128 residual features."""
    residual = keras.layers.Conv2D(9, 2, strides=2, use_bias=False, trainable=False,
                                   name=PREFIX + "residual")
    x = residual(pixels)
    residual.set_weights([residual_kernel()])
    for index, width in enumerate(WIDTHS):
        x = keras.layers.Conv2D(width, 3, strides=1 if index == 0 else 2, padding="same",
                                use_bias=False, name=f"{PREFIX}conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"{PREFIX}bn{index}")(x)
        x = keras.layers.ReLU(name=f"{PREFIX}relu{index}")(x)
    return keras.layers.GlobalAveragePooling2D(name=PREFIX + "pool")(x)
