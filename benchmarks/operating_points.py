"""What each operating point does on held-out test images: `--operating-point balanced` (the
bundle's threshold) against `strict` (the lowest threshold calling at most 1% of its validation
reals AI), for every shipped detector on its own test set.

Per detector and point: the verdicts `predict` gives (reals called AI, fakes caught, the rest
uncertain) and, beside them, the fakes a test-chosen threshold would catch at 1% and 5% of test
reals called AI (an oracle: what a perfectly set strict point could do).

    python benchmarks/operating_points.py            # results/operating_points.{json,md}
    python benchmarks/operating_points.py --model native=runs/native-1207 --data ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DEFAULT = {"native": "../shared/data/mixed-256", "cifake": "../shared/data/sd-vs-real-32",
           "robust": "../shared/data/sd-vs-real-32"}


def measure(model: str, data: str) -> dict:
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.inference.shipped import OPERATING_POINTS
    from deepfake_detection.metrics import recall_at_fpr
    from deepfake_detection.training.data import load_split

    test = load_split(Path(data) / "test")
    labels = np.asarray(test.labels)
    detector = load(model)
    record = {"data": data, "reals": int((labels == 0).sum()), "fakes": int(labels.sum()),
              "points": {}}
    for point in OPERATING_POINTS:
        at = detector.at(point)
        records = list(at.predict_many(test.paths, batch_size=64))
        probs = np.array([r.prob_fake for r in records])
        verdicts = np.array([r.verdict for r in records])  # novelty and crop rules included
        record["oracle_fakes_caught_at_1pct"] = recall_at_fpr(labels, probs, 0.01)
        record["oracle_fakes_caught_at_5pct"] = recall_at_fpr(labels, probs, 0.05)
        record["points"][point] = {
            "threshold": at.threshold, "band": list(at.band),
            "reals_called_ai": float((verdicts[labels == 0] == "fake").mean()),
            "reals_uncertain": float((verdicts[labels == 0] == "uncertain").mean()),
            "fakes_caught": float((verdicts[labels == 1] == "fake").mean()),
            "fakes_uncertain": float((verdicts[labels == 1] == "uncertain").mean())}
    return record


def table(results: dict[str, dict]) -> str:
    rows = [f"| {name} ({r['reals']} reals, {r['fakes']} fakes) | {point} | "
            f"{p['threshold']:.3f} | {p['reals_called_ai']:.3f} | {p['fakes_caught']:.3f} | "
            f"{p['reals_uncertain']:.3f} / {p['fakes_uncertain']:.3f} | "
            f"{r['oracle_fakes_caught_at_1pct']:.3f} / {r['oracle_fakes_caught_at_5pct']:.3f} |"
            for name, r in results.items() for point, p in r["points"].items()]
    return "\n".join([
        "# Operating points on test", "",
        "Verdicts as `predict --operating-point POINT` gives them, on each detector's test "
        "split (thresholds set on validation). Oracle: the fakes a threshold chosen on these "
        "test reals would catch with 1% / 5% of them called AI.", "",
        "| detector (test) | point | threshold | reals called AI | fakes caught | uncertain "
        "(reals / fakes) | oracle 1% / 5% |", "|---|---|---|---|---|---|---|", *rows, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", default=list(DEFAULT), metavar="NAME[=BUNDLE]",
                        help="shipped names, or NAME=BUNDLE folders (data: the shipped name's)")
    parser.add_argument("--data", help="one test set for every --model (default: each its own)")
    parser.add_argument("--out", default=str(RESULTS / "operating_points"))
    args = parser.parse_args()
    results = {}
    for item in args.model:
        name, _, path = item.partition("=")
        results[name] = measure(path or name, args.data or DEFAULT.get(name, DEFAULT["native"]))
        print(name, json.dumps(results[name]["points"]), flush=True)
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out + ".md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
