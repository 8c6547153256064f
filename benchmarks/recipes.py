"""Train and evaluate several recipes on the same data, split and seed, in one run.

Each recipe runs in its own process (so peak memory is its own), then the table is written to
benchmarks/results/recipes.{json,md}. Compare recipes by the ratios of one run: the machine is
shared and absolute timings drift. Each recipe is a named `train --recipe` configuration plus
overrides, so any row can be retrained with the CLI.

    python benchmarks/recipes.py                                   # sd-vs-real-32, all recipes
    python benchmarks/recipes.py --data /path/to/cifake --recipes reference fast
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# name -> (train --recipe name, config overrides). Adversarial training is off in all of them:
# this compares the cost and accuracy of the clean recipe; robustness has its own study.
RECIPES = {
    # The seed's design as specified: EfficientNetB2, 20-epoch first phase (Adam 1e-3, label
    # smoothing 0.1), 10-epoch fine-tune (Adam 1e-5), EarlyStopping and ReduceLROnPlateau.
    "reference_efficientnet_b2": ("reference", {"weights": "none"}),
    # The project's best (the bundled detector's recipe): resnet_s2d, flips + 2-pixel shifts,
    # blur + JPEG augmentation at p=0.1 (Wang et al. 2020), 15 cosine epochs.
    "fast": ("fast", {}),
    # Issue 6's before/after: the same without blur + JPEG, and with twice as much.
    "fast_no_blur_jpeg": ("fast", {"augment_blur_jpeg": 0.0}),
    "fast_blur_jpeg_p0.2": ("fast", {"augment_blur_jpeg": 0.2}),
    # Issue 12: the seed's recipe (frozen base, then fine-tune at Adam 1e-5) on a base with
    # real ImageNet features, EfficientNet-Lite0 at 64x64 (CIFAKE upscaled 2x), against the
    # same recipe and size from random weights (run with --out benchmarks/results/pretrained).
    "reference_lite0_imagenet_64": ("reference", {"arch": "efficientnet_lite0",
                                                  "weights": "imagenet", "image_size": 64}),
    "reference_lite0_none_64": ("reference", {"arch": "efficientnet_lite0", "weights": "none",
                                              "image_size": 64}),
}
# Battery levels summarised in the table (the full battery is in the JSON).
BATTERY_COLUMNS = (("jpeg_quality", 40), ("gaussian_blur_sigma", 1.0),
                   ("rescale_down_to", 16), ("gaussian_noise_sigma_255", 8))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(fn, batch, runs: int = 10) -> tuple[float, float]:
    """(images/s at this batch, median single-image latency in ms), after warm-up."""
    fn(batch)
    start = time.perf_counter()
    for _ in range(runs):
        fn(batch)
    throughput = runs * len(batch) / (time.perf_counter() - start)
    single = batch[:1]
    for _ in range(20):
        fn(single)
    latencies = []
    for _ in range(300):
        t = time.perf_counter()
        fn(single)
        latencies.append(time.perf_counter() - t)
    return throughput, 1000 * statistics.median(latencies)


def litert_forward(model):
    """The model converted to LiteRT (TFLite, XNNPACK on CPU), as a batch -> logits function."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(
        model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert(), num_threads=2)
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def forward(batch):
        if tuple(interpreter.get_input_details()[0]["shape"]) != batch.shape:
            interpreter.resize_tensor_input(index, batch.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(out).reshape(-1)

    return forward


def run_recipe(name: str, args: dict, queue) -> None:
    """Child process: train, evaluate, time inference; put one result row on the queue."""
    import contextlib

    import numpy as np

    from deepfake_detection.evaluation import perturbations
    from deepfake_detection.evaluation.report import evaluate
    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.training import data
    from deepfake_detection.training.config import recipe
    from deepfake_detection.training.trainer import train

    base, overrides = RECIPES[name]
    out = Path(args["workdir"]) / name
    config = recipe(base)
    for key, value in {**overrides, "data_dir": args["data"], "output_dir": str(out),
                       "export_stem": "", "seed": args["seed"],
                       "val_fraction": args["val_fraction"]}.items():
        setattr(config, key, value)
    for phase in config.phases:
        phase.epochs = 0 if phase.adversarial else phase.epochs
    train(config)
    meta = json.loads((out / "metadata.json").read_text())
    report = evaluate(Detector.load(out), args["data"], out / "report", progress=False)
    detector = Detector.load(out)
    files = data.discover(Path(args["data"]) / "test")
    images = np.stack([detector.prepare(p)[0] for p in files.paths])
    batch = np.concatenate([images] * (256 // len(images) + 1))[:256]
    throughput, latency = _timed(detector.logits, batch)
    lite = litert_forward(detector.model)
    lite_throughput, lite_latency = _timed(lite, batch)
    lite_diff = float(np.abs(detector.calibrated(lite(images[:256]))
                             - detector.probabilities(images[:256])).max())
    with contextlib.redirect_stdout(io.StringIO()):
        battery = perturbations.battery(detector, images, files.labels)
    clean = report["clean"]
    n_train = sum(meta["data"]["train"].values())
    epochs = sum(meta["training"]["epochs"].values())
    row = {
        "recipe": name, "train_recipe": base, "overrides": overrides,
        "arch": config.arch, "params": int(detector.model.count_params()),
        "model_mb": (out / "model.keras").stat().st_size / 2**20,
        "test_accuracy": clean["at_threshold"]["accuracy"],
        "REAL_accuracy": clean["at_threshold"]["per_class_accuracy"]["REAL"],
        "FAKE_accuracy": clean["at_threshold"]["per_class_accuracy"]["FAKE"],
        "roc_auc": clean["roc_auc"], "pr_auc": clean["pr_auc"],
        "recall_at_1pct_fpr": clean["recall_at_1pct_fpr"],
        "threshold": detector.threshold,
        "train_seconds": meta["training"]["wall_seconds"], "epochs": meta["training"]["epochs"],
        "train_images_per_s": n_train * epochs / meta["training"]["wall_seconds"],
        "infer_images_per_s_b256": throughput, "latency_ms_median": latency,
        "litert_images_per_s_b256": lite_throughput, "litert_latency_ms_median": lite_latency,
        "litert_max_prob_diff": lite_diff,
        "battery": battery,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    queue.put(row)


def _battery_cell(row: dict, family: str, level: float) -> str:
    for entry in row["battery"]["families"][family]:
        if entry["level"] == level:
            return f"{entry['accuracy']:.3f} / {entry['roc_auc']:.3f}"
    return "-"


def render(result: dict) -> str:
    rows = result["rows"]
    base = rows[0]
    lines = [f"# Recipes on `{result['data']}` ({result['machine']}, {result['cores']} cores)",
             "", *([result["note"], ""] if result.get("note") else []),
             f"Command: `{result['command']}`. Seed {result['seed']}, the same split for "
             f"every recipe ({result['val_fraction']:.0%} of train held out for validation), no "
             "adversarial training, threshold from validation (classes weighted equally), each "
             "recipe in its own process, one after the other.", "",
             "Each recipe is `deepfake-detection train --recipe R` plus the overrides shown "
             "(`--set KEY=VALUE`).", "",
             "| recipe | arch | params | MB | test acc. | REAL | FAKE | ROC-AUC | PR-AUC | "
             "recall@1%FPR | train s | epochs | train img/s | infer img/s (b256) | "
             "latency ms | peak RSS MB |", "|---" * 16 + "|"]
    for r in rows:
        overrides = "".join(f" --set {k}={v}" for k, v in r["overrides"].items())
        lines.append(
            f"| {r['recipe']} (`--recipe {r['train_recipe']}{overrides}`) "
            f"| {r['arch']} | {r['params'] / 1e6:.2f}M | {r['model_mb']:.1f} | "
            f"{r['test_accuracy']:.4f} | {r['REAL_accuracy']:.4f} | {r['FAKE_accuracy']:.4f} | "
            f"{r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['recall_at_1pct_fpr']:.3f} | "
            f"{r['train_seconds']:.0f} | {sum(r['epochs'].values())} | "
            f"{r['train_images_per_s']:.0f} | {r['infer_images_per_s_b256']:.0f} | "
            f"{r['latency_ms_median']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"Ratios to `{base['recipe']}` (same run):", ""]
    for r in rows[1:]:
        def ratio(key: str, row: dict = r) -> float:
            return row[key] / base[key]

        lines.append(f"- `{r['recipe']}`: training time x{ratio('train_seconds'):.2f}, "
                     f"inference throughput x{ratio('infer_images_per_s_b256'):.2f}, "
                     f"latency x{ratio('latency_ms_median'):.2f}, "
                     f"test accuracy {r['test_accuracy'] - base['test_accuracy']:+.4f}, "
                     f"ROC-AUC {r['roc_auc'] - base['roc_auc']:+.4f}")
    lines += ["", "## Everyday processing (accuracy / ROC-AUC on the test split, perturbed at "
              "the model's input size; full battery in recipes.json)", "",
              "| recipe | clean | " + " | ".join(f"{f} {v:g}" for f, v in BATTERY_COLUMNS)
              + " |", "|---" * (2 + len(BATTERY_COLUMNS)) + "|"]
    for r in rows:
        clean = r["battery"]["clean"]
        lines.append(f"| {r['recipe']} | {clean['accuracy']:.3f} / {clean['roc_auc']:.3f} | "
                     + " | ".join(_battery_cell(r, f, v) for f, v in BATTERY_COLUMNS) + " |")
    lines += ["", "## LiteRT (TFLite + XNNPACK, 2 threads) against the TensorFlow path", "",
              "| recipe | TF img/s (b256) | LiteRT img/s (b256) | TF latency ms | "
              "LiteRT latency ms | max prob. difference |", "|---" * 6 + "|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['infer_images_per_s_b256']:.0f} | "
                     f"{r['litert_images_per_s_b256']:.0f} | {r['latency_ms_median']:.2f} | "
                     f"{r['litert_latency_ms_median']:.2f} | {r['litert_max_prob_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-32")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="validation share of train, the same for every recipe")
    parser.add_argument("--keep", help="keep each recipe's bundle under this folder")
    parser.add_argument("--out", default=str(RESULTS), help="folder for recipes.{json,md}")
    parser.add_argument("--from-json", help="re-render the table and plot from a recipes.json")
    args = parser.parse_args()
    if args.from_json:
        write(json.loads(Path(args.from_json).read_text()), Path(args.out))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shared = {**vars(args), "workdir": args.keep or tmp}
        for name in args.recipes:
            queue = context.Queue()
            child = context.Process(target=run_recipe, args=(name, shared, queue))
            child.start()
            rows.append(queue.get())
            child.join()
    result = {"data": args.data, "machine": cpu_model(), "cores": os.cpu_count(),
              "command": "python " + " ".join(sys.argv), "seed": args.seed,
              "val_fraction": args.val_fraction, "rows": rows}
    write(result, Path(args.out))


def write(result: dict, out: Path) -> None:
    """recipes.json, recipes.md and battery.png (every recipe's battery in one figure)."""
    from deepfake_detection.evaluation.rendering import plot_comparison

    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps(result, indent=2))
    plot_comparison({r["recipe"]: r["battery"] for r in result["rows"]}, out / "battery.png")
    (out / "recipes.md").write_text(render(result) + "\n![battery](battery.png)\n")
    print(render(result))


if __name__ == "__main__":
    main()
