"""Streaming `predict --jsonl -o FILE`: how soon the first record is on disk, and throughput, for
the old default batch (256 images) against the new one (32), alternating in one run so the
shared machine's noise falls on both; writes benchmarks/results/predict_stream.{json,md}.

    python benchmarks/predict_stream.py                       # 400 mixed-256 test images
    python benchmarks/predict_stream.py --images 800 --repeats 3

Times are from the process start (TensorFlow and the model load included), so the first-record
time is what a user waits for; throughput is images over the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mixed-256" / "test"


def sample(folder: Path, count: int, into: Path) -> Path:
    """`count` images of both classes, linked (not copied) into one folder."""
    files = sorted(p for cls in ("REAL", "FAKE") for p in (folder / cls).iterdir())
    step = max(1, len(files) // count)
    for path in files[::step][:count]:
        (into / path.name).symlink_to(path.resolve())
    return into


def run(folder: Path, batch: int, output: Path) -> dict:
    """One predict run in a fresh process, polling the output for its first complete line."""
    output.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "deepfake_detection", "predict", str(folder),
                             "--jsonl", "-o", str(output), "--batch-size", str(batch),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    first = None
    while proc.poll() is None:
        if first is None and output.is_file() and b"\n" in output.read_bytes()[:65536]:
            first = time.perf_counter() - start
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    first = first if first is not None else seconds
    rows = output.read_text().splitlines()
    return {"batch": batch, "returncode": proc.returncode, "images": len(rows),
            "first_record_s": round(first, 2), "seconds": round(seconds, 2),
            "images_per_s": round(len(rows) / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 32])
    parser.add_argument("--out", default=str(RESULTS / "predict_stream"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = sample(Path(args.data), args.images, Path(tmp))
        out = Path(tmp + "-out.jsonl")
        runs = [run(folder, batch, out) for _ in range(args.repeats) for batch in args.batches]
        out.unlink(missing_ok=True)
    summary = {}
    for batch in args.batches:
        mine = [r for r in runs if r["batch"] == batch]
        summary[batch] = {k: statistics.median(r[k] for r in mine)
                          for k in ("first_record_s", "images_per_s")}
    base = summary[args.batches[0]]["images_per_s"]
    lines = ["# Streaming predict: first record on disk and throughput", "",
             f"`python benchmarks/predict_stream.py --images {args.images} --repeats "
             f"{args.repeats}`; {os.cpu_count()} cores; medians of {args.repeats} alternating "
             "runs, times from process start.", "",
             "| --batch-size | first record on disk (s) | images/s | throughput vs "
             f"batch {args.batches[0]} |", "|---|---|---|---|"]
    lines += [f"| {b} | {s['first_record_s']:.1f} | {s['images_per_s']:.1f} | "
              f"{s['images_per_s'] / base:.2f} |" for b, s in summary.items()]
    Path(args.out + ".json").write_text(json.dumps({"runs": runs, "summary": summary},
                                                   indent=2) + "\n")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
