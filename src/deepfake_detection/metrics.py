"""Plain metric functions on labels and FAKE probabilities (scikit-learn underneath).

Shared by training (threshold choice on validation) and evaluation (reports), so the threshold
rule and every reported figure are computed one way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

THRESHOLD_RULE = "max F1 for FAKE on the validation precision-recall curve"


def best_f1_threshold(labels: np.ndarray, probs: np.ndarray,
                      balanced: bool = False) -> dict[str, float | str]:
    """The probability threshold that maximises FAKE F1 on a (validation) set.

    Returns the threshold with the precision, recall and F1 it gives there. Predictions are
    FAKE when `prob >= threshold`, matching scikit-learn's precision_recall_curve. With
    `balanced`, examples are weighted so both classes count equally: the PR curve a balanced
    test set would give. Without it, an imbalanced validation split (say 2 REAL per FAKE) pushes
    the threshold up and costs FAKE recall on balanced data.

    Saturated probabilities (exactly 0 or 1 in float64) would give a threshold of 0 or 1, which
    no bundle accepts: it is moved to the nearest float inside (0, 1), deciding every probability
    the same way.
    """
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError("threshold selection needs both REAL and FAKE examples")
    weights = None
    if balanced:
        counts = np.bincount(labels, minlength=2)
        weights = (len(labels) / (2.0 * counts))[labels]
    precision, recall, thresholds = skm.precision_recall_curve(labels, probs,
                                                               sample_weight=weights)
    # The last precision/recall pair has no threshold (recall 0 by convention).
    p, r = precision[:-1], recall[:-1]
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    best = int(np.argmax(f1))
    return {
        "value": float(np.clip(thresholds[best], np.nextafter(0.0, 1.0),
                               np.nextafter(1.0, 0.0))),
        "rule": THRESHOLD_RULE + (" (classes weighted equally)" if balanced else ""),
        "precision": float(p[best]),
        "recall": float(r[best]),
        "f1": float(f1[best]),
    }


def recall_at_fpr(labels: np.ndarray, probs: np.ndarray, fpr: float) -> float:
    """FAKE recall achievable while flagging at most `fpr` of REAL images."""
    fprs, tprs, _ = skm.roc_curve(labels, probs)
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


STRICT_FPR = 0.01  # the strict operating point: at most 1 real picture in 100 called AI


def strict_threshold(labels: np.ndarray, probs: np.ndarray,
                     fpr: float = STRICT_FPR) -> dict[str, float | str]:
    """The lowest threshold that calls at most `fpr` of the REAL images AI (FAKE when
    `prob >= value`), with the share of FAKE images it still catches there.

    For people who must not accuse anyone: chosen on validation reals, it is the rule "AI only
    where at most one real picture in 100 scored as high".
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, np.float64)
    reals = np.sort(probs[labels == 0])[::-1]
    if not len(reals):
        raise ValueError("the strict threshold needs REAL examples")
    allowed = int(np.floor(fpr * len(reals) + 1e-9))
    value = 0.0 if allowed >= len(reals) else float(np.nextafter(reals[allowed], 1.0))
    value = float(np.clip(value, np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0)))
    fakes = probs[labels == 1]
    return {
        "value": value,
        "rule": f"the lowest threshold calling at most {fpr:.0%} of {len(reals)} validation "
                "REAL images AI",
        "fpr_target": fpr,
        "reals_called_fake": float((reals >= value).mean()),
        "fakes_caught": float((fakes >= value).mean()) if len(fakes) else float("nan"),
    }


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, per-class accuracy and the confusion matrix at a threshold.

    FAKE is the positive class. The confusion matrix is [[TN, FP], [FN, TP]] (rows: true REAL,
    FAKE; columns: predicted REAL, FAKE).
    """
    labels = np.asarray(labels).astype(int)
    preds = (np.asarray(probs) >= threshold).astype(int)
    cm = skm.confusion_matrix(labels, preds, labels=[0, 1])
    errors = int((preds != labels).sum())
    per_class = {
        name: float(cm[i, i] / cm[i].sum()) if cm[i].sum() else float("nan")
        for i, name in enumerate(("REAL", "FAKE"))
    }
    return {
        "threshold": float(threshold),
        "n": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, preds)),
        "precision": float(skm.precision_score(labels, preds, zero_division=0)),
        "recall": float(skm.recall_score(labels, preds, zero_division=0)),
        "f1": float(skm.f1_score(labels, preds, zero_division=0)),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm.tolist(),
        "misclassified": errors,
        "misclassified_pct": float(100.0 * errors / max(1, len(labels))),
    }


def ranking_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Threshold-free metrics: ROC-AUC, PR-AUC (average precision) and FAKE recall at low FPR."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {
        "roc_auc": float(skm.roc_auc_score(labels, probs)),
        "pr_auc": float(skm.average_precision_score(labels, probs)),
        "recall_at_1pct_fpr": recall_at_fpr(labels, probs, 0.01),
        "recall_at_5pct_fpr": recall_at_fpr(labels, probs, 0.05),
    }


def score(labels: np.ndarray, probs: np.ndarray, threshold: float,
          also_at_half: bool = False) -> dict[str, Any]:
    """The one entry point for a detector's figures on labelled data: the classification
    metrics at its threshold (and, if asked, at 0.5) and the threshold-free ranking metrics."""
    result: dict[str, Any] = {"at_threshold": classification_metrics(labels, probs, threshold)}
    if also_at_half:
        result["at_0.5"] = classification_metrics(labels, probs, 0.5)
    return {**result, **ranking_metrics(labels, probs)}


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising NLL of sigmoid(logit / T).

    One scalar keeps the ranking (ROC-AUC) and, with the threshold mapped through it, every
    decision unchanged; only the probabilities become honest.
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, s) - y * s))

    return float(np.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width bins of the FAKE probability: sum of |frequency - confidence|."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(labels[mask].mean() - probs[mask].mean())
    return float(total)


def bootstrap_intervals(labels: np.ndarray, probs: np.ndarray, threshold: float,
                        resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95% intervals of ROC-AUC, accuracy and each class's accuracy at `threshold`, by a
    bootstrap that keeps each class's count (so every resample has both classes)."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, float)
    rng = np.random.default_rng(seed)
    index = [np.flatnonzero(labels == c) for c in (0, 1)]
    draws: dict[str, list[float]] = {"roc_auc": [], "accuracy": [], "REAL accuracy": [],
                                     "FAKE accuracy": []}
    for _ in range(resamples):
        pick = np.concatenate([rng.choice(i, len(i)) for i in index])
        y, p = labels[pick], probs[pick]
        right = (p >= threshold) == y.astype(bool)
        draws["roc_auc"].append(skm.roc_auc_score(y, p))
        draws["accuracy"].append(right.mean())
        draws["REAL accuracy"].append(right[y == 0].mean())
        draws["FAKE accuracy"].append(right[y == 1].mean())
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
            for k, v in draws.items()}
