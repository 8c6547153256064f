"""Which generator family made it? A linear head on the detector's own feature statistics, with
an honest "none of those I know".

The head reads the per-stage channel mean and log RMS that the novelty check already computes
(`inference.novelty.feature_output`), so naming a family costs no second forward pass: a
standardised multinomial logistic regression over the families of `deepfake_detection.families`,
fitted on the training set's fakes. Its probabilities are open-set: beside the families sits an
"unknown" outcome with a fixed logit, and a temperature; both are fitted by holding each family
out in turn (`training.attribution`), so that the fakes of a family the head never saw rarely
reach 50% for any family. A family is named only at 50% and more; otherwise the record says
"unknown" (a generator it was not trained on). Stored as `family_head.npz` in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAMILY_FILE = "family_head.npz"
UNKNOWN = "unknown"
NAMED = 0.5  # the least probability that names a family


def open_set(scores: np.ndarray, temperature: float, unknown_logit: float) -> np.ndarray:
    """Rows of (family probabilities..., unknown probability) from linear scores."""
    z = np.concatenate([np.atleast_2d(scores) / temperature,
                        np.full((len(np.atleast_2d(scores)), 1), unknown_logit)], axis=1)
    z -= z.max(axis=1, keepdims=True)
    odds = np.exp(z)
    return odds / odds.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class FamilyHead:
    """families (keys), names (words users know), layers, mean/scale (per feature), coef
    (families x features), intercept, temperature and unknown_logit (the open-set calibration)."""

    families: tuple[str, ...]
    names: tuple[str, ...]
    layers: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float = 1.0
    unknown_logit: float = -np.inf

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Linear family scores (logits before the temperature)."""
        z = (np.atleast_2d(np.asarray(features, np.float64)) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Rows of (family probabilities..., unknown probability)."""
        return open_set(self.scores(features), self.temperature, self.unknown_logit)

    def attribute(self, probs: np.ndarray) -> dict[str, object]:
        """One image's record from its (families..., unknown) probabilities: the family when
        it reaches 50%, else "unknown"; the runner-up is the next answer (for "unknown", the
        closest family)."""
        order = np.argsort(probs[:-1])[::-1]
        top, second = int(order[0]), int(order[1])
        if probs[top] >= NAMED:
            return {"generator_family": self.names[top],
                    "generator_family_prob": float(probs[top]),
                    "generator_runner_up": {"family": self.names[second],
                                            "prob": float(probs[second])}}
        return {"generator_family": UNKNOWN, "generator_family_prob": float(probs[-1]),
                "generator_runner_up": {"family": self.names[top], "prob": float(probs[top])}}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FAMILY_FILE
        np.savez(path, families=np.array(self.families), names=np.array(self.names),
                 layers=np.array(self.layers), mean=self.mean, scale=self.scale,
                 coef=self.coef, intercept=self.intercept, temperature=self.temperature,
                 unknown_logit=self.unknown_logit)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> FamilyHead | None:
        path = Path(directory) / FAMILY_FILE
        if not path.is_file():
            return None
        with np.load(path) as saved:
            return cls(*(tuple(str(v) for v in saved[k]) for k in ("families", "names",
                                                                     "layers")),
                       saved["mean"], saved["scale"], saved["coef"], saved["intercept"],
                       float(saved["temperature"]), float(saved["unknown_logit"]))
