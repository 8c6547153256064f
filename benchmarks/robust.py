"""Which adversarial-training recipe makes the robust CIFAKE detector: train candidates, then
attack each the same way, in one run.

Every candidate is a `train --config` run (a named recipe plus overrides, written next to the
results), so any row can be retrained with the CLI. Each is scored on the whole sd-vs-real-32
test split (clean) and attacked on a seeded, class-balanced subset of it: PGD-10 at 2, 4 and
8/255 for all, and with `--strong` the strongest suite (APGD-CE, APGD-margin, PGD-50 x3,
Square; worst case per image) as well. Threat model everywhere: L-inf, untargeted, white-box,
true labels, eps in /255 of the 0..255 pixels the model consumes; accuracy at the bundle's own
threshold (the attacks aim at that threshold, see attacks.TwoLogits).

    python benchmarks/robust.py --train                       # all candidates, PGD-10 table
    python benchmarks/robust.py --bundles robust=src/deepfake_detection/assets/robust_detector \\
        cifake=src/deepfake_detection/assets/default_detector --strong --out-name robust_shipped
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
EPS = (2.0, 4.0, 8.0)


def candidates() -> dict:
    """name -> TrainConfig: the `fast` recipe (the cifake bundle's) plus adversarial training;
    the winner became the `robust` recipe."""
    from deepfake_detection.training.config import PhaseConfig, recipe

    def variant(**changes):
        config = recipe("fast")
        config.adv_attack, config.adv_ratio = "fgsm_rs", 0.5
        for key, value in changes.items():
            setattr(config, key, value)
        return config

    def phases(main: int, adversarial: int, lr: float = 1e-3):
        return [PhaseConfig("main", main, 2e-3, schedule="cosine"),
                PhaseConfig("adversarial", adversarial, lr, adversarial=True,
                            schedule="cosine"),
                PhaseConfig("fine_tune", 0, 1e-5)]

    return {
        # The recipe: 15 clean epochs (the cifake bundle's), then 10 of FGSM from a random
        # start at 8/255 on half of each batch, checked by PGD-10 every epoch.
        "fgsm_rs_50pct": variant(phases=phases(15, 10)),
        # PGD-5 instead of FGSM-RS, same schedule (about 3x the cost per adversarial epoch).
        "pgd5_50pct": variant(adv_attack="pgd", adv_steps=5, adv_step_size=2.5,
                              phases=phases(15, 10)),
        # Adversarial from the first epoch (no clean warm-up), PGD-5, 25 epochs.
        "pgd5_scratch": variant(adv_attack="pgd", adv_steps=5, adv_step_size=2.5,
                                phases=phases(0, 25, 2e-3)),
        # Twice the adversarial epochs, and adversarial share 70%.
        "fgsm_rs_70pct_20ep": variant(adv_ratio=0.7, phases=phases(15, 20)),
        # The same, ending each phase on an exponential moving average of the weights.
        "fgsm_rs_70pct_20ep_ema": variant(adv_ratio=0.7, phases=phases(15, 20),
                                          ema_momentum=0.995),
    }


def train(name: str, config, folder: Path, data: str) -> dict:
    config.data_dir, config.output_dir, config.export_stem = data, str(folder / name), ""
    config_file = folder / f"{name}.json"
    config.save(config_file)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepfake_detection", "train", "--config",
                    str(config_file), "--force"], check=True)
    return {"bundle": config.output_dir, "train_seconds": time.perf_counter() - started,
            "config": str(config_file)}


def score(bundle: str, data: Path, n: int, seed: int, strong: bool) -> dict:
    from deepfake_detection import attacks
    from deepfake_detection.evaluation import robustness
    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.metrics import ranking_metrics
    from deepfake_detection.training.data import discover

    detector = Detector.load(bundle)
    test = discover(data / "test")
    x_all = np.stack([detector.prepare(p)[0] for p in test.paths])
    probs = detector.probabilities(x_all)
    y_all = test.labels.astype(np.int64)
    result = {"clean_accuracy": float(((probs >= detector.threshold) == y_all).mean()),
              "clean_roc_auc": ranking_metrics(y_all, probs)["roc_auc"], "n_clean": len(y_all)}
    plan = robustness.AttackPlan(subset=n, seed=seed)
    idx = plan.pick(y_all)
    x, y = x_all[idx], y_all[idx]
    ce = robustness.decision_classifier(detector)
    result["pgd10"] = {}
    for eps in EPS:
        np.random.seed(seed)
        x_adv = attacks.generate(ce, "pgd", x, y, eps, seed=seed, steps=10)
        held = (detector.probabilities(x_adv) >= detector.threshold) == y.astype(bool)
        result["pgd10"][str(eps)] = float(held.mean())
    result["n_attacked"] = len(y)
    result["gradient_norm"] = attacks.input_gradient_norm(detector.model, x, y)
    if strong:
        result["strong"] = robustness.strongest_suite(detector, x, y, EPS, plan)
    return result


def render(results: dict, command: str, n: int) -> str:
    strong = any("strong" in r for r in results.values())
    head = ["candidate", "trained against", "train s", "clean acc.", "clean ROC-AUC"]
    head += [f"PGD-10 {e:g}/255" for e in EPS]
    head += [f"strongest {e:g}/255" for e in EPS] if strong else []
    lines = ["# Robust CIFAKE detector: candidates", "", f"Reproduce: `{command}`", "",
             "sd-vs-real-32 test: clean figures on all 1,480 images; attacks on a seeded, "
             f"balanced subset of {n}. Threat model: L-inf, untargeted, white-box, true labels, "
             "eps in /255 of the 0..255 input, accuracy at the bundle's threshold. "
             "\"strongest\" = an image counts only if APGD-CE, APGD-margin (100 iterations), "
             "PGD-50 (3 restarts) and Square (1000 queries) all fail on it.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        row = [name, r.get("trained_against", ""), f"{r['train_seconds']:.0f}"
               if r.get("train_seconds") else "", f"{r['clean_accuracy']:.4f}",
               f"{r['clean_roc_auc']:.4f}"]
        row += [f"{r['pgd10'][str(e)]:.4f}" for e in EPS]
        if strong:
            row += [f"{r['strong'][str(e)]['robust_accuracy']:.4f}" if "strong" in r else ""
                    for e in EPS]
        lines.append("| " + " | ".join(row) + " |")
    for name, r in results.items():
        for eps, s in r.get("strong", {}).items():
            per = ", ".join(f"{a['attack']} {a['accuracy']:.4f}" for a in s["attacks"])
            lines.append(f"\n{name} at {float(eps):g}/255: {per}; worst case per image "
                         f"{s['robust_accuracy']:.4f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/sd-vs-real-32")
    parser.add_argument("--train", nargs="*", metavar="NAME",
                        help="train these candidates (none named: all)")
    parser.add_argument("--bundles", nargs="*", default=[], metavar="NAME=FOLDER",
                        help="also score bundles that already exist")
    parser.add_argument("--runs", default="runs/robust-candidates")
    parser.add_argument("--subset", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strong", action="store_true")
    parser.add_argument("--out-name", default="robust")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows already in the results file, replacing those rerun")
    args = parser.parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, dict] = {}
    if args.train is not None:
        for name, config in candidates().items():
            if not args.train or name in args.train:
                jobs[name] = train(name, config, runs, args.data)
    for item in args.bundles:
        name, _, folder = item.partition("=")
        jobs[name] = {"bundle": folder}
    previous = RESULTS / f"{args.out_name}.json"
    results = (json.loads(previous.read_text())["results"]
               if args.update and previous.is_file() else {})
    for name, job in jobs.items():
        meta = json.loads((Path(job["bundle"]) / "metadata.json").read_text())
        adv = meta.get("adversarial_training", {})
        results[name] = {**job, "trained_against": adv["threat_model"] if adv.get("applied")
                         else "nothing",
                         **score(job["bundle"], Path(args.data), args.subset, args.seed,
                                 args.strong)}
        print(name, {k: v for k, v in results[name].items() if k != "strong"}, flush=True)
    command = "python benchmarks/robust.py " + " ".join(sys.argv[1:])
    if args.update and previous.is_file():  # the rows kept came from the earlier command(s)
        command = json.loads(previous.read_text())["command"] + "`, then `" + command
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps(
        {"command": command, "cpu_count": os.cpu_count(), "results": results}, indent=2))
    (RESULTS / f"{args.out_name}.md").write_text(render(results, command, args.subset))
    print(render(results, command, args.subset))


if __name__ == "__main__":
    main()
