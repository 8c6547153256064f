"""What reading provenance costs beside a verdict: `provenance.read` against the native
detector's `predict` on a 1024x1024 image, interleaved in one process so the ratio holds on a
shared machine. Files: the public C2PA samples (`../shared/provenance/samples`, read in place)
and a 1024x1024 JPEG made here (no metadata).

    python benchmarks/provenance_cost.py --out benchmarks/results/provenance_cost.json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "provenance" / "samples"


def _seconds(call, repeats: int) -> float:
    """Median wall time of `call` over `repeats` runs (after one warm-up)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    import deepfake_detection as dfd
    from deepfake_detection.inference import provenance

    detector = dfd.load("native")
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), np.uint8)).save(buffer, "JPEG",
                                                                           quality=90)
    plain = buffer.getvalue()
    verdict = _seconds(lambda: detector.predict(plain), args.repeats)
    files = {"plain_1024.jpg": plain} | {p.name: p.read_bytes()
                                         for p in sorted(SAMPLES.glob("*")) if p.is_file()}
    rows = {}
    for name, data in files.items():
        cost = _seconds(lambda data=data: provenance.read(data), args.repeats)
        rows[name] = {"read_ms": round(cost * 1000, 2), "share_of_verdict": round(cost / verdict,
                                                                                  3)}
    result = {"verdict_1024_ms": round(verdict * 1000, 1), "files": rows,
              "worst_share": max(r["share_of_verdict"] for r in rows.values())}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
