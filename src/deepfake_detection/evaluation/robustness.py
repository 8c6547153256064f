"""Adversarial evaluation: the original project's three scenarios, an eps sweep, sanity checks.

Threat model: L-inf, untargeted, white-box (gradients of the detector's own logit), true labels
passed, eps in 1/255 of the 0..255 input. Accuracy is read at the bundle's threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from deepfake_detection import attacks
from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import classification_metrics, ranking_metrics

SWEEP_EPS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _metrics(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    return {"at_threshold": classification_metrics(labels, probs, detector.threshold),
            **ranking_metrics(labels, probs)}


def _held(detector: Detector, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image: is the detector's verdict at its threshold still the true label?"""
    return (probs >= detector.threshold) == np.asarray(labels).astype(bool)


def _flips(detector: Detector, labels, clean_probs, adv_probs) -> dict[str, int]:
    before = clean_probs >= detector.threshold
    after = adv_probs >= detector.threshold
    return {"REAL->FAKE": int(np.sum(~before & after & (labels == 0))),
            "FAKE->REAL": int(np.sum(before & ~after & (labels == 1)))}


def scenarios(detector: Detector, x: np.ndarray, y: np.ndarray, eps255: float,
              fraction: float = 0.3, seed: int = 0, classifier=None,
              eps_given: str | None = None) -> dict[str, Any]:
    """The original design's three test sets: Standard (clean), Adversarial (FGSM copies of a
    seeded `fraction` of the set) and Mixed (the clean set plus those copies: 20,000 + 6,000 =
    26,000 images on CIFAKE's test split)."""
    classifier = classifier or decision_classifier(detector)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), max(2, round(fraction * len(x))), replace=False))
    x_adv = attacks.generate(classifier, "fgsm", x[idx], y[idx], eps255, seed=seed)
    clean = detector.probabilities(x)
    adv = detector.probabilities(x_adv)
    eps_text = eps_given or f"{eps255:g}/255"
    return {
        "threat_model": f"FGSM, L-inf, eps {eps_text}, white-box, true labels, adversarial "
                        f"copies of {len(idx)} of the {len(x)} images (seed {seed}); mixed = "
                        f"the {len(x)} clean images plus the {len(idx)} copies",
        "standard": _metrics(detector, y, clean),
        "adversarial": _metrics(detector, y[idx], adv),
        "mixed": _metrics(detector, np.concatenate([y, y[idx]]), np.concatenate([clean, adv])),
        "sanity": attacks.perturbation_check(x[idx], x_adv, eps255),
    }


def plot_scenarios(result: dict[str, Any], path: Path) -> str:
    """One confusion matrix per scenario, at the bundle's threshold."""
    import matplotlib.pyplot as plt
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


def sweep(detector: Detector, x: np.ndarray, y: np.ndarray, eps_list=SWEEP_EPS,
          pgd_steps: int = 10, seed: int = 0, progress: bool = True,
          classifier=None) -> dict[str, Any]:
    """FGSM and PGD at each eps: accuracy, ROC-AUC, flips per class, 8-bit-rounded accuracy,
    plus the sanity checks that make the numbers believable."""
    classifier = classifier or decision_classifier(detector)
    clean = detector.probabilities(x)
    clean_acc = float(_held(detector, clean, y).mean())
    rows = []
    jobs = [(kind, eps) for eps in eps_list for kind in ("fgsm", "pgd")]
    for kind, eps in tqdm(jobs, desc="attacks", disable=not progress):
        steps = {"steps": pgd_steps} if kind == "pgd" else {}
        x_adv = attacks.generate(classifier, kind, x, y, eps, seed=seed, **steps)
        probs = detector.probabilities(x_adv)
        rounded = detector.probabilities(attacks.quantize(x_adv))
        rows.append({
            "attack": kind, "eps_255": eps, "steps": pgd_steps if kind == "pgd" else 1,
            "accuracy": float(_held(detector, probs, y).mean()),
            "accuracy_8bit": float(_held(detector, rounded, y).mean()),
            "roc_auc": ranking_metrics(y, probs)["roc_auc"],
            "flips": _flips(detector, y, clean, probs),
            "perturbation": attacks.perturbation_check(x, x_adv, eps),
        })
    result = {"clean_accuracy": clean_acc, "clean_roc_auc": ranking_metrics(y, clean)["roc_auc"],
              "n": int(len(x)), "pgd_steps": pgd_steps, "pgd_step_255": "2.5*eps/steps",
              "rows": rows}
    result["sanity"] = sanity_checks(result, attacks.input_gradient_norm(detector.model, x, y))
    return result


def sanity_checks(result: dict[str, Any], gradient_norm: float) -> dict[str, Any]:
    """The checks a reviewer asks for before trusting any robustness number."""
    rows = result["rows"]
    by = {(r["attack"], r["eps_255"]): r["accuracy"] for r in rows}
    eps_list = sorted({r["eps_255"] for r in rows})
    tol = 1.0 / max(1, result["n"])  # one image of slack for ties
    checks = {
        "perturbation_within_eps": all(r["perturbation"]["within_eps"] for r in rows),
        "perturbation_nonzero": all(r["perturbation"]["nonzero"] for r in rows),
        "input_gradient_nonzero": gradient_norm > 0,
        "pgd_not_weaker_than_fgsm": all(by[("pgd", e)] <= by[("fgsm", e)] + tol
                                        for e in eps_list),
        "accuracy_not_rising_with_eps": all(
            by[(k, a)] + tol >= by[(k, b)] for k in ("fgsm", "pgd")
            for a, b in zip(eps_list, eps_list[1:])),
        "attacks_not_above_clean": all(r["accuracy"] <= result["clean_accuracy"] + tol
                                       for r in rows),
    }
    checks["input_gradient_mean_abs"] = gradient_norm
    checks["all_passed"] = all(v for k, v in checks.items() if isinstance(v, bool))
    return checks


def plot_sweep(results: dict[str, dict[str, Any]], path: Path) -> str:
    """Robustness curves: accuracy vs eps for each model and attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def decision_classifier(detector: Detector, loss: str = "ce"):
    """ART's view of the detector whose argmax is the detector's own verdict (see TwoLogits)."""
    offset = float(detector.calibration.undo(detector.threshold))
    return attacks.art_classifier(detector.model, detector.spec.size, offset=offset, loss=loss)


def strongest(detector: Detector, x: np.ndarray, y: np.ndarray, eps255: float, seed: int = 0,
              square_queries: int = 1000, progress: bool = True) -> dict[str, Any]:
    """Every attack of `attacks.STRONG_ATTACKS` at one eps; an image counts as robust only when
    all of them fail on it (AutoAttack's worst case), so `robust_accuracy` is never above the
    weakest single figure."""
    ce, margin = decision_classifier(detector), decision_classifier(detector, "margin")
    correct = _held(detector, detector.probabilities(x), y)
    robust = correct.copy()
    rows = []
    for kind in tqdm(attacks.STRONG_ATTACKS, desc=f"strong attacks {eps255:g}/255",
                     disable=not progress):
        attack = attacks.strong_attack(ce, margin, kind, eps255, square_queries=square_queries)
        x_adv = attacks.run_attack(attack, x, y, seed)
        held = _held(detector, detector.probabilities(x_adv), y)
        robust &= held
        rows.append({"attack": kind, "accuracy": float(held.mean()),
                     "perturbation": attacks.perturbation_check(x, x_adv, eps255)})
    return {"eps_255": eps255, "n": int(len(x)), "clean_accuracy": float(correct.mean()),
            "attacks": rows, "robust_accuracy": float(robust.mean()),
            "threat_model": "L-inf, untargeted, true labels, white-box APGD-CE and APGD-margin "
                            "(100 iterations), PGD-50 (3 restarts, step eps/10), black-box "
                            f"Square ({square_queries} queries); worst case per image"}


STRONGEST_EPS = (2.0, 4.0, 8.0)


def evaluate_attacks(detector: Detector, paths: list[str], labels: np.ndarray, eps255: float,
                     subset: int = 0, pgd_steps: int = 10, seed: int = 0,
                     progress: bool = True, eps_given: str | None = None,
                     strongest_suite: bool = False) -> dict[str, Any]:
    """Scenarios at `eps255` and the sweep on a seeded, class-stratified subset of a split."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(paths))
    if subset and subset < len(paths):
        per_class = [rng.permutation(np.flatnonzero(labels == c))[: subset // 2] for c in (0, 1)]
        idx = np.sort(np.concatenate(per_class))
    x = np.stack([detector.prepare(paths[i])[0] for i in idx])
    y = labels[idx].astype(np.int64)
    classifier = decision_classifier(detector)
    result = {
        "scenarios": scenarios(detector, x, y, eps255, seed=seed, classifier=classifier,
                               eps_given=eps_given),
        "sweep": sweep(detector, x, y, pgd_steps=pgd_steps, seed=seed, progress=progress,
                       classifier=classifier),
    }
    if strongest_suite:
        result["strongest"] = {f"{e:g}": strongest(detector, x, y, e, seed=seed,
                                                    progress=progress) for e in STRONGEST_EPS}
    return result


def render_strongest(results: dict[str, dict[str, Any]]) -> list[str]:
    """The strongest suite per eps: each attack's accuracy and the worst case per image."""
    if not results:
        return []
    first = next(iter(results.values()))
    names = [a["attack"] for a in first["attacks"]]
    lines = ["", f"Strongest check ({first['threat_model']}; {first['n']} images):", "",
             "| eps/255 | " + " | ".join(names) + " | robust accuracy (worst case) |",
             "|---|" + "---|" * (len(names) + 1)]
    for eps, r in results.items():
        lines.append(f"| {eps} | " + " | ".join(f"{a['accuracy']:.4f}" for a in r["attacks"])
                     + f" | **{r['robust_accuracy']:.4f}** |")
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
