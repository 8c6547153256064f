"""The project's own Keras layers, registered serializable.

Kept below every other module so that loading a bundle (`inference.bundle`) registers them
without importing the training stack: a saved model that uses one loads anywhere.
"""

from __future__ import annotations

import keras

RESIDUALS = ("median", "npr")


@keras.saving.register_keras_serializable(package="deepfake_detection")
class LocalResidual(keras.layers.Layer):
    """0..255 pixels -> a fixed residual of the same shape, which keeps how neighbouring pixels
    relate and drops most of what the picture shows (`models.local`): `median`, each pixel minus
    the median of its 8 neighbours (FerretNet's), or `npr`, each pixel minus its 2x2 block's
    top-left one (Tan et al., CVPR 2024)."""

    def __init__(self, kind: str = "median", **kwargs):
        super().__init__(**kwargs)
        if kind not in RESIDUALS:
            raise ValueError(f"unknown residual {kind!r}; choose from {RESIDUALS}")
        self.kind = kind

    def call(self, x):
        ops = keras.ops
        if self.kind == "npr":
            corner = x[:, ::2, ::2, :]
            up = ops.repeat(ops.repeat(corner, 2, axis=1), 2, axis=2)
            return x - up[:, : ops.shape(x)[1], : ops.shape(x)[2], :]
        height, width = ops.shape(x)[1], ops.shape(x)[2]
        padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        neighbours = [padded[:, r:r + height, c:c + width, :]
                      for r in range(3) for c in range(3) if (r, c) != (1, 1)]
        ranked = ops.sort(ops.stack(neighbours, axis=-1), axis=-1)
        return x - (ranked[..., 3] + ranked[..., 4]) / 2  # median of 8: mean of the middle two

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}
