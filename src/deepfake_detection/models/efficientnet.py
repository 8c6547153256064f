"""The reference design: Keras EfficientNetB2 (0..255 input) + GAP, Dropout, Dense logit."""

from __future__ import annotations

from pathlib import Path

import keras

from deepfake_detection.models import ModelError, classification_head, register


@register("efficientnet_b2")
def efficientnet_b2(
    image_size: int = 32, weights: str = "none", dropout: float = 0.4
) -> keras.Model:
    """EfficientNetB2 base, built on the model's own input so the graph stays flat for Grad-CAM.

    Keras' EfficientNet takes pixels in 0..255 and applies its own rescaling and ImageNet
    normalisation, so no preprocessing precedes it.
    """
    if weights not in ("none", "imagenet") and not Path(weights).is_file():
        raise ModelError(f"--weights {weights!r}: not 'imagenet', 'none' or an existing file")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    try:
        base = keras.applications.EfficientNetB2(
            include_top=False,
            weights=None if weights == "none" else weights,
            input_tensor=inputs,
        )
    except Exception as error:  # keras raises plain Exception for failed downloads
        if weights != "imagenet":
            raise ModelError(f"could not load base weights from {weights}: {error}") from error
        raise ModelError(
            "could not fetch the ImageNet weights for EfficientNetB2 "
            f"({type(error).__name__}). Offline? Use --weights none to train from scratch, or "
            "--weights PATH with efficientnetb2_notop.h5 downloaded elsewhere."
        ) from error
    return keras.Model(inputs, classification_head(base.output, dropout), name="efficientnet_b2")
