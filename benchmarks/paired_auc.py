"""Is one detector's test ROC-AUC really lower than another's? A paired bootstrap over images.

Both detectors score the same files as uploads (`predict_many`); the test images are resampled
with replacement, keeping each class's count, and the ROC-AUC difference (B - A) is recomputed on
every resample. The 95% interval says whether a gap of a few thousandths is more than the test
split's own noise.

    mkdir -p /tmp/before && git archive 0eeef63 src/deepfake_detection/assets/native_detector \\
        | tar -x -C /tmp/before
    python benchmarks/paired_auc.py \\
        before=/tmp/before/src/deepfake_detection/assets/native_detector now=native \\
        --out benchmarks/results/paired_auc_native
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score


def paired_bootstrap(labels: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int,
                     seed: int) -> dict[str, float]:
    """ROC-AUC of a and b, their difference b - a and its 2.5/97.5 percentiles, resampling
    within each class so every resample has both."""
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(labels == c) for c in (0, 1)]
    diffs = np.empty(resamples)
    for i in range(resamples):
        idx = np.concatenate([rng.choice(c, len(c)) for c in classes])
        diffs[i] = roc_auc_score(labels[idx], b[idx]) - roc_auc_score(labels[idx], a[idx])
    auc_a, auc_b = roc_auc_score(labels, a), roc_auc_score(labels, b)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"roc_auc_a": float(auc_a), "roc_auc_b": float(auc_b),
            "difference": float(auc_b - auc_a), "ci95_low": float(low), "ci95_high": float(high),
            "share_of_resamples_b_lower": float(np.mean(diffs < 0)), "resamples": resamples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs=2, help="A and B, each NAME=PATH or a bundled name")
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/paired_auc")
    args = parser.parse_args()
    from laundering import named_models  # benchmarks/laundering.py, beside this script

    import deepfake_detection as dfd
    from deepfake_detection.evaluation.laundering import upload_probabilities
    from deepfake_detection.training.data import load_split

    test = load_split(Path(args.data) / "test")
    paths, labels = list(test.paths), np.asarray(test.labels)
    named = list(named_models(args.models).items())
    if len(named) != 2:
        parser.error("A and B need different names")
    probs = [upload_probabilities(dfd.load(path), paths) for _, path in named]
    result = {"a": dict([named[0]]), "b": dict([named[1]]), "data": args.data,
              "images": len(paths), **paired_bootstrap(labels, *probs, args.resamples, args.seed)}
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
