"""Where the evidence is: Grad-CAM for a resizing detector, crop scores for a native one.

Kept apart from the Detector, which only scores: explanation needs gradients, a feature layer
and pictures, none of which a verdict does.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from deepfake_detection.imaging import ImageSource
from deepfake_detection.inference.detector import Detector, Prediction, _source_name

_CAM_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (features, logit)


def gradcam(detector: Detector, source: ImageSource) -> tuple[np.ndarray, Prediction, np.ndarray]:
    """Grad-CAM (Selvaraju et al. 2017) for the verdict, at the model's input resolution.

    Returns a heatmap in 0..1 showing which regions pushed the score towards the predicted
    class (FAKE: +logit, REAL: -logit), the prediction itself, and the model-input image
    the heatmap belongs to (for `overlay`).
    """
    import keras
    import tensorflow as tf

    image, warnings = detector.prepare(source)
    model = detector.model
    if model not in _CAM_MODELS:
        layer = model.get_layer(gradcam_layer_name(model))
        _CAM_MODELS[model] = keras.Model(model.inputs, [layer.output, model.output])
    with tf.GradientTape() as tape:
        features, logit = _CAM_MODELS[model](tf.constant(image[None]), training=False)
        prob = float(detector.calibrated(float(logit[0, 0])))
        target = logit[0, 0] if prob >= detector.threshold else -logit[0, 0]
    weights = tf.reduce_mean(tape.gradient(target, features)[0], axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1))
    size = detector.spec.size
    cam = tf.image.resize(cam[..., None], (size, size), "bilinear").numpy()[..., 0]
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cam, detector._result(_source_name(source, 0), prob, warnings), image


def overlay(image: np.ndarray, cam: np.ndarray, display: int = 256, alpha: float = 0.45):
    """Blend a Grad-CAM heatmap over the model's view of the image, enlarged for display."""
    from matplotlib import colormaps
    from PIL import Image

    base = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize(
        (display, display), Image.Resampling.NEAREST)
    heat = (colormaps["jet"](cam)[..., :3] * 255).astype(np.uint8)
    heat = Image.fromarray(heat).resize((display, display), Image.Resampling.BILINEAR)
    return Image.blend(base, heat, alpha)


def regions_overlay(rgb: np.ndarray, regions: list[dict[str, Any]], threshold: float,
                    display: int = 512):
    """The whole image (longest side `display`) with each scored crop outlined and tinted:
    red for crops that look generated, green for real, opacity by distance from the threshold.
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb).convert("RGBA")
    scale = display / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    else:
        scale = 1.0
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for region in regions:
        box = [round(v * scale) for v in region["box"]]
        prob = region["prob_fake"]
        colour = (220, 40, 40) if prob >= threshold else (40, 180, 60)
        strength = int(40 + 120 * min(1.0, abs(prob - threshold) / max(threshold, 1 - threshold)))
        draw.rectangle(box, fill=(*colour, strength), outline=(*colour, 255), width=3)
        draw.text((box[0] + 6, box[1] + 4), f"{prob:.0%}", fill=(255, 255, 255, 255))
    return Image.alpha_composite(image, layer).convert("RGB")


def gradcam_layer_name(model, min_side: int = 4) -> str:
    """The last feature map at least `min_side` pixels wide (or the last one at all).

    The head's own input is the natural Grad-CAM layer, but EfficientNetB2 at 32x32 shrinks it
    to 1x1, which localises nothing; walking back to a 4x4 map keeps the heatmap informative.
    """
    from deepfake_detection.models import feature_layer_name

    names = [layer.name for layer in model.layers]
    last = names.index(feature_layer_name(model))
    fallback = names[last]
    for name in reversed(names[: last + 1]):
        layer = model.get_layer(name)
        if type(layer).__name__ == "ZeroPadding2D":  # padded borders are not image regions
            continue
        shape = layer.output.shape
        if len(shape) == 4 and shape[1] is not None and shape[1] >= min_side:
            return name
    return fallback
