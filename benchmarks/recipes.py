"""Train and evaluate several recipes on the same data, split and seed, in one run.

Each recipe runs in its own process (so peak memory is its own), then the table is written to
benchmarks/results/recipes.{json,md}. Compare recipes by the ratios of one run: the machine is
shared and absolute timings drift.

    python benchmarks/recipes.py                                   # sd-vs-real-32, all recipes
    python benchmarks/recipes.py --data /path/to/cifake --epochs 15 --fine-tune-epochs 5
"""

from __future__ import annotations

import argparse
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

# name -> TrainConfig overrides. Adversarial training is off in all of them: this compares the
# cost and accuracy of the clean recipe; robustness has its own study (robustness-study).
RECIPES = {
    "reference_efficientnet_b2": {"arch": "efficientnet_b2", "weights": "none"},
    "resnet_small": {"arch": "resnet_small", "weights": "none"},
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_recipe(name: str, overrides: dict, args: dict, queue) -> None:
    """Child process: train, evaluate, time inference; put one result row on the queue."""
    import numpy as np

    from deepfake_detection import data
    from deepfake_detection.config import PhaseConfig, TrainConfig
    from deepfake_detection.detector import Detector
    from deepfake_detection.evaluation import evaluate
    from deepfake_detection.training import train

    out = Path(args["workdir"]) / name
    config = TrainConfig(
        data_dir=args["data"], output_dir=str(out), export_stem="", seed=args["seed"],
        phases=[PhaseConfig("frozen_base", args["epochs"], 1e-3, freeze_base=True),
                PhaseConfig("adversarial", 0, 5e-4, adversarial=True),
                PhaseConfig("fine_tune", args["fine_tune_epochs"], 1e-5)],
        **overrides)
    train(config)
    meta = json.loads((out / "metadata.json").read_text())
    report = evaluate(Detector.load(out), args["data"], out / "report", progress=False)
    detector = Detector.load(out)
    files = data.discover(Path(args["data"]) / "test")
    batch = np.stack([detector.prepare(p)[0] for p in files.paths[:256]])
    batch = np.concatenate([batch] * (256 // len(batch) + 1))[:256]
    detector.probabilities(batch)  # warm-up (tracing)
    start, runs = time.perf_counter(), 5
    for _ in range(runs):
        detector.probabilities(batch)
    throughput = runs * 256 / (time.perf_counter() - start)
    single = batch[:1]
    for _ in range(20):
        detector.probabilities(single)
    latencies = []
    for _ in range(200):
        t = time.perf_counter()
        detector.probabilities(single)
        latencies.append(time.perf_counter() - t)
    clean = report["clean"]
    n_train = sum(meta["data"]["train"].values())
    epochs = sum(meta["training"]["epochs"].values())
    queue.put({
        "recipe": name, **overrides,
        "params": int(detector.model.count_params()),
        "model_mb": (out / "model.keras").stat().st_size / 2**20,
        "test_accuracy": clean["at_threshold"]["accuracy"],
        "REAL_accuracy": clean["at_threshold"]["per_class_accuracy"]["REAL"],
        "FAKE_accuracy": clean["at_threshold"]["per_class_accuracy"]["FAKE"],
        "roc_auc": clean["roc_auc"], "pr_auc": clean["pr_auc"],
        "recall_at_1pct_fpr": clean["recall_at_1pct_fpr"],
        "train_seconds": meta["training"]["wall_seconds"], "epochs": meta["training"]["epochs"],
        "train_images_per_s": n_train * epochs / meta["training"]["wall_seconds"],
        "infer_images_per_s_b256": throughput,
        "latency_ms_median": 1000 * statistics.median(latencies),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })


def render(result: dict) -> str:
    rows = result["rows"]
    base = rows[0]
    lines = [f"# Recipes on `{result['data']}` ({result['machine']}, {result['cores']} cores)",
             "", f"Command: `{result['command']}`. Phase 1 up to {result['epochs']} epochs, "
             f"fine-tune up to {result['fine_tune_epochs']}, seed {result['seed']}, no "
             "adversarial training; threshold from validation.", "",
             "| recipe | params | MB | test acc. | REAL | FAKE | ROC-AUC | PR-AUC | "
             "recall@1%FPR | train s | train img/s | infer img/s (b256) | latency ms | "
             "peak RSS MB |", "|---" * 14 + "|"]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['params'] / 1e6:.2f}M | {r['model_mb']:.1f} | "
            f"{r['test_accuracy']:.4f} | {r['REAL_accuracy']:.4f} | {r['FAKE_accuracy']:.4f} | "
            f"{r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['recall_at_1pct_fpr']:.3f} | "
            f"{r['train_seconds']:.0f} | {r['train_images_per_s']:.0f} | "
            f"{r['infer_images_per_s_b256']:.0f} | {r['latency_ms_median']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |")
    lines += ["", f"Ratios to `{base['recipe']}` (same run):", ""]
    for r in rows[1:]:
        def ratio(key: str, row: dict = r) -> float:
            return row[key] / base[key]

        lines.append(f"- `{r['recipe']}`: training time x{ratio('train_seconds'):.2f}, "
                     f"inference throughput x{ratio('infer_images_per_s_b256'):.2f}, "
                     f"latency x{ratio('latency_ms_median'):.2f}, "
                     f"test accuracy {r['test_accuracy'] - base['test_accuracy']:+.4f}, "
                     f"ROC-AUC {r['roc_auc'] - base['roc_auc']:+.4f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-32")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=20, help="phase 1 epoch cap")
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(RESULTS), help="folder for recipes.{json,md}")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        shared = {**vars(args), "workdir": workdir}
        for name in args.recipes:
            queue = context.Queue()
            child = context.Process(target=run_recipe, args=(name, RECIPES[name], shared, queue))
            child.start()
            rows.append(queue.get())
            child.join()
    result = {"data": args.data, "machine": cpu_model(), "cores": os.cpu_count(),
              "command": "python " + " ".join(sys.argv), "epochs": args.epochs,
              "fine_tune_epochs": args.fine_tune_epochs, "seed": args.seed, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps(result, indent=2))
    (out / "recipes.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
