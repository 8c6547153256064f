"""Fit a bundle's family head (`inference.attribution`) on a labelled set's fakes.

The features are the detector's own per-stage channel statistics, the very ones its novelty
check reads, so the head costs nothing at prediction time. Its open-set calibration is fitted on
a validation part of the training fakes: the temperature by the likelihood of the known
families, then the "unknown" logit as the least one at which at most `unknown_rate` of the fakes
of a family held out of the fit (each in turn) reach 50% for some family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.families import FAMILIES, family_of
from deepfake_detection.inference import bundle, novelty
from deepfake_detection.inference.attribution import NAMED, FamilyHead, open_set
from deepfake_detection.training import data
from deepfake_detection.training.trainer import novelty_features

UNKNOWN_LOGITS = np.arange(-10.0, 30.0, 0.1)  # searched, lowest first


def fakes_by_family(split_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """(paths, family index) of a split's fakes that belong to a known family."""
    files = data.load_split(split_dir)
    keys = list(FAMILIES)
    pairs = [(p, keys.index(family_of(data.group_of(p))))
             for p, label in zip(files.paths, files.labels)
             if label == 1 and family_of(data.group_of(p)) is not None]
    return [p for p, _ in pairs], np.array([f for _, f in pairs])


def split_by_image(paths: list[str], y: np.ndarray, fraction: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a seeded `fraction` of each family's source images, the
    crops of one picture kept together (`data.image_id`)."""
    rng = np.random.default_rng(seed)
    ids = np.array([data.image_id(p) for p in paths])
    val = np.zeros(len(paths), bool)
    for family in np.unique(y):
        units = rng.permutation(np.unique(ids[y == family]))
        val |= (y == family) & np.isin(ids, units[:max(1, round(len(units) * fraction))])
    return np.flatnonzero(~val), np.flatnonzero(val)


def fit_head(x: np.ndarray, y: np.ndarray, layers: list[str], c: float = 0.01) -> FamilyHead:
    """A standardised multinomial logistic regression over the families present in `y`
    (indices into FAMILIES), each family weighed alike; families absent from `y` get no row."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-6
    present = np.unique(y)
    weights = {f: len(y) / (len(present) * np.sum(y == f)) for f in present}
    fitted = LogisticRegression(C=c, max_iter=3000).fit(
        (x - mean) / scale, y, sample_weight=np.array([weights[f] for f in y]))
    coef, intercept = fitted.coef_, fitted.intercept_
    if len(fitted.classes_) == 2:  # sklearn keeps one row for two classes: the second's odds
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    keys = [list(FAMILIES)[f] for f in fitted.classes_]
    return FamilyHead(tuple(keys), tuple(FAMILIES[k][0] for k in keys), tuple(layers), mean,
                      scale, coef, intercept)


def held_out_scores(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray,
                    y_eval: np.ndarray, c: float) -> list[np.ndarray]:
    """For each family of `y_eval` in turn, the linear scores of its eval fakes under a head
    fitted without it (what could name them wrongly)."""
    return [fit_head(x_train[y_train != f], y_train[y_train != f], [], c).scores(
        x_eval[y_eval == f]) for f in np.unique(y_eval)]


def named_share(held: list[np.ndarray], temperature: float, unknown_logit: float) -> float:
    """The share of held-out fakes some family would be named for (probability >= NAMED)."""
    tops = np.concatenate([open_set(s, temperature, unknown_logit)[:, :-1].max(1)
                           for s in held])
    return float(np.mean(tops >= NAMED))


def calibrate(head: FamilyHead, x_val: np.ndarray, y_val: np.ndarray,
              held: list[np.ndarray], unknown_rate: float) -> tuple[float, float]:
    """(temperature, unknown logit): the temperature that best predicts the validation
    families, then the least unknown logit that names at most `unknown_rate` of held-out
    families' fakes."""
    from scipy.optimize import minimize_scalar

    scores = head.scores(x_val)
    rows = np.arange(len(y_val))
    cols = np.searchsorted([list(FAMILIES).index(k) for k in head.families], y_val)

    def nll(t: float) -> float:
        return -float(np.mean(np.log(open_set(scores, t, -np.inf)[rows, cols] + 1e-12)))

    temperature = float(minimize_scalar(nll, bounds=(0.02, 50), method="bounded").x)
    unknown = next((float(b) for b in UNKNOWN_LOGITS
                    if named_share(held, temperature, b) <= unknown_rate), UNKNOWN_LOGITS[-1])
    return temperature, unknown


def fit_family_head(bundle_dir: str | Path, data_dir: str | Path, c: float = 0.01,
                    unknown_rate: float = 0.2, val_fraction: float = 0.2,
                    seed: int = 42) -> dict[str, Any]:
    """Fit and save `family_head.npz` into the bundle from `data_dir`'s train fakes (a seeded
    validation part, split by source image, calibrates it); records it in the metadata."""
    import dataclasses

    saved = bundle.Bundle.load(bundle_dir)
    paths, y = fakes_by_family(Path(data_dir) / "train")
    train_i, val_i = split_by_image(paths, y, val_fraction, seed)
    x = novelty_features(saved, paths)
    layers = novelty.stage_layers(saved.model)
    val_head = fit_head(x[train_i], y[train_i], layers, c)
    held = held_out_scores(x[train_i], y[train_i], x[val_i], y[val_i], c)
    temperature, unknown = calibrate(val_head, x[val_i], y[val_i], held, unknown_rate)
    val_probs = dataclasses.replace(val_head, temperature=temperature,
                                    unknown_logit=unknown).probabilities(x[val_i])
    keys = [list(FAMILIES).index(k) for k in val_head.families]
    top = np.array(keys)[val_probs[:, :-1].argmax(1)]
    named = val_probs[:, :-1].max(1) >= NAMED
    head = dataclasses.replace(fit_head(x, y, layers, c), temperature=temperature,
                               unknown_logit=unknown)  # the shipped head sees every fake
    head.save(saved.folder)
    saved.metadata["family_head"] = {
        "method": f"multinomial logistic regression (C={c:g}) on the novelty features, "
                  "open-set calibrated (temperature, unknown logit)",
        "families": dict(zip(head.families, head.names)), "named_from": NAMED,
        "temperature": temperature, "unknown_logit": unknown,
        "unknown_rate_target": unknown_rate, "data": str(data_dir),
        "train_fakes": int(len(paths)), "validation_fakes": int(len(val_i)),
        "validation_top1": float(np.mean(top == y[val_i])),
        "validation_named_right": float(np.mean(named & (top == y[val_i]))),
        "validation_held_out_named": named_share(held, temperature, unknown)}
    saved.write_metadata()
    return saved.metadata["family_head"]
