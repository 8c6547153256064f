"""Decisions from local evidence: how an image's crop scores should become one verdict.

A native detector scores several 256-px crops of a large image and averages their logits (a
log-odds mean). A generated image carries its traces everywhere while a real photo varies, which
argues for letting the most generated-looking crop decide (max, i.e. top-1). mixed-256 keeps two
crops of one source image for many sources (`<source>_<id>_c0/_c1`, same split), which makes a
small two-crop proxy for a large upload: this scores every test crop once with the bundle and
compares the rules on the images that have two crops. ROC-AUC is rule-against-rule fair; the
class accuracies use the bundle's own threshold, which was chosen for single crops.

    python benchmarks/aggregation.py --model native --out benchmarks/results/aggregation
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

RULES = {"mean logit (shipped)": np.mean, "max logit (top-1)": np.max,
         "min logit": np.min}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--model", default="native")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score

    import deepfake_detection as dfd
    from deepfake_detection.training.data import load_split

    test = load_split(Path(args.data) / "test")
    detector = dfd.load(args.model)
    probs = np.array([r.prob_fake for r in detector.predict_many(test.paths, batch_size=64)])
    logits = np.log(np.clip(probs, 1e-7, 1)) - np.log(np.clip(1 - probs, 1e-7, 1))
    cut = float(np.log(detector.threshold / (1 - detector.threshold)))
    groups: dict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(test.paths):
        groups[re.sub(r"_c\d+$", "", Path(path).stem)].append(index)
    pairs = [members for members in groups.values() if len(members) >= 2]
    labels = np.array([test.labels[m[0]] for m in pairs])
    rows = {}
    for name, rule in RULES.items():
        score = np.array([rule(logits[m]) for m in pairs])
        rows[name] = {"roc_auc": float(roc_auc_score(labels, score)),
                      "fakes_caught": float((score[labels == 1] >= cut).mean()),
                      "reals_called_real": float((score[labels == 0] < cut).mean())}
    single = np.array([logits[m[0]] for m in pairs])
    rows["one crop (c0)"] = {"roc_auc": float(roc_auc_score(labels, single)),
                             "fakes_caught": float((single[labels == 1] >= cut).mean()),
                             "reals_called_real": float((single[labels == 0] < cut).mean())}
    result = {"model": args.model, "images": len(pairs), "fake_images": int(labels.sum()),
              "threshold": detector.threshold, "rules": rows}
    lines = [f"# Crop aggregation: `{args.model}`, {len(pairs)} test images with two crops "
             f"({int(labels.sum())} fake)", "",
             "`python benchmarks/aggregation.py --model " + args.model + "`", "",
             "| rule | ROC-AUC | fakes caught | reals called real |", "|---|---|---|---|",
             *[f"| {n} | {r['roc_auc']:.3f} | {r['fakes_caught']:.2f} | "
               f"{r['reals_called_real']:.2f} |" for n, r in rows.items()], ""]
    print("\n".join(lines))
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out + ".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
