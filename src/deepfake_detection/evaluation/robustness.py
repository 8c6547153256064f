"""Adversarial evaluation: the original project's three scenarios, an eps sweep, sanity checks.

Threat model: L-inf, untargeted, white-box (gradients of the detector's own logit), true labels
passed, eps in 1/255 of the 0..255 input. Accuracy is read at the bundle's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from deepfake_detection import attacks
from deepfake_detection.inference.detector import Detector
from deepfake_detection.metrics import ranking_metrics, score

SWEEP_EPS = (0.5, 1.0, 2.0, 4.0, 8.0)
# The strongest check's eps: 32x32 thumbnails as the robust bundle was trained; uploads at
# native resolution, where 1/255 already flips an undefended detector, at smaller budgets.
STRONGEST_EPS = (2.0, 4.0, 8.0)
STRONGEST_EPS_NATIVE = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class AttackPlan:
    """What `evaluate --attacks` runs, and how (every attack here reads it).

    Args:
        eps255: float. The scenarios' FGSM eps, in 1/255 of the pixel range.
        subset: int. Seeded, class-balanced images attacked (0: all).
        pgd_steps: int. PGD iterations in the sweep.
        seed: int. Seeds the subset, random starts and the scenarios' copies.
        progress: bool. Progress bars.
        eps_given: str or None. The eps as the user wrote it, for the threat model's text.
        strongest_suite: bool. Also run the strongest check (`strongest_suite`).
        strongest_eps: tuple of float or None. Its eps; None: STRONGEST_EPS for 32x32 inputs,
            STRONGEST_EPS_NATIVE for larger ones.
        square_queries: int. Queries of the Square attack in the strongest check.
    """

    eps255: float = 8.0
    subset: int = 0
    pgd_steps: int = 10
    seed: int = 0
    progress: bool = True
    eps_given: str | None = None
    strongest_suite: bool = False
    strongest_eps: tuple[float, ...] | None = None
    square_queries: int = 1000

    def strongest_eps_for(self, image_size: int) -> tuple[float, ...]:
        if self.strongest_eps:
            return tuple(self.strongest_eps)
        return STRONGEST_EPS if image_size <= 32 else STRONGEST_EPS_NATIVE

    def pick(self, labels: np.ndarray) -> np.ndarray:
        """Indices of the attacked images: a seeded half of `subset` per class, or all."""
        idx = np.arange(len(labels))
        if self.subset and self.subset < len(labels):
            rng = np.random.default_rng(self.seed)
            idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[
                : self.subset // 2] for c in (0, 1)]))
        return idx


def _metrics(detector: Detector, labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    return score(labels, probs, detector.threshold)


def _held(detector: Detector, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image: is the detector's verdict at its threshold still the true label?"""
    return (probs >= detector.threshold) == np.asarray(labels).astype(bool)


def _flips(detector: Detector, labels, clean_probs, adv_probs) -> dict[str, int]:
    before = clean_probs >= detector.threshold
    after = adv_probs >= detector.threshold
    return {"REAL->FAKE": int(np.sum(~before & after & (labels == 0))),
            "FAKE->REAL": int(np.sum(before & ~after & (labels == 1)))}


def scenarios(detector: Detector, x: np.ndarray, y: np.ndarray, plan: AttackPlan,
              classifier=None, fraction: float = 0.3) -> dict[str, Any]:
    """The original design's three test sets: Standard (clean), Adversarial (FGSM copies of a
    seeded `fraction` of the set) and Mixed (the clean set plus those copies: 20,000 + 6,000 =
    26,000 images on CIFAKE's test split)."""
    classifier = classifier or decision_classifier(detector)
    eps255, seed = plan.eps255, plan.seed
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), max(2, round(fraction * len(x))), replace=False))
    x_adv = attacks.generate(classifier, "fgsm", x[idx], y[idx], eps255, seed=seed)
    clean = detector.probabilities(x)
    adv = detector.probabilities(x_adv)
    eps_text = plan.eps_given or f"{eps255:g}/255"
    return {
        "threat_model": f"FGSM, L-inf, eps {eps_text}, white-box, true labels, adversarial "
                        f"copies of {len(idx)} of the {len(x)} images (seed {seed}); mixed = "
                        f"the {len(x)} clean images plus the {len(idx)} copies",
        "standard": _metrics(detector, y, clean),
        "adversarial": _metrics(detector, y[idx], adv),
        "mixed": _metrics(detector, np.concatenate([y, y[idx]]), np.concatenate([clean, adv])),
        "sanity": attacks.perturbation_check(x[idx], x_adv, eps255),
    }


def sweep(detector: Detector, x: np.ndarray, y: np.ndarray, plan: AttackPlan,
          classifier=None, eps_list=SWEEP_EPS) -> dict[str, Any]:
    """FGSM and PGD at each eps: accuracy, ROC-AUC, flips per class, 8-bit-rounded accuracy,
    plus the sanity checks that make the numbers believable."""
    classifier = classifier or decision_classifier(detector)
    pgd_steps = plan.pgd_steps
    clean = detector.probabilities(x)
    clean_acc = float(_held(detector, clean, y).mean())
    rows = []
    jobs = [(kind, eps) for eps in eps_list for kind in ("fgsm", "pgd")]
    for kind, eps in tqdm(jobs, desc="attacks", disable=not plan.progress):
        steps = {"steps": pgd_steps} if kind == "pgd" else {}
        x_adv = attacks.generate(classifier, kind, x, y, eps, seed=plan.seed, **steps)
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


def decision_classifier(detector: Detector, loss: str = "ce"):
    """ART's view of the detector whose argmax is the detector's own verdict (see TwoLogits)."""
    offset = float(detector.calibration.undo(detector.threshold))
    return attacks.art_classifier(detector.model, detector.spec.size, offset=offset, loss=loss)


def strongest(detector: Detector, x: np.ndarray, y: np.ndarray, eps255: float,
              plan: AttackPlan, square_queries: int = 1000,
              alive: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Every attack of `attacks.STRONG_ATTACKS` at one eps, each on the images no earlier attack
    broke (AutoAttack's cascade): an image counts as robust only when all of them fail on it.
    `alive` (robust at a smaller eps) limits the work, since a perturbation within a smaller
    eps is within this one. Returns the result and the per-image robust mask.

    The gradient-free Square attack runs last: if it breaks many images the gradient attacks
    could not, their gradients were masked and the figure means little (`square_added`)."""
    ce, margin = decision_classifier(detector), decision_classifier(detector, "margin")
    correct = _held(detector, detector.probabilities(x), y)
    robust = correct.copy() if alive is None else correct & alive
    rows = []
    for kind in tqdm(attacks.STRONG_ATTACKS, desc=f"strong attacks {eps255:g}/255",
                     disable=not plan.progress):
        idx = np.flatnonzero(robust)
        row: dict[str, Any] = {"attack": kind, "attacked": int(len(idx)), "broke": 0}
        if len(idx):
            attack = attacks.strong_attack(ce, margin, kind, eps255,
                                           square_queries=square_queries)
            x_adv = attacks.run_attack(attack, x[idx], y[idx], plan.seed)
            held = _held(detector, detector.probabilities(x_adv), y[idx])
            robust[idx[~held]] = False
            row.update(broke=int((~held).sum()),
                       perturbation=attacks.perturbation_check(x[idx], x_adv, eps255))
        rows.append({**row, "accuracy": float(robust.mean())})
    gradient_broke = sum(r["broke"] for r in rows if r["attack"] != "square")
    square = next(r["broke"] for r in rows if r["attack"] == "square")
    result = {"eps_255": eps255, "n": int(len(x)), "clean_accuracy": float(correct.mean()),
              "attacks": rows, "robust_accuracy": float(robust.mean()),
              "square_added": square,
              "gradients_real": square <= 1 + 0.05 * gradient_broke,
              "threat_model": "L-inf, untargeted, true labels, white-box APGD-CE and APGD-margin "
                              "(100 iterations), PGD-50 (3 restarts, step eps/10), black-box "
                              f"Square ({square_queries} queries), each on the images the "
                              "attacks before it (and at smaller eps) did not break; worst case "
                              "per image"}
    return result, robust


def strongest_suite(detector: Detector, x: np.ndarray, y: np.ndarray,
                    eps_list: tuple[float, ...], plan: AttackPlan,
                    square_queries: int = 1000) -> dict[str, dict[str, Any]]:
    """The strongest check at every eps, smallest first: an image broken at one eps is broken
    at every larger one and is not attacked again."""
    results, alive = {}, None
    for eps in sorted(eps_list):
        results[f"{eps:g}"], alive = strongest(detector, x, y, eps, plan, square_queries, alive)
    return results


def evaluate_attacks(detector: Detector, x: np.ndarray, labels: np.ndarray,
                     plan: AttackPlan) -> dict[str, Any]:
    """Scenarios at `plan.eps255` and the sweep (and the strongest check when asked) on
    prepared images `x` (the caller takes `plan.pick` of its split)."""
    y = labels.astype(np.int64)
    classifier = decision_classifier(detector)
    result = {"scenarios": scenarios(detector, x, y, plan, classifier),
              "sweep": sweep(detector, x, y, plan, classifier)}
    if plan.strongest_suite:
        result["strongest"] = strongest_suite(detector, x, y, plan.strongest_eps_for(
            detector.spec.size), plan, plan.square_queries)
    return result


