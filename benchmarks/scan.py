"""Scanning throughput: `predict --jsonl` (one process) against `scan` on Ray Data (local mode),
on the same folders with the same detector, in one run; writes benchmarks/results/scan.{json,md}.

    python benchmarks/scan.py                       # sd-vs-real-32 train + test, 10,080 images
    python benchmarks/scan.py --concurrency 1 2 --paths /some/folder
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sd-vs-real-32"


def timed(args: list[str], output: Path) -> dict:
    """Run the CLI in a fresh process; wall time includes start-up and model loading."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepfake_detection", *args],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    return {"returncode": done.returncode, "images": len(rows), "seconds": seconds,
            "images_per_s": len(rows) / seconds, "summary": done.stderr.strip().splitlines()[-1],
            "verdicts": {r["source"]: r["verdict"] for r in rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="+",
                        default=[str(SHARED / "train"), str(SHARED / "test")])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from recipes import cpu_model

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "predict.jsonl"
        rows["predict --jsonl"] = timed(["predict", *args.paths, "--jsonl", "-o", str(out)], out)
        for n in args.concurrency:
            out = Path(tmp) / f"scan{n}.jsonl"
            rows[f"scan (Ray local, {n} actor(s))"] = timed(
                ["scan", *args.paths, "-o", str(out), "--concurrency", str(n)], out)
    reference = rows["predict --jsonl"]["verdicts"]
    for row in rows.values():
        row["same_verdicts_as_predict"] = row.pop("verdicts") == reference
    result = {"paths": args.paths, "machine": cpu_model(), "cores": os.cpu_count(),
              "command": "python " + " ".join(sys.argv), "rows": rows}
    lines = [f"# Scanning throughput ({result['machine']}, {result['cores']} cores)", "",
             f"Command: `{result['command']}`; wall time per command, including process start, "
             "model loading and (for Ray) starting the local cluster.", "",
             "| runner | images | seconds | images/s | same verdicts as predict |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['images']} | {row['seconds']:.1f} | "
                     f"{row['images_per_s']:.0f} | {row['same_verdicts_as_predict']} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "scan.json").write_text(json.dumps(result, indent=2))
    (Path(args.out) / "scan.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
