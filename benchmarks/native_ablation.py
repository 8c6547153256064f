"""Which augmentation and which network should the native detector train with? Ablations on
mixed-256.

Each variant is `train --recipe native` with some settings overridden and a shortened schedule
(the same for all), trained one after the other in its own process on the same split and seed;
then `benchmarks/native.py` scores every bundle on mixed-256 test side by side (ROC-AUC, accuracy
per source, ROC-AUC after JPEG q75 and after a 0.5x downscale). One seed: differences under about
half a point of ROC-AUC are within what a retraining moves (`--seed` repeats a variant).

    python benchmarks/native_ablation.py --group augment   # ~65 min on 2 cores
    python benchmarks/native_ablation.py --group network   # ~60 min, then again --seed 7
    python benchmarks/native_ablation.py --variants none blur_jpeg --out /tmp/ablation
    python benchmarks/native_ablation.py --group crop --reuse  # ~25 min; keeps trained bundles
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

# name -> `--set` overrides of the native recipe (flips stay on in all).
VARIANTS = {
    "none": {"augment_blur_jpeg": 0.0, "augment_rescale": 0.0},
    "blur_jpeg": {"augment_rescale": 0.0},
    "blur_jpeg_rescale": {},  # the native recipe as shipped before the network ablation
    "blur_jpeg_rescale_p0.4": {"augment_blur_jpeg": 0.4, "augment_rescale": 0.4},
    "lite0_multiscale": {"arch": "efficientnet_lite0_multiscale"},
    "lite2": {"arch": "efficientnet_lite2"},
    "freeze_batchnorm": {"freeze_batchnorm": True},
    "ema": {"ema_momentum": 0.99},
    "crop224": {"augment_crop": 224},
    "crop192": {"augment_crop": 192},
}
GROUPS = {
    "augment": ["none", "blur_jpeg", "blur_jpeg_rescale", "blur_jpeg_rescale_p0.4"],
    "network": ["blur_jpeg_rescale", "lite0_multiscale", "lite2", "freeze_batchnorm"],
    "crop": ["blur_jpeg_rescale", "crop224", "crop192"],
}


def run_dir(name: str, args) -> Path:
    return Path(args.runs) / f"{name}-seed{args.seed}"


def train(name: str, overrides: dict, args) -> float:
    """Train one variant in its own process; returns its wall time in seconds. With --reuse,
    a bundle already in its folder is kept (training is deterministic: the same command gives
    the same weights), and the time is the one it recorded."""
    metadata = run_dir(name, args) / "metadata.json"
    if args.reuse and metadata.exists():
        return json.loads(metadata.read_text())["training"]["wall_seconds"]
    command = [sys.executable, "-m", "deepfake_detection", "train", "--recipe", "native",
               "--data", args.data, "--out", str(run_dir(name, args)), "--force",
               "--epochs", f"frozen_base={args.frozen_epochs}",
               "--epochs", f"fine_tune={args.fine_tune_epochs}", "--set", f"seed={args.seed}"]
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value)  # True -> true
        command += ["--set", f"{key}={text}"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--group", choices=list(GROUPS), default="network",
                        help="the variants to compare, unless --variants names them")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", default="runs/native-ablation", help="folder for the bundles")
    parser.add_argument("--frozen-epochs", type=int, default=2)
    parser.add_argument("--fine-tune-epochs", type=int, default=4)
    parser.add_argument("--reuse", action="store_true",
                        help="keep a variant's bundle if its folder already holds one")
    parser.add_argument("--out", help="results stem (default benchmarks/results/native_<group>)")
    args = parser.parse_args()
    args.variants = args.variants or GROUPS[args.group]
    args.out = args.out or str(RESULTS / f"native_{args.group}")
    seconds = {name: train(name, VARIANTS[name], args) for name in args.variants}
    bundles = [f"--bundle={name}={run_dir(name, args)}" for name in args.variants]
    subprocess.run([sys.executable, str(HERE / "native.py"), "--data", args.data, "--probes",
                    "--baseline", "", *bundles, "--out", args.out], check=True)
    result = json.loads(Path(args.out + ".json").read_text())
    result["variants"] = {name: VARIANTS[name] for name in args.variants}
    result["train_seconds"] = seconds
    result["schedule"] = {"frozen_base": args.frozen_epochs, "fine_tune": args.fine_tune_epochs,
                          "seed": args.seed}
    result["command"] = " ".join(sys.argv)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2))
    print(json.dumps(seconds, indent=2))


if __name__ == "__main__":
    main()
