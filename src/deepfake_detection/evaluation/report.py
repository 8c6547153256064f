"""Evaluate a Detector on a labelled folder: metrics dict -> metrics.json -> report.md + plots.

Evaluation predicts through the Detector (never re-implementing preprocessing), at the bundle's
threshold and calibration, which are never re-tuned on the evaluated data.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from deepfake_detection.escaping import for_csv
from deepfake_detection.evaluation import perturbations as battery
from deepfake_detection.evaluation import rendering, robustness
from deepfake_detection.evaluation.robustness import AttackPlan
from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import (
    bootstrap_intervals,
    expected_calibration_error,
    score,
)
from deepfake_detection.training import data

# Fewer images than this in a class: the report says its figures are a small sample.
SMALL_SAMPLE = 100


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
    verdicts: list[str | None] = [None] * len(files.paths)
    failures = [{"path": p, "reason": r} for p, r in files.rejected]
    results = detector.predict_many(files.paths, batch_size=batch_size)
    for i, result in enumerate(tqdm(results, total=len(files.paths), desc="scoring",
                                    unit="img", disable=not progress)):
        if result.error:
            failures.append({"path": result.source, "reason": result.error})
        else:
            probs[i], verdicts[i] = result.prob_fake, result.verdict
    ok = ~np.isnan(probs)
    return {
        "paths": [p for p, keep in zip(files.paths, ok) if keep],
        "labels": files.labels[ok],
        "probs": probs[ok],
        "verdicts": [v for v, keep in zip(verdicts, ok) if keep],
        "failures": failures,
    }


def compute_metrics(labels: np.ndarray, probs: np.ndarray, paths: list[str],
                    threshold: float, verdicts: list[str] | None = None) -> dict[str, Any]:
    """The full metric set at the bundle's threshold and at 0.5, plus a per-group breakdown;
    with `verdicts`, the verdicts `predict` gives (real / uncertain / fake) counted overall and
    per group, as the user sees them."""
    result = score(labels, probs, threshold, also_at_half=True)
    groups = np.asarray([data.group_of(p) for p in paths])
    result["per_group"] = {}
    if verdicts is not None:
        result["verdicts"] = {c: verdict_counts(verdicts, labels == i)
                              for i, c in enumerate(data.CLASS_NAMES)}
    for group in sorted(set(groups)):
        mask = groups == group
        preds = probs[mask] >= threshold
        result["per_group"][group] = {
            "n": int(mask.sum()),
            "true_class": data.CLASS_NAMES[int(round(labels[mask].mean()))],
            "accuracy": float((preds == labels[mask].astype(bool)).mean()),
        }
        if verdicts is not None:
            result["per_group"][group]["verdicts"] = verdict_counts(verdicts, mask)
    return result


def verdict_counts(verdicts: list[str], mask: np.ndarray) -> dict[str, int]:
    """How many of the masked images got each verdict."""
    picked = [v for v, keep in zip(verdicts, mask) if keep]
    return {v: picked.count(v) for v in ("real", "uncertain", "fake")}


@dataclass
class Parts:
    """The optional parts of an evaluation report.

    Args:
        history: dict or None. Training history, for the training-curve plot.
        attack: AttackPlan or None. Adds the adversarial scenarios, the eps sweep and, when the
            plan says so, the strongest check.
        perturbations: bool. Adds the everyday-processing battery.
        baseline: Detector or None. The same battery for another detector (say, the same recipe
            without augmentation) side by side: what a training choice costs clean and buys
            perturbed.
    """

    history: dict | None = None
    attack: AttackPlan | None = None
    perturbations: bool = False
    baseline: Detector | None = None


def evaluate(detector: Detector, directory: str | Path, out_dir: str | Path,
             parts: Parts | None = None, batch_size: int = 256,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate on a folder's test split and write metrics.json, report.md and plots; the
    images are decoded once for scoring and once more (prepared) for the battery and attacks."""
    parts = parts or Parts()
    split_dir = resolve_split(directory)
    scored = score_split(detector, split_dir, batch_size, progress)
    if len(np.unique(scored["labels"])) < 2:
        raise data.DataError(f"{split_dir}: needs readable REAL and FAKE images to evaluate")
    report = _clean_report(detector, scored, split_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_misclassified(scored, detector.threshold, out / "misclassified.csv")
    _write_predictions(scored, out / "predictions.csv")
    report["plots"] = rendering.write_plots(scored["labels"], scored["probs"],
                                            detector.threshold, report["clean"], out,
                                            parts.history, detector.band)
    report["plots"].append(rendering.plot_reliability(
        scored["labels"], scored["probs"], detector.calibration, out / "reliability.png"))
    images = _prepared(detector, scored["paths"]) if parts.perturbations else None
    if parts.perturbations:
        _add_battery(report, detector, scored, images, parts.baseline, out)
    if parts.attack:
        plan = parts.attack if progress else dataclasses.replace(parts.attack, progress=False)
        _add_attacks(report, detector, scored, images, plan, out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(rendering.render_markdown(report))
    return report


def _prepared(detector: Detector, paths: list[str]) -> np.ndarray:
    """The model inputs of these images (for a native detector, each one's centre crop)."""
    return np.stack([detector.prepare(p)[0] for p in paths])


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
        "small_sample": SMALL_SAMPLE,
        "clean": compute_metrics(scored["labels"], scored["probs"], scored["paths"],
                                 detector.threshold, scored["verdicts"]),
        "calibration": calibration_report(detector, scored["labels"], scored["probs"]),
    }
    report["clean"]["intervals"] = bootstrap_intervals(scored["labels"], scored["probs"],
                                                       detector.threshold)
    report["operating_points"] = operating_points(detector, scored["labels"], scored["probs"])
    report["generalisation"] = generalisation(detector, report, split_dir)
    return report


def operating_points(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict:
    """Each operating point the bundle has, set on validation, read on this data: the share of
    reals it calls AI and of fakes it catches (FAKE when `prob >= threshold`), at the threshold
    the Detector uses for it (`Bundle.operating_point`)."""
    points = {"balanced": detector.metadata.get("threshold") or {"rule": "0.5"},
              **(detector.metadata.get("operating_points") or {})}
    reals, fakes = probs[labels == 0], probs[labels == 1]

    def share(scores: np.ndarray, threshold: float) -> float | None:
        return float((scores >= threshold).mean()) if len(scores) else None

    result = {}
    for name, point in points.items():
        threshold = detector.bundle.operating_point(name)
        result[name] = {"threshold": threshold, "rule": point.get("rule", ""),
                        "reals_called_fake": share(reals, threshold),
                        "fakes_caught": share(fakes, threshold)}
    return result


def _write_misclassified(scored: dict[str, Any], threshold: float, path: Path) -> None:
    wrong = np.flatnonzero((scored["probs"] >= threshold) != scored["labels"].astype(bool))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true", "prob_fake"])
        for i in wrong:
            writer.writerow([scored["paths"][i], data.CLASS_NAMES[scored["labels"][i]],
                             f"{scored['probs'][i]:.6f}"])


def _write_predictions(scored: dict[str, Any], path: Path) -> None:
    """Every scored image: its path, true class, the verdict `predict` gives and the calibrated
    probability (file names neutralised for spreadsheets)."""
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true", "verdict", "prob_fake"])
        for name, label, verdict, prob in zip(scored["paths"], scored["labels"],
                                              scored["verdicts"], scored["probs"]):
            writer.writerow([for_csv(name), data.CLASS_NAMES[label], verdict, f"{prob:.6f}"])


def _add_battery(report: dict, detector: Detector, scored: dict[str, Any], images: np.ndarray,
                 baseline: Detector | None, out: Path) -> None:
    """The everyday-processing battery, and the baseline's beside it when given. (Six
    parameters: the report, what is scored, and the battery's one option.)"""
    report["perturbations"] = battery.battery(detector, images, scored["labels"])
    report["plots"] += rendering.plot_battery(report["perturbations"], out)
    if baseline is None:
        return
    base_images = (images if baseline.spec == detector.spec else
                   _prepared(baseline, scored["paths"]))
    report["baseline"] = {
        "bundle": str(baseline.metadata.get("config", {}).get("output_dir", "?")),
        "config": baseline.metadata.get("config", {}),
        "perturbations": battery.battery(baseline, base_images, scored["labels"])}
    report["plots"].append(Path(rendering.plot_comparison(
        {"this detector": report["perturbations"],
         "baseline": report["baseline"]["perturbations"]},
        out / "battery_comparison.png")).name)


def _add_attacks(report: dict, detector: Detector, scored: dict[str, Any],
                 images: np.ndarray | None, plan: AttackPlan, out: Path) -> None:
    """Scenarios, the eps sweep (and the strongest check when asked), with their plots; the
    plan's subset is decoded here unless the battery already decoded every image. (Six
    parameters: the report, what is scored, and the attack plan.)"""
    idx = plan.pick(scored["labels"])
    x = images[idx] if images is not None else _prepared(
        detector, [scored["paths"][i] for i in idx])
    report["adversarial"] = robustness.evaluate_attacks(detector, x, scored["labels"][idx], plan)
    report["plots"].append(rendering.plot_sweep(
        {"detector": report["adversarial"]["sweep"]}, out / "robustness_curve.png"))
    report["plots"].append(rendering.plot_scenarios(
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


def calibration_report(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict:
    """ECE with and without the bundle's temperature (fitted on validation, never here)."""
    return {
        "temperature": detector.calibration.temperature,
        "method": detector.calibration.method,
        "ece_uncalibrated": expected_calibration_error(
            labels, detector.calibration.uncalibrated(probs)),
        "ece_calibrated": expected_calibration_error(labels, probs),
    }


