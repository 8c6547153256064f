"""The verdict rule before and after "a verdict never contradicts its probability", on the same
records: how many reals are called AI, how many fakes real, and how many records say `real` at
50% or more (or `fake` under 50%); and the crop-disagreement rule on images cut into two crops.
Reads a `predict --jsonl` file of a labelled folder (REAL/ and FAKE/ in each path); writes
benchmarks/results/verdict_rule.{json,md}.

    deepfake-detection predict ../shared/data/mixed-256/test --model native --jsonl \
        -o runs/native_test.jsonl
    python benchmarks/verdict_rule.py runs/native_test.jsonl

Records the detector withheld for novelty or size (`uncertain` whatever the band) stay uncertain
under both rules.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
WITHHELD = "so the verdict is 'uncertain'"  # how novelty and size warnings end


def band(prob: float, threshold: float, margin: float) -> str:
    """The rule before: `uncertain` within `margin` of the threshold."""
    if prob >= threshold + margin:
        return "fake"
    return "real" if prob < threshold - margin else "uncertain"


def one_rule(prob: float, threshold: float, margin: float) -> str:
    """The rule now (Detector.verdict): the band, widened to 50% where it does not reach it."""
    if prob >= max(threshold + margin, 0.5):
        return "fake"
    return "real" if prob < min(threshold - margin, 0.5) else "uncertain"


def tally(rows: list[dict], rule, margin: float) -> dict:
    counts: Counter[tuple[str, str]] = Counter()
    contradictions = 0
    for row in rows:
        truth = "REAL" if "/REAL/" in row["source"] else "FAKE"
        withheld = any(WITHHELD in w for w in row["warnings"])
        verdict = "uncertain" if withheld else rule(row["prob_fake"], row["threshold"], margin)
        counts[truth, verdict] += 1
        contradictions += (verdict == "real" and row["prob_fake"] >= 0.5) or (
            verdict == "fake" and row["prob_fake"] < 0.5)
    reals = sum(n for (t, _), n in counts.items() if t == "REAL")
    fakes = sum(n for (t, _), n in counts.items() if t == "FAKE")
    return {"reals": reals, "fakes": fakes, "contradictions": contradictions,
            **{f"{t.lower()}s_called_{v}": counts[t, v] / max(1, n)
               for t, n in (("REAL", reals), ("FAKE", fakes))
               for v in ("real", "uncertain", "fake")}}


def two_crop_images(rows: list[dict], margin: float, bars: tuple[float, ...]) -> list[dict]:
    """Images cut into two crops (`<id>_c0`, `<id>_c1`) scored as the Detector scores a photo:
    the mean logit of its crops. For each bar, how many `real` verdicts a crop scoring at least
    the bar turns to `uncertain`, among real images and among fakes."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[re.sub(r"_c\d+$", "", Path(row["source"]).stem)].append(row)
    images = []
    for crops in (g for g in groups.values() if len(g) > 1):
        probs = [r["prob_fake"] for r in crops]
        mean = sum(math.log(p / (1 - p)) for p in probs) / len(probs)
        verdict = one_rule(1 / (1 + math.exp(-mean)), crops[0]["threshold"], margin)
        images.append(("/REAL/" in crops[0]["source"], verdict, max(probs)))
    out = []
    for bar in bars:
        moved = Counter(real for real, verdict, top in images if verdict == "real" and top >= bar)
        called_real = Counter(real for real, verdict, _ in images if verdict == "real")
        out.append({"bar": bar, "images": len(images),
                    "reals": sum(real for real, _, _ in images),
                    "reals_called_real": called_real[True], "reals_moved": moved[True],
                    "fakes_called_real": called_real[False], "fakes_rescued": moved[False]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", help="a predict --jsonl file of a labelled folder")
    parser.add_argument("--margin", type=float, default=0.1, help="the --uncertain-margin used")
    parser.add_argument("--out", default=str(RESULTS / "verdict_rule"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.records).read_text().splitlines()]
    rows = [r for r in rows if not r["error"]]
    result = {"records": args.records, "threshold": rows[0]["threshold"],
              "before": tally(rows, band, args.margin), "now": tally(rows, one_rule, args.margin)}
    lines = [f"# Verdict rule: {len(rows)} records of `{args.records}`, threshold "
             f"{result['threshold']:.3f}, margin {args.margin}", "",
             "| rule | reals called AI | reals called real | fakes called real | fakes caught "
             "| records contradicting their probability |", "|---|---|---|---|---|---|"]
    for name in ("before", "now"):
        r = result[name]
        lines.append(f"| {name} | {r['reals_called_fake']:.3f} | {r['reals_called_real']:.3f} | "
                     f"{r['fakes_called_real']:.3f} | {r['fakes_called_fake']:.3f} | "
                     f"{r['contradictions']} |")
    result["crops_disagree"] = two_crop_images(rows, args.margin, (0.74, 0.8, 0.9))
    first = result["crops_disagree"][0]
    lines += ["", f"Two-crop images ({first['images']}, {first['reals']} real): a `real` verdict "
              "withheld when one crop scores at least the bar (the Detector uses 0.8).", "",
              "| bar | reals called real | of them moved to uncertain | fakes called real | of "
              "them rescued |", "|---|---|---|---|---|"]
    lines += [f"| {r['bar']:.2f} | {r['reals_called_real']} | {r['reals_moved']} | "
              f"{r['fakes_called_real']} | {r['fakes_rescued']} |"
              for r in result["crops_disagree"]]
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
