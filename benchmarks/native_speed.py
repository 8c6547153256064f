"""Batch throughput of the native detector's candidate networks, side by side in one run.

Forward passes only (batch 64 of 256x256 images, random weights: speed does not depend on
them), each network timed in turn in this process, so the ratios hold even on a shared machine.

    python benchmarks/native_speed.py --out benchmarks/results/native_speed.json
    python benchmarks/native_speed.py --networks efficientnet_lite0 ferretnet ferretnet_npr \
        efficientnet_lite0_lpd --out benchmarks/results/native_speed_local.json   # issue #39
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

NETWORKS = ["efficientnet_lite0", "efficientnet_lite0_multiscale", "efficientnet_lite2"]


def images_per_second(name: str, size: int, batch: int, repeats: int) -> float:
    import tensorflow as tf

    from deepfake_detection.models import build_model

    model = build_model(name, image_size=size, weights="none")
    forward = tf.function(lambda x: model(x, training=False))
    x = np.random.default_rng(1).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    forward(x)
    forward(x)  # traced and warm
    start = time.perf_counter()
    for _ in range(repeats):
        forward(x)
    return repeats * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--networks", nargs="+", default=NETWORKS,
                        help="registered names; the first is the reference of the ratios")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    rates = {name: images_per_second(name, args.size, args.batch, args.repeats)
             for name in args.networks}
    base = rates[args.networks[0]]
    result = {name: {"img_s": round(rate, 1), "vs_lite0": round(rate / base, 3)}
              for name, rate in rates.items()}
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"figures": result, "size": args.size, "batch": args.batch}, handle,
                      indent=2)


if __name__ == "__main__":
    main()
