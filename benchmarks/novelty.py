"""How often the novelty check withholds a verdict: on the detector's own test split, on a
related set, and on images made here that are unlike any training photo or generation.

    python benchmarks/novelty.py --model native --data ../shared/data/mixed-256 \
        --related ../shared/data/sd-vs-real-256

Made-here images (seeded, 40 of each, 512x512): flat colours, smooth gradients, uniform noise,
black text on white (a document or screenshot), hard checkerboards, and 32x32 thumbnails
enlarged 16x (blocky). A verdict on those is meaningless, so `uncertain` is the right answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

RESULTS = Path(__file__).parent / "results"


def made_here(kind: str, rng: np.random.Generator, size: int = 512) -> np.ndarray:
    if kind == "flat":
        return np.broadcast_to(rng.integers(0, 256, 3, np.uint8), (size, size, 3)).copy()
    if kind == "gradient":
        ramp = np.linspace(0, 1, size)[None, :, None]
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return np.broadcast_to(a + (b - a) * ramp, (size, size, 3)).astype(np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (size, size, 3), np.uint8)
    if kind == "text":
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)
        for row in range(0, size, 14):
            words = "".join(chr(c) for c in rng.integers(97, 123, 60))
            draw.text((8, row), words, fill="black")
        return np.asarray(image)
    if kind == "checkerboard":
        cell = int(rng.integers(4, 64))
        board = (np.indices((size, size)).sum(0) // cell % 2 * 255).astype(np.uint8)
        return np.stack([board] * 3, -1)
    if kind == "blocky_thumbnail":
        small = rng.integers(0, 256, (32, 32, 3), np.uint8)
        return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST))
    raise ValueError(kind)


KINDS = ("flat", "gradient", "noise", "text", "checkerboard", "blocky_thumbnail")


def flagged(detector, sources) -> dict:
    results = list(detector.predict_many(sources, batch_size=64))
    novel = np.array([r.novelty > detector.novelty.threshold for r in results])
    return {"n": len(results), "uncertain_by_novelty": float(novel.mean()),
            "median_novelty": float(np.median([r.novelty for r in results])),
            "fake_verdicts_without_check": float(np.mean([r.label == "FAKE" for r in results]))}


def main() -> None:
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.training.data import discover

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="native")
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--related", default="../shared/data/sd-vs-real-256")
    parser.add_argument("--out", default=str(RESULTS / "novelty"))
    args = parser.parse_args()
    detector = load(args.model)
    rows = {"own test split": flagged(detector, discover(Path(args.data) / "test").paths)}
    if args.related:
        rows[f"related: {Path(args.related).name} test"] = flagged(
            detector, discover(Path(args.related) / "test").paths)
    rng = np.random.default_rng(0)
    for kind in KINDS:
        rows[f"made here: {kind}"] = flagged(detector, [made_here(kind, rng) for _ in range(40)])
    lines = [f"`python {' '.join(sys.argv)}` (threshold {detector.novelty.threshold:.2f})", "",
             "| images | n | withheld as uncertain | median novelty | FAKE at the threshold |",
             "|---|---|---|---|---|"]
    lines += [f"| {k} | {r['n']} | {r['uncertain_by_novelty']:.1%} | {r['median_novelty']:.2f} "
              f"| {r['fake_verdicts_without_check']:.1%} |" for k, r in rows.items()]
    Path(args.out + ".json").write_text(json.dumps(rows, indent=2))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
