"""Linear probes on frozen EfficientNet-Lite0 features on a CIFAKE-style set, by input size.

How much do ImageNet features know about 32x32 Stable Diffusion images, and does upscaling to
the sizes a pretrained net was made for help? Features are extracted once per size (the
Detector's own resize: centre crop, Lanczos), a logistic regression is fitted on train, the
threshold chosen on a validation split (classes weighted equally), and test is scored; random
weights at the same size are the control.

    python benchmarks/probe_sizes.py --data ../shared/data/sd-vs-real-32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def run(data: Path, size: int, weights: str, train, val, test) -> dict:
    from deepfake_detection.imaging import ImageSpec
    from deepfake_detection.metrics import (
        best_f1_threshold,
        classification_metrics,
        ranking_metrics,
    )
    from deepfake_detection.training import probe
    from deepfake_detection.training.data import class_weights

    spec = ImageSpec(size=size)
    model = probe.feature_model("efficientnet_lite0", size, weights)
    started = time.perf_counter()
    feats = [probe.extract(model, files.paths, spec, batch_size=256)
             for files in (train, val, test)]
    seconds = time.perf_counter() - started
    per_class = class_weights(train.labels)
    fitted = probe.fit(feats[0], train.labels, np.array([per_class[y] for y in train.labels]))
    threshold = best_f1_threshold(val.labels, fitted.predict_proba(feats[1])[:, 1], True)["value"]
    probs = fitted.predict_proba(feats[2])[:, 1]
    at = classification_metrics(test.labels, probs, threshold)
    return {"size": size, "weights": weights, "accuracy": at["accuracy"],
            "REAL": at["per_class_accuracy"]["REAL"], "FAKE": at["per_class_accuracy"]["FAKE"],
            "roc_auc": ranking_metrics(test.labels, probs)["roc_auc"],
            "extract_img_s": sum(len(f.paths) for f in (train, val, test)) / seconds}


def main() -> None:
    from deepfake_detection.training.data import load_split, stratified_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-32")
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--out", default=str(RESULTS / "probe_sizes"))
    args = parser.parse_args()
    train, val = stratified_split(load_split(Path(args.data) / "train"), 0.1, 42)
    test = load_split(Path(args.data) / "test")
    rows = [run(Path(args.data), size, "imagenet", train, val, test) for size in args.sizes]
    rows.append(run(Path(args.data), 64, "none", train, val, test))
    lines = [f"`python {' '.join(sys.argv)}`", "",
             "| input size | weights | test acc. | REAL | FAKE | ROC-AUC | features img/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['weights']} | {r['accuracy']:.4f} | {r['REAL']:.4f} | "
              f"{r['FAKE']:.4f} | {r['roc_auc']:.4f} | {r['extract_img_s']:.0f} |" for r in rows]
    Path(args.out + ".json").write_text(json.dumps({"data": args.data, "rows": rows}, indent=2))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
