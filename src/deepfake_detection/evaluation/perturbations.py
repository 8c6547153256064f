"""Everyday image processing as a test battery: JPEG, blur, noise, rescaling, cropping.

Detectors that key on high-frequency traces often collapse after a re-save or a resize. Each
perturbation is applied identically to REAL and FAKE images, at the model's input size (after the
Detector's own preprocessing), seeded, and scored at the bundle's threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detection.evaluation import laundering
from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import score

BATTERY: dict[str, tuple[float, ...]] = {
    "jpeg_quality": (90, 75, 60, 40, 25, 10),
    "gaussian_blur_sigma": (0.3, 0.5, 0.8, 1.0, 1.5),
    "gaussian_noise_sigma_255": (2, 4, 8, 16, 32),
    "rescale_down_to": (24, 16, 12),
    "center_crop_fraction": (0.9, 0.8, 0.7),
}


def apply(image: np.ndarray, family: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """One perturbation of an HxWx3 0..255 image; returns float32 0..255 of the same size."""
    pil = Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
    size = pil.size
    if family == "jpeg_quality":
        pil = laundering.reencode(pil, "JPEG", quality=int(level))
    elif family == "gaussian_blur_sigma":
        pil = pil.filter(ImageFilter.GaussianBlur(radius=level))  # Pillow's radius is sigma
    elif family == "gaussian_noise_sigma_255":
        pil = laundering.add_noise(pil, level, rng)
    elif family == "rescale_down_to":
        side = int(level)
        pil = pil.resize((side, side), Image.Resampling.LANCZOS).resize(
            size, Image.Resampling.LANCZOS)
    elif family == "center_crop_fraction":
        pil = laundering.centre_crop(pil, level).resize(size, Image.Resampling.LANCZOS)
    else:
        raise ValueError(f"unknown perturbation {family!r}; choose from {sorted(BATTERY)}")
    return np.asarray(pil, np.float32)


def families_for(size: int) -> dict[str, tuple[float, ...]]:
    """The battery at a model input size: the 32x32 levels as they always were; for larger
    inputs JPEG q50 joins, and rescaling goes to 3/4, 1/2 and 1/4 of the side."""
    if size == 32:
        return dict(BATTERY)
    return {**BATTERY, "jpeg_quality": (90, 75, 60, 50, 40, 25, 10),
            "rescale_down_to": (round(size * 0.75), size // 2, size // 4)}


def battery(detector: Detector, images: np.ndarray, labels: np.ndarray, seed: int = 0,
            families: dict[str, tuple[float, ...]] | None = None) -> dict[str, Any]:
    """Accuracy and ROC-AUC per family and level, next to the clean figures."""
    clean = detector.probabilities(images)
    result: dict[str, Any] = {"clean": _score(detector, labels, clean), "families": {}}
    for family, levels in (families or families_for(detector.spec.size)).items():
        rows = []
        for level in levels:
            rng = np.random.default_rng(seed)
            perturbed = np.stack([apply(x, family, level, rng) for x in images])
            rows.append({"level": level,
                         **_score(detector, labels, detector.probabilities(perturbed))})
        result["families"][family] = rows
    return result


def _score(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    figures = score(labels, probs, detector.threshold)
    at = figures["at_threshold"]
    return {"accuracy": at["accuracy"], "REAL_accuracy": at["per_class_accuracy"]["REAL"],
            "FAKE_accuracy": at["per_class_accuracy"]["FAKE"], "roc_auc": figures["roc_auc"]}


