"""Is this image like anything the detector was trained on? A feature-statistics distance.

A classifier's probability says nothing about inputs far from its training data: a flat colour,
a noise field or a blown-up thumbnail can get 99% "fake". For every stage of the detector's own
network we keep the per-channel mean and log root-mean-square of its activations (low stages
describe pixel statistics, high ones content), standardise them by their spread over the
training images, and score an image by its mean squared z-score (a diagonal Mahalanobis
distance, the simplest of Lee et al. 2018's feature-space detectors; on the fine-tuned head
alone, or with a PCA, it missed noise and flat images in `benchmarks/novelty.py`). Above a high
percentile of held-out training images the Detector says "uncertain" instead of a verdict, and
why. Stored as `novelty.npz` in the bundle; costs no second forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOVELTY_FILE = "novelty.npz"


def stage_layers(model) -> list[str]:
    """Every stage's last block output, then the map feeding the head."""
    from deepfake_detection.models import feature_layer_name, stage_outputs

    return [*stage_outputs(model), feature_layer_name(model)]


def feature_output(model, layers: list[str] | tuple[str, ...]):
    """A tensor of (mean, log RMS) per channel of each named layer, from the model's graph."""
    import keras

    from deepfake_detection.models import channel_statistics

    parts = []
    for name in layers:
        mean, rms = channel_statistics(model.get_layer(name).output)
        parts += [mean, keras.ops.log(rms)]
    return keras.ops.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class Novelty:
    """layers (names), mean and scale (per feature), threshold (a score), percentile."""

    layers: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    percentile: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mean squared z-score per row: about 1 for a typical training image."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return np.mean(z ** 2, axis=1)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / NOVELTY_FILE
        np.savez(path, layers=np.array(self.layers), mean=self.mean, scale=self.scale,
                 threshold=self.threshold, percentile=self.percentile)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Novelty | None:
        path = Path(directory) / NOVELTY_FILE
        if not path.is_file():
            return None
        with np.load(path) as saved:
            return cls(tuple(str(n) for n in saved["layers"]), saved["mean"], saved["scale"],
                       float(saved["threshold"]), float(saved["percentile"]))


def fit(train: np.ndarray, held_out: np.ndarray, layers: list[str],
        percentile: float = 99.5) -> Novelty:
    """Standardise by the training images; the threshold is a percentile of held-out images'
    scores (held out, so it is not set on the images the statistics came from)."""
    model = Novelty(tuple(layers), train.mean(0), train.std(0) + 1e-6, 0.0, percentile)
    threshold = float(np.percentile(model.score(held_out), percentile))
    return Novelty(model.layers, model.mean, model.scale, threshold, percentile)
