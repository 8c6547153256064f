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


def regions_overlay(rgb: np.ndarray, regions: list[dict[str, Any]], band: tuple[float, float],
                    display: int = 768):
    """The whole image (longest side `display`) with each scored crop outlined in the colour of
    the verdict its score alone would get (red: AI, amber: uncertain, green: no sign of AI) and
    only lightly tinted, so the picture stays visible; each crop's percentage is written inside
    it, and a legend below says the scale and how much of the image the crops cover."""
    from PIL import Image, ImageDraw

    height, width = rgb.shape[:2]
    image = Image.fromarray(rgb).convert("RGBA")
    scale = min(1.0, display / max(image.size))
    if scale < 1:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                             Image.Resampling.LANCZOS)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = _font(max(12, image.width // 40))
    for region in regions:
        box = [round(v * scale) for v in region["box"]]
        box = [min(box[0], image.width - 1), min(box[1], image.height - 1),
               min(box[2], image.width) - 1, min(box[3], image.height) - 1]
        colour = _band_colour(region["prob_fake"], band)
        draw.rectangle(box, fill=(*colour, 36), outline=(*colour, 255),
                       width=max(2, image.width // 200))
        label = f"{region['prob_fake']:.0%}"
        left, top = box[0] + 4, box[1] + 4
        right, bottom = draw.textbbox((left, top), label, font=font)[2:]
        draw.rectangle([left - 2, top - 2, right + 3, bottom + 3], fill=(0, 0, 0, 170))
        draw.text((left, top), label, fill=(*colour, 255), font=font)
    shown = Image.alpha_composite(image, layer).convert("RGB")
    return _with_legend(shown, band, _coverage(regions, width, height), font)


# Verdict colours: AI, uncertain, no sign of AI (also for colour-blind viewers: red and green
# never stand alone, the percentage is written inside every crop).
BAND_COLOURS = ((230, 60, 50), (240, 170, 30), (60, 190, 90))


def _band_colour(prob: float, band: tuple[float, float]) -> tuple[int, int, int]:
    low, high = band
    return BAND_COLOURS[0 if prob >= high else 2 if prob < low else 1]


def _coverage(regions: list[dict[str, Any]], width: int, height: int) -> str:
    """`9 crops of 256 px cover 56% of this 1600x1200 image` (the union of the boxes)."""
    if not regions:
        return ""
    mask = np.zeros((height, width), bool)
    for region in regions:
        left, top, right, bottom = region["box"]
        mask[max(0, top):bottom, max(0, left):right] = True
    side = regions[0]["box"][2] - regions[0]["box"][0]
    return (f"{len(regions)} crop{'s' if len(regions) > 1 else ''} of {side} px cover "
            f"{mask.mean():.0%} of this {width}x{height} image")


def _with_legend(image, band: tuple[float, float], coverage: str, font):
    """The picture with a strip below it: the three colours with their ranges, and what the
    crops cover."""
    from PIL import Image, ImageDraw

    low, high = band
    entries = [(BAND_COLOURS[0], f"AI from {high:.0%}"),
               (BAND_COLOURS[1], f"uncertain {low:.0%}-{high:.0%}"),
               (BAND_COLOURS[2], f"no sign of AI below {low:.0%}")]
    line = font.size + 10 if hasattr(font, "size") else 22
    strip = Image.new("RGB", (image.width, line * (2 if coverage else 1) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x = 6
    for colour, text in entries:
        draw.rectangle([x, 6, x + line - 10, line - 4], fill=colour)
        draw.text((x + line - 4, 4), text, fill=(20, 20, 20), font=font)
        x += line + draw.textlength(text, font=font) + 14
    if coverage:
        draw.text((6, line + 4), coverage, fill=(20, 20, 20), font=font)
    out = Image.new("RGB", (image.width, image.height + strip.height), (255, 255, 255))
    out.paste(image, (0, 0))
    out.paste(strip, (0, image.height))
    return out


def _font(size: int):
    """Pillow's bundled font at a readable size (no system font is assumed)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed size
        return ImageFont.load_default()


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
