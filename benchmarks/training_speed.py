"""Training and inference speed of one architecture with and without XLA and mixed precision,
side by side in one process on synthetic 32x32 batches (speed only, no accuracy); writes
benchmarks/results/training_speed.{json,md}.

    python benchmarks/training_speed.py                 # resnet_s2d (the bundled architecture)
    python benchmarks/training_speed.py --arch efficientnet_b2 --image-size 32 64 \
        --variants float32 --name reference_upscaled
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = {"float32": ("float32", False), "float32 + XLA": ("float32", True),
            "mixed_bfloat16": ("mixed_bfloat16", False)}


def measure(arch: str, size: int, policy: str, xla: bool, steps: int) -> dict[str, float]:
    import keras
    import numpy as np

    from deepfake_detection.models import build_model

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_model(arch, image_size=size, weights="none")
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=xla)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, size, size, 3)).astype("float32")
    y = rng.integers(0, 2, (64, 1)).astype("float32")
    for _ in range(3):
        model.train_on_batch(x, y)  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train = steps * 64 / (time.perf_counter() - start)
    batch = rng.uniform(0, 255, (256, size, size, 3)).astype("float32")
    model.predict_on_batch(batch)
    start = time.perf_counter()
    for _ in range(10):
        model.predict_on_batch(batch)
    infer = 10 * 256 / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return {"train_images_per_s": train, "infer_images_per_s_b256": infer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["resnet_s2d"])
    parser.add_argument("--image-size", nargs="+", type=int, default=[32])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=40, help="timed training steps of 64")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default="training_speed", help="result file stem")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(Path(__file__).parent))
    from recipes import cpu_model

    rows = [{"arch": arch, "image_size": size, "variant": name,
             **measure(arch, size, *VARIANTS[name], args.steps)}
            for arch in args.arch for size in args.image_size for name in args.variants]
    result = {"machine": cpu_model(), "cores": os.cpu_count(),
              "command": "python " + " ".join(sys.argv), "rows": rows}
    lines = [f"# Training speed ({result['machine']}, {result['cores']} cores)", "",
             f"Command: `{result['command']}`; batch 64 for training, 256 for inference, "
             "synthetic images, one process, variants one after the other.", "",
             "| arch | input | variant | train img/s | infer img/s (b256) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['image_size']} | {r['variant']} | "
              f"{r['train_images_per_s']:.0f} | {r['infer_images_per_s_b256']:.0f} |"
              for r in rows]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (Path(args.out) / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
