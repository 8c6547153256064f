"""Which augmentation should the native detector train with? An ablation on mixed-256.

Each variant is `train --recipe native` with its augmentation overridden and a shortened schedule
(the same for all), trained one after the other in its own process on the same split and seed;
then `benchmarks/native.py` scores every bundle on mixed-256 test side by side (ROC-AUC, accuracy
per source, ROC-AUC after JPEG q75 and after a 0.5x downscale). One seed: differences under about
half a point of ROC-AUC are within what a retraining moves.

    python benchmarks/native_augment.py                      # all variants, ~50 min on 2 cores
    python benchmarks/native_augment.py --variants none blur_jpeg
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
HERE = Path(__file__).parent

# name -> `--set` overrides of the native recipe's augmentation (flips stay on in all).
VARIANTS = {
    "none": {"augment_blur_jpeg": 0.0, "augment_rescale": 0.0},
    "blur_jpeg": {"augment_rescale": 0.0},
    "blur_jpeg_rescale": {},  # the native recipe as shipped: p=0.2 each
    "blur_jpeg_rescale_p0.4": {"augment_blur_jpeg": 0.4, "augment_rescale": 0.4},
}


def train(name: str, overrides: dict, args) -> float:
    """Train one variant in its own process; returns its wall time in seconds."""
    command = [sys.executable, "-m", "deepfake_detection", "train", "--recipe", "native",
               "--data", args.data, "--out", str(Path(args.runs) / name), "--force",
               "--epochs", f"frozen_base={args.frozen_epochs}",
               "--epochs", f"fine_tune={args.fine_tune_epochs}"]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--runs", default="runs/native-augment", help="folder for the bundles")
    parser.add_argument("--frozen-epochs", type=int, default=2)
    parser.add_argument("--fine-tune-epochs", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS / "native_augment"))
    args = parser.parse_args()
    seconds = {name: train(name, VARIANTS[name], args) for name in args.variants}
    bundles = [f"--bundle={name}={Path(args.runs) / name}" for name in args.variants]
    subprocess.run([sys.executable, str(HERE / "native.py"), "--data", args.data, "--probes",
                    "--baseline", "", *bundles, "--out", args.out], check=True)
    result = json.loads(Path(args.out + ".json").read_text())
    result["variants"] = {name: VARIANTS[name] for name in args.variants}
    result["train_seconds"] = seconds
    result["schedule"] = {"frozen_base": args.frozen_epochs, "fine_tune": args.fine_tune_epochs}
    result["command"] = " ".join(sys.argv)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2))
    print(json.dumps(seconds, indent=2))


if __name__ == "__main__":
    main()
