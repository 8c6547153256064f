"""What a user is told, per kind of picture: the share of each source's test images the detector
calls real, uncertain (near the threshold, or unlike its training data) and AI, with the
product's verdicts exactly as `predict` gives them. For real sources the AI share is the false
positive rate a user meets; for fakes the AI share is the catch rate.

    python benchmarks/per_kind.py --model native --out benchmarks/results/per_kind_native
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--model", default="native")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    args = parser.parse_args()
    import deepfake_detection as dfd
    from deepfake_detection.training.data import CLASS_NAMES, group_of, load_split

    test = load_split(Path(args.data) / "test")
    detector = dfd.load(args.model)
    counts: dict[str, Counter] = defaultdict(Counter)
    label_of: dict[str, str] = {}
    for path, label, result in zip(test.paths, test.labels,
                                   detector.predict_many(test.paths, batch_size=64)):
        source = group_of(path)
        counts[source][result.verdict or "error"] += 1
        label_of[source] = CLASS_NAMES[int(label)]
    rows = {s: {"label": label_of[s], "images": sum(c.values()),
                **{v: c[v] / sum(c.values()) for v in ("real", "uncertain", "fake")}}
            for s, c in sorted(counts.items(), key=lambda kv: (label_of[kv[0]], kv[0]))}
    lines = [f"# Verdicts per source: `{args.model}` on `{args.data}/test`", "",
             "| source | label | images | called real | uncertain | called AI |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {r['label']} | {r['images']} | {r['real']:.2f} | {r['uncertain']:.2f} | "
              f"{r['fake']:.2f} |" for s, r in rows.items()]
    for label in ("REAL", "FAKE"):
        total = Counter()
        for s, c in counts.items():
            if label_of[s] == label:
                total.update(c)
        n = sum(total.values())
        lines.append(f"| **all {label}** | {label} | {n} | {total['real'] / n:.2f} | "
                     f"{total['uncertain'] / n:.2f} | {total['fake'] / n:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
        Path(args.out + ".md").write_text(text)


if __name__ == "__main__":
    main()
