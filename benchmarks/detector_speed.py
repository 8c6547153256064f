"""Speed of whole detectors side by side: one 1024x1024 verdict (decode included) and batch
throughput at the input size, the detectors timed in turn, round after round, so that a shared
machine's load falls on all of them alike; medians and ratios to the first.

    python benchmarks/detector_speed.py native runs/native_fused \
        --out benchmarks/results/detector_speed.json
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def jpeg_1024() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def one_round(detector, image: bytes, batch: np.ndarray) -> tuple[float, float]:
    """(seconds for one verdict, images/s for one batch)."""
    start = time.perf_counter()
    detector.predict(image)
    latency = time.perf_counter() - start
    start = time.perf_counter()
    detector.logits(batch)
    return latency, len(batch) / (time.perf_counter() - start)


def main() -> None:
    from deepfake_detection.inference.detectors import load

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("detectors", nargs="+", help="native, cifake, robust or bundle folders")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/detector_speed.json")
    args = parser.parse_args()
    detectors = {name: load(name) for name in args.detectors}
    image = jpeg_1024()
    batches = {name: np.random.default_rng(1).uniform(
        0, 255, (args.batch, d.spec.size, d.spec.size, 3)).astype(np.float32)
        for name, d in detectors.items()}
    for name, detector in detectors.items():  # traced and warm
        one_round(detector, image, batches[name])
    times: dict[str, list] = {name: [] for name in detectors}
    for _ in range(args.rounds):
        for name, detector in detectors.items():
            times[name].append(one_round(detector, image, batches[name]))
    first = args.detectors[0]
    rows = {name: {"latency_1024_s": statistics.median(t for t, _ in runs),
                   "batch_img_s": statistics.median(s for _, s in runs)}
            for name, runs in times.items()}
    for row in rows.values():
        row["latency_ratio"] = row["latency_1024_s"] / rows[first]["latency_1024_s"]
        row["throughput_ratio"] = row["batch_img_s"] / rows[first]["batch_img_s"]
    result = {"machine": platform.processor() or platform.machine(), "rounds": args.rounds,
              "batch": args.batch, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name}: one 1024x1024 verdict {row['latency_1024_s']:.3f} s "
              f"(x{row['latency_ratio']:.2f}), batch {row['batch_img_s']:.0f} images/s "
              f"(x{row['throughput_ratio']:.2f})")


if __name__ == "__main__":
    main()
