"""Everyday image processing as a test battery: JPEG, blur, noise, rescaling, cropping.

Detectors that key on high-frequency traces often collapse after a re-save or a resize. Each
perturbation is applied identically to REAL and FAKE images, at the model's input size (after the
Detector's own preprocessing), seeded, and scored at the bundle's threshold.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import classification_metrics, ranking_metrics

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
        buffer = io.BytesIO()
        pil.save(buffer, "JPEG", quality=int(level))
        pil = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif family == "gaussian_blur_sigma":
        pil = pil.filter(ImageFilter.GaussianBlur(radius=level))  # Pillow's radius is sigma
    elif family == "gaussian_noise_sigma_255":
        noisy = np.asarray(pil, np.float32) + rng.normal(0.0, level, (size[1], size[0], 3))
        return np.clip(np.round(noisy), 0, 255).astype(np.float32)
    elif family == "rescale_down_to":
        side = int(level)
        pil = pil.resize((side, side), Image.Resampling.LANCZOS).resize(
            size, Image.Resampling.LANCZOS)
    elif family == "center_crop_fraction":
        w, h = int(round(size[0] * level)), int(round(size[1] * level))
        left, top = (size[0] - w) // 2, (size[1] - h) // 2
        pil = pil.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.LANCZOS)
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
    at = classification_metrics(labels, probs, detector.threshold)
    return {"accuracy": at["accuracy"], "REAL_accuracy": at["per_class_accuracy"]["REAL"],
            "FAKE_accuracy": at["per_class_accuracy"]["FAKE"],
            "roc_auc": ranking_metrics(labels, probs)["roc_auc"]}


def plot_battery(result: dict[str, Any], out: Path) -> list[str]:
    """One PNG per family: accuracy and ROC-AUC against the perturbation level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for family, rows in result["families"].items():
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        levels = [r["level"] for r in rows]
        for key, style in (("accuracy", "o-"), ("roc_auc", "s--")):
            ax.plot(levels, [r[key] for r in rows], style, label=key)
            ax.axhline(result["clean"][key], color="grey", lw=0.6, ls=":")
        ax.set_xlabel(family)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"{family} (dotted: clean)", fontsize=9)
        fig.tight_layout()
        name = f"perturbation_{family}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def plot_comparison(results: dict[str, dict[str, Any]], path: Path) -> str:
    """Several detectors' batteries in one figure: a panel per family, ROC-AUC (solid) and
    accuracy at each bundle's threshold (dashed) against the level; level 'clean' first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(next(iter(results.values()))["families"])
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3.2), sharey=True)
    for ax, family in zip(np.atleast_1d(axes), families):
        for i, (name, result) in enumerate(results.items()):
            rows = result["families"][family]
            labels = ["clean"] + [f"{r['level']:g}" for r in rows]
            colour = f"C{i}"
            for key, style in (("roc_auc", "-"), ("accuracy", "--")):
                values = [result["clean"][key]] + [r[key] for r in rows]
                ax.plot(labels, values, style, marker="o", ms=3, color=colour,
                        label=f"{name} {'ROC-AUC' if key == 'roc_auc' else 'accuracy'}")
        ax.set_title(family, fontsize=9)
        ax.set_ylim(0.4, 1.0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def render_battery(result: dict[str, Any]) -> list[str]:
    c = result["clean"]
    lines = ["", "## Perturbation battery", "",
             "Applied at the model's input size, identically to REAL and FAKE, seeded; "
             "metrics at the bundle threshold.", "",
             "| perturbation | level | accuracy | REAL acc. | FAKE acc. | ROC-AUC |",
             "|---|---|---|---|---|---|",
             f"| none | - | {c['accuracy']:.4f} | {c['REAL_accuracy']:.4f} | "
             f"{c['FAKE_accuracy']:.4f} | {c['roc_auc']:.4f} |"]
    for family, rows in result["families"].items():
        for r in rows:
            lines.append(f"| {family} | {r['level']:g} | {r['accuracy']:.4f} | "
                         f"{r['REAL_accuracy']:.4f} | {r['FAKE_accuracy']:.4f} | "
                         f"{r['roc_auc']:.4f} |")
    return lines
