"""Temperature scaling as one value: fitted in training, applied by the Detector, undone by the
attacks (which need the raw decision logit) and the reliability diagram.

P(FAKE) = sigmoid(logit / T). One scalar keeps the ranking and, with the threshold mapped through
it, every decision; only the probabilities become honest (Guo et al. 2017).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit

from deepfake_detection.metrics import expected_calibration_error, fit_temperature

FITTED = "temperature scaling on the validation split"
# Probabilities are clipped this far from 0 and 1 before the logit, so 0 and 1 stay finite.
_EPS = 1e-12


@dataclass(frozen=True)
class Calibration:
    """A bundle's calibration, as stored in its metadata under `calibration`.

    Args:
        temperature: float. Logits are divided by it before the sigmoid (1.0: uncalibrated).
        method: str. How it was fitted (`none` when it was not).
        val_ece_before: float or None. Validation ECE of the raw sigmoid.
        val_ece_after: float or None. Validation ECE after scaling.
    """

    temperature: float = 1.0
    method: str = "none"
    val_ece_before: float | None = None
    val_ece_after: float | None = None

    @classmethod
    def fit(cls, labels: np.ndarray, logits: np.ndarray, enabled: bool = True) -> Calibration:
        """Fit T on validation logits (or keep T = 1 when not `enabled`), with ECE either side."""
        temperature = fit_temperature(labels, logits) if enabled else 1.0
        return cls(temperature=temperature, method=FITTED if enabled else "none",
                   val_ece_before=expected_calibration_error(labels, expit(logits)),
                   val_ece_after=expected_calibration_error(labels, expit(logits / temperature)))

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Calibration:
        """The `calibration` section of bundle metadata (absent: T = 1)."""
        section = metadata.get("calibration") or {}
        known = {k: section[k] for k in ("temperature", "method", "val_ece_before",
                                         "val_ece_after") if k in section}
        return cls(**{**known, "temperature": float(known.get("temperature", 1.0))})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(FAKE) of raw logits."""
        return expit(np.asarray(logits, np.float64) / self.temperature)

    def undo(self, probs: np.ndarray | float) -> np.ndarray:
        """The raw logits that give these calibrated probabilities."""
        clipped = np.clip(np.asarray(probs, np.float64), _EPS, 1 - _EPS)
        return logit(clipped) * self.temperature

    def uncalibrated(self, probs: np.ndarray) -> np.ndarray:
        """What the model's own sigmoid said for these calibrated probabilities."""
        return expit(self.undo(probs))

    def map_threshold(self, threshold: float, previous: Calibration) -> float:
        """The threshold on this calibration's scale that makes the decisions `threshold` made
        under `previous` (the same raw decision logit), kept strictly inside (0, 1) as bundles
        require."""
        return float(np.clip(self.apply(previous.undo(threshold)), np.nextafter(0.0, 1.0),
                             np.nextafter(1.0, 0.0)))
