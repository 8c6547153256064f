"""Same seed, same data, same command: the same model? And what does determinism cost?

Runs one short `train` command (the fast recipe with its augmentation, on a seeded slice of
sd-vs-real-32) three times in separate processes: twice with `deterministic` on (the default)
and once with it off, alternating so drift on this shared machine hits both. Reports whether the
two deterministic runs saved identical weights, thresholds and temperatures, and the wall-time
ratio off / on.

    python benchmarks/determinism.py --per-class 1000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def run(data: str, out: Path, per_class: int, epochs: int, deterministic: bool) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepfake_detection", "train", "--recipe", "fast",
                    "--data", data, "--out", str(out), "--export", "", "--max-per-class",
                    str(per_class), "--epochs", f"main={epochs}", "--set",
                    f"deterministic={'true' if deterministic else 'false'}"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def fingerprint(bundle: Path) -> tuple[list, float, float]:
    import keras

    meta = json.loads((bundle / "metadata.json").read_text())
    weights = keras.models.load_model(bundle / "model.keras", compile=False).get_weights()
    return weights, meta["threshold"]["value"], meta["calibration"]["temperature"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-32")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = {"on_a": run(args.data, root / "a", args.per_class, args.epochs, True),
                   "off": run(args.data, root / "off", args.per_class, args.epochs, False),
                   "on_b": run(args.data, root / "b", args.per_class, args.epochs, True)}
        (wa, ta, ca), (wb, tb, cb) = fingerprint(root / "a"), fingerprint(root / "b")
        _, t_off, _ = fingerprint(root / "off")
    identical = (ta == tb and ca == cb and len(wa) == len(wb)
                 and all(np.array_equal(a, b) for a, b in zip(wa, wb)))
    largest = max(float(np.max(np.abs(a - b))) for a, b in zip(wa, wb))
    on = (seconds["on_a"] + seconds["on_b"]) / 2
    result = {"command": "python benchmarks/determinism.py " + " ".join(sys.argv[1:]),
              "identical_weights": identical, "largest_weight_difference": largest,
              "thresholds": [ta, tb, t_off], "seconds": seconds,
              "time_ratio_on_over_off": on / seconds["off"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "determinism.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
