"""What tiling does to accuracy on larger images: whole-image resize vs an NxN grid of tiles.

Scores `sd-vs-real-256/test` (or --data DIR) with the bundled detector (or --model) three ways
and writes benchmarks/results/tiles_256.{json,md}:

    python benchmarks/tiles_256.py [--data ../shared/data/sd-vs-real-256] [--grids 2 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import classification_metrics, ranking_metrics
from deepfake_detection.training import data

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-256")
    parser.add_argument("--model", default=None)
    parser.add_argument("--grids", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args()
    detector = Detector.load(args.model)
    files = data.discover(Path(args.data) / "test")
    rows = []
    methods = [("whole image", 0)] + [(f"{g}x{g} tiles + whole, mean", g) for g in args.grids]
    for name, grid in methods:
        start = time.perf_counter()
        if grid:
            probs = np.array([detector.predict_tiles(p, grid).prob_fake
                              for p in tqdm(files.paths, desc=name)])
        else:
            probs = np.array([r.prob_fake for r in detector.predict_many(files.paths)])
        seconds = time.perf_counter() - start
        at = classification_metrics(files.labels, probs, detector.threshold)
        rows.append({"method": name, "grid": grid, "seconds": seconds,
                     "accuracy": at["accuracy"], **{f"{k}_accuracy": v for k, v in
                                                    at["per_class_accuracy"].items()},
                     "balanced_accuracy": float(np.mean(list(at["per_class_accuracy"].values()))),
                     **ranking_metrics(files.labels, probs)})
    result = {"data": args.data, "counts": files.counts(), "threshold": detector.threshold,
              "model": detector.metadata.get("architecture"), "machine": platform.processor()
              or platform.machine(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tiles_256.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Tiling on `{args.data}/test` ({files.counts()}), bundled `{result['model']}`",
             "", "Command: `python benchmarks/tiles_256.py`", "",
             "| method | accuracy | REAL acc. | FAKE acc. | balanced acc. | ROC-AUC | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['accuracy']:.4f} | {r['REAL_accuracy']:.4f} | "
                     f"{r['FAKE_accuracy']:.4f} | {r['balanced_accuracy']:.4f} | "
                     f"{r['roc_auc']:.4f} | {r['seconds']:.1f} |")
    (RESULTS / "tiles_256.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
