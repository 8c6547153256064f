"""Is this image like anything the detector was trained on? A feature-space distance.

A classifier's probability says nothing about inputs far from its training data: a screenshot
or a diagram can get 99% "fake". We keep the distribution of the features feeding the head (the
`head_pool` output) over the training images, as a whitened PCA (Mahalanobis distance in the
top components, Lee et al. 2018 in its simplest form), and call an image novel when its distance
is above a high percentile of the training images' own. The Detector then says "uncertain"
instead of a verdict, and says why. Stored as `novelty.npz` in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOVELTY_FILE = "novelty.npz"
FEATURE_LAYER = "head_pool"


@dataclass(frozen=True)
class Novelty:
    """mean (D), components (K x D, unit rows), variances (K), threshold (a distance)."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    threshold: float
    percentile: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mean squared whitened distance per row: about 1 for a typical training image."""
        projected = (np.asarray(features, np.float64) - self.mean) @ self.components.T
        return np.mean(projected ** 2 / self.variances, axis=1)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / NOVELTY_FILE
        np.savez(path, mean=self.mean, components=self.components, variances=self.variances,
                 threshold=self.threshold, percentile=self.percentile)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Novelty | None:
        path = Path(directory) / NOVELTY_FILE
        if not path.is_file():
            return None
        with np.load(path) as saved:
            return cls(saved["mean"], saved["components"], saved["variances"],
                       float(saved["threshold"]), float(saved["percentile"]))


def fit(train: np.ndarray, held_out: np.ndarray, components: int = 32,
        percentile: float = 99.5) -> Novelty:
    """PCA on training features; the threshold is a percentile of held-out images' scores
    (held out so the threshold is not set on the very images the PCA was fitted to)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(components, *train.shape)).fit(train)
    model = Novelty(pca.mean_, pca.components_, np.maximum(pca.explained_variance_, 1e-12),
                    0.0, percentile)
    threshold = float(np.percentile(model.score(held_out), percentile))
    return Novelty(model.mean, model.components, model.variances, threshold, percentile)
