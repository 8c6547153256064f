from __future__ import annotations

import numpy as np
import pytest

from deepfake_detection.metrics import (
    best_f1_threshold,
    classification_metrics,
    ranking_metrics,
    recall_at_fpr,
    strict_threshold,
)


def test_best_f1_threshold_picks_the_separating_point():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    best = best_f1_threshold(labels, probs)
    # At 0.6 all three FAKE are caught with one false positive: F1 = 6/7, the maximum.
    assert best["value"] == pytest.approx(0.6)
    assert best["f1"] == pytest.approx(6 / 7)
    assert "validation" in best["rule"]


def test_saturated_probabilities_still_give_a_threshold_inside_0_1():
    """Probabilities of exactly 1.0 (a confident model) once made the threshold 1.0, which the
    bundle refuses: training ended with an error after all its epochs."""
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.2, 0.4, 1.0, 1.0])
    value = best_f1_threshold(labels, probs)["value"]
    assert 0.4 < value < 1.0 and np.array_equal(probs >= value, labels == 1)


def test_threshold_needs_both_classes():
    with pytest.raises(ValueError):
        best_f1_threshold(np.zeros(4), np.linspace(0, 1, 4))


def test_classification_metrics_confusion_layout():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.2, 0.9, 0.8, 0.4, 0.7])
    m = classification_metrics(labels, probs, 0.5)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["per_class_accuracy"] == {"REAL": 0.5, "FAKE": pytest.approx(2 / 3)}
    assert m["misclassified"] == 2 and m["misclassified_pct"] == pytest.approx(40.0)


def test_ranking_metrics_and_recall_at_fpr():
    labels = np.array([0] * 100 + [1] * 100)
    probs = np.concatenate([np.linspace(0, 0.5, 100), np.linspace(0.3, 1.0, 100)])
    r = ranking_metrics(labels, probs)
    assert 0.9 < r["roc_auc"] < 1.0 and 0.9 < r["pr_auc"] <= 1.0
    # Only one REAL scores at 0.5, the top: at 1% FPR every FAKE above it counts.
    assert recall_at_fpr(labels, probs, 0.01) == pytest.approx((probs[100:] > 0.5).mean(), 0.02)
    assert recall_at_fpr(labels, probs, 0.0) <= recall_at_fpr(labels, probs, 0.05)


def test_temperature_scaling_recovers_a_known_temperature():
    from deepfake_detection.metrics import fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 6, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-logits / 2.0))  # truth is sigmoid(z / 2)
    assert fit_temperature(labels, logits) == pytest.approx(2.0, rel=0.05)


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    from deepfake_detection.metrics import expected_calibration_error

    rng = np.random.default_rng(1)
    probs = rng.random(50000)
    labels = rng.random(50000) < probs
    assert expected_calibration_error(labels, probs) < 0.01
    overconfident = np.where(probs > 0.5, 1.0, 0.0)
    assert expected_calibration_error(labels, overconfident) > 0.2


def test_balanced_threshold_serves_a_balanced_test_set():
    """On a 4:1 REAL:FAKE validation set, plain max-F1 sets a high threshold that misses fakes;
    weighting the classes equally lowers it and gives the better balanced accuracy on a
    balanced sample from the same score distributions."""
    rng = np.random.default_rng(0)
    val_y = np.r_[np.zeros(800), np.ones(200)].astype(int)
    val_p = np.r_[rng.beta(2, 5, 800), rng.beta(5, 2, 200)]
    plain = best_f1_threshold(val_y, val_p)["value"]
    balanced = best_f1_threshold(val_y, val_p, balanced=True)
    assert balanced["value"] < plain and "weighted equally" in balanced["rule"]
    test_y = np.r_[np.zeros(5000), np.ones(5000)].astype(int)
    test_p = np.r_[rng.beta(2, 5, 5000), rng.beta(5, 2, 5000)]

    def balanced_accuracy(t):
        per_class = classification_metrics(test_y, test_p, t)["per_class_accuracy"]
        return (per_class["REAL"] + per_class["FAKE"]) / 2

    assert balanced_accuracy(balanced["value"]) > balanced_accuracy(plain)


def test_score_is_the_threshold_and_ranking_figures_together():
    from deepfake_detection.metrics import classification_metrics, ranking_metrics, score

    labels = np.array([0, 0, 1, 1, 1, 0])
    probs = np.array([0.1, 0.7, 0.8, 0.4, 0.9, 0.2])
    figures = score(labels, probs, 0.6, also_at_half=True)
    assert figures["at_threshold"] == classification_metrics(labels, probs, 0.6)
    assert figures["at_0.5"] == classification_metrics(labels, probs, 0.5)
    assert figures["roc_auc"] == ranking_metrics(labels, probs)["roc_auc"]
    assert "at_0.5" not in score(labels, probs, 0.6)


def test_bootstrap_intervals_hold_the_point_estimate_and_shrink_with_more_images():
    from deepfake_detection.metrics import bootstrap_intervals

    rng = np.random.default_rng(0)

    def sample(n):
        labels = np.repeat([0, 1], n)
        return labels, np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, 2 * n), 0, 1)

    small, large = (bootstrap_intervals(*sample(n), 0.5, resamples=300) for n in (20, 500))
    for ci in (small, large):
        assert set(ci) == {"roc_auc", "accuracy", "REAL accuracy", "FAKE accuracy"}
        assert all(lo <= hi for lo, hi in ci.values())
    width = {k: (hi - lo) for k, (lo, hi) in small.items()}
    assert all(large[k][1] - large[k][0] < width[k] for k in width)


@pytest.mark.parametrize("reals", [50, 99, 100, 416, 1000])
def test_the_strict_threshold_is_the_lowest_that_calls_at_most_1pct_of_reals_ai(reals):
    rng = np.random.default_rng(reals)
    probs = np.concatenate([rng.beta(2, 5, reals), rng.beta(5, 2, 300)])
    labels = np.r_[np.zeros(reals, int), np.ones(300, int)]
    strict = strict_threshold(labels, probs)
    flagged = probs[labels == 0] >= strict["value"]
    assert flagged.sum() <= 0.01 * reals
    # one notch lower (the next real score down) would call one real too many AI
    below = np.sort(probs[labels == 0])[::-1][int(flagged.sum())]
    assert (probs[labels == 0] >= below).sum() > 0.01 * reals
    assert strict["reals_called_fake"] == pytest.approx(flagged.mean())
    assert strict["fakes_caught"] == pytest.approx((probs[labels == 1] >= strict["value"]).mean())
    assert strict["fakes_caught"] == pytest.approx(recall_at_fpr(labels, probs, 0.01))
