"""An independent PGD check of shipped bundles, written without the project's own code.

Nothing from `deepfake_detection` is imported: the images are decoded with Pillow, the model is
read with plain Keras, the threshold and temperature are read from metadata.json by hand, and
PGD is a few lines of TensorFlow. If the project's attack code or its ART adapter were wrong in
a way that flattered a detector, this would disagree with it.

Threat model: L-inf, untargeted, white-box, true labels, eps in /255 of the 0..255 pixels the
model consumes; PGD-k from a uniform random start, step `step`/255, on the binary
cross-entropy of the decision margin z - T*logit(threshold), so a success is a flipped verdict.

    python benchmarks/independent_pgd.py src/deepfake_detection/assets/robust_detector \\
        src/deepfake_detection/assets/default_detector --eps 8 --steps 10

Native bundles (256x256 crops, never resized) on mixed-256, the same seeded 200 images that
`evaluate --attack-subset 200` picks:

    python benchmarks/independent_pgd.py src/deepfake_detection/assets/native_detector \\
        runs/robust-native --data ../shared/data/mixed-256 --subset 200 --eps 1 --steps 20 \\
        --step 0.25 --out independent_pgd_native
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).parent / "results"


def pick(labels: np.ndarray, subset: int, seed: int) -> np.ndarray:
    """A seeded half of `subset` per class (all when 0): the choice `evaluate` makes."""
    if not subset or subset >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:subset // 2]
                                   for c in (0, 1)]))


def load_images(split: Path, size: int, native: bool, subset: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre squares resized to `size`, or for a native bundle centre `size` crops as they
    are (pixels never resized)."""
    paths = sorted((split / "REAL").iterdir()) + sorted((split / "FAKE").iterdir())
    labels = np.array([0] * len(list((split / "REAL").iterdir()))
                      + [1] * len(list((split / "FAKE").iterdir())), np.float32)
    keep = pick(labels, subset, seed)
    images = []
    for path in [paths[i] for i in keep]:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if native and min(image.size) >= size:
                left, top = (image.width - size) // 2, (image.height - size) // 2
                image = image.crop((left, top, left + size, top + size))
            if image.size != (size, size):
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side)).resize(
                    (size, size), Image.Resampling.LANCZOS)
            images.append(np.asarray(image, np.float32))
    return np.stack(images), labels[keep]


def pgd(model, x, y, margin_offset: float, eps: float, steps: int, step: float, seed: int):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x0 = tf.constant(x)
    adv = tf.clip_by_value(x0 + rng.uniform(-eps, eps, x.shape).astype(np.float32), 0, 255)
    labels = tf.constant(y[:, None])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(adv)
            margin = model(adv, training=False) - margin_offset
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=margin)
        adv = adv + step * tf.sign(tape.gradient(loss, adv))
        adv = tf.clip_by_value(tf.clip_by_value(adv, x0 - eps, x0 + eps), 0, 255)
    return adv.numpy()


def check(bundle: Path, data: Path, eps: float, steps: int, step: float, seed: int,
          subset: int = 0) -> dict:
    import keras

    meta = json.loads((bundle / "metadata.json").read_text())
    threshold = meta["threshold"]["value"]
    temperature = meta.get("calibration", {}).get("temperature", 1.0)
    offset = temperature * math.log(threshold / (1 - threshold))
    model = keras.models.load_model(bundle / "model.keras", compile=False)
    spec = meta["image_spec"]
    x, y = load_images(data / "test", spec["size"], spec.get("fit") == "native", subset, seed)
    chunk = max(8, 500 * 32 * 32 // spec["size"] ** 2)  # bounded activations at 256 px
    verdict = lambda images: np.concatenate(  # noqa: E731
        [np.asarray(model(images[i:i + chunk], training=False)).reshape(-1)
         for i in range(0, len(images), chunk)]) >= offset
    clean = float((verdict(x) == y.astype(bool)).mean())
    x_adv = np.concatenate([pgd(model, x[i:i + chunk], y[i:i + chunk], offset, eps, steps,
                                step, seed + i) for i in range(0, len(x), chunk)])
    assert np.abs(x_adv - x).max() <= eps + 1e-3, "perturbation outside the eps ball"
    robust = float((verdict(x_adv) == y.astype(bool)).mean())
    return {"bundle": str(bundle), "n": len(y), "clean_accuracy": clean, "eps_255": eps,
            "steps": steps, "step_255": step, "pgd_accuracy": robust,
            "max_perturbation_255": float(np.abs(x_adv - x).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sd-vs-real-32"))
    parser.add_argument("--eps", type=float, default=8.0, help="in /255 of the pixel range")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step", type=float, default=2.0, help="in /255")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=0,
                        help="a seeded, balanced subset of N test images (0 = all)")
    parser.add_argument("--out", default="independent_pgd", help="results file stem")
    args = parser.parse_args()
    rows = [check(b, args.data, args.eps, args.steps, args.step, args.seed, args.subset)
            for b in args.bundles]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(rows, indent=2))
    which = f"a seeded subset of {args.subset}" if args.subset else "every image"
    lines = ["# Independent PGD check (no project code)", "",
             f"L-inf, untargeted, white-box, true labels; PGD-{args.steps} from a random start, "
             f"eps {args.eps:g}/255, step {args.step:g}/255, aimed at each bundle's own "
             f"threshold; {args.data.name} test, {which}.", "",
             "| bundle | n | clean acc. | PGD acc. | largest change (/255) |",
             "|---|---|---|---|---|"]
    lines += [f"| `{r['bundle']}` | {r['n']} | {r['clean_accuracy']:.4f} | "
              f"{r['pgd_accuracy']:.4f} | {r['max_perturbation_255']:.2f} |" for r in rows]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
