"""Which EfficientNet-Lite0 stages know about generated images? Linear probes per stage.

The frozen ImageNet Lite0 turns every mixed-256 image into the per-channel (mean, RMS) of each
stage's last block output and of the top features (`training.probe.feature_model`); a
logistic regression on train, scored by ROC-AUC on test, is fitted on one stage at a time and
on groups of them. This is what the multiscale head (`efficientnet_lite0_multiscale`) was
built on.

    python benchmarks/probe_stages.py --out benchmarks/results/probe_stages.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

GROUPS = {"top": (7,), "stages 0-2": (0, 1, 2), "stages 3-6": (3, 4, 5, 6),
          "stages 3-6 + top": (3, 4, 5, 6, 7), "stages 0-6": tuple(range(7)),
          "all + top": tuple(range(8))}


def main() -> None:
    from deepfake_detection.imaging import ImageSpec
    from deepfake_detection.models.efficientnet_lite import block_layout
    from deepfake_detection.training import probe
    from deepfake_detection.training.data import load_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--c", type=float, default=0.003, help="inverse L2 strength")
    parser.add_argument("--out")
    args = parser.parse_args()
    spec = ImageSpec(size=256, fit="native", resize_method="lanczos")
    model = probe.feature_model("efficientnet_lite0", 256)
    train, test = (load_split(Path(args.data) / split) for split in ("train", "test"))
    f_train, f_test = (probe.extract(model, split.paths, spec) for split in (train, test))
    widths = [max(row[5] for row in block_layout(1.0, 1.0) if row[0] == s) for s in range(7)]
    edges = np.cumsum([0] + [2 * c for c in widths + [1280]])  # (mean, RMS) per channel
    assert edges[-1] == f_train.shape[1]

    def auc(stages: tuple[int, ...]) -> float:
        cols = np.concatenate([np.arange(edges[s], edges[s + 1]) for s in stages])
        fitted = probe.fit(f_train[:, cols], train.labels, c=args.c)
        scores = fitted.predict_proba(f_test[:, cols])[:, 1]
        return round(float(roc_auc_score(test.labels, scores)), 4)

    result = {f"stage {s}": auc((s,)) for s in range(7)}
    result.update({name: auc(stages) for name, stages in GROUPS.items()})
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps({"roc_auc": result, "c": args.c}, indent=2))


if __name__ == "__main__":
    main()
