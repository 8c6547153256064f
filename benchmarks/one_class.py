"""A model of real pictures only: how unlike the training reals is each test image?

Issue #39's one-class design (after Forensic Self-Descriptions, CVPR 2025, in miniature): a few
dozen statistics of each image's fixed residuals (the 8-neighbour median residual of
`models.local` and NPR's 2x2 one): their histograms, spread and tails, how the three colours'
residuals correlate (demosaicing ties them in camera pictures), and how the residual's energy
sits on the 2x2 and 8x8 grids (upsampling and JPEG leave periodic traces). A Gaussian mixture
is fitted on the training reals alone; the score is the negative log-likelihood. It never sees
a fake, so every family is one it never saw: its per-family ROC-AUC is a LOFO column with no
retraining. The strict point (at most 1% of validation reals called AI) is set on validation
reals and read on test.

    python benchmarks/one_class.py        # results/one_class.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from deepfake_detection import families as fam
from deepfake_detection.imaging import load_rgb
from deepfake_detection.layers import RESIDUALS, LocalResidual
from deepfake_detection.training.data import group_of, load_split, stratified_split

RESULTS = Path(__file__).parent / "results"
BINS = np.arange(-6.5, 7.5)  # residual histogram: integers -6..6
_RESIDUALS = {kind: LocalResidual(kind) for kind in RESIDUALS}


def residuals(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The median residual and NPR's (`layers.LocalResidual`, what the networks read), as
    numpy arrays (H x W x 3, float)."""
    batch = rgb[None].astype(np.float32)
    return {kind: np.asarray(layer(batch))[0] for kind, layer in _RESIDUALS.items()}


def features(path: str) -> np.ndarray:
    rgb = load_rgb(path)[:256, :256]
    out = []
    for name, r in residuals(rgb).items():
        grey = r.mean(axis=-1)
        hist = np.histogram(np.clip(grey, -6, 6), BINS)[0] / grey.size
        out += [*np.log(hist + 1e-4), np.log(grey.var() + 1e-3),
                float(((grey - grey.mean()) ** 4).mean() / (grey.var() ** 2 + 1e-6))]
        flat = r.reshape(-1, 3).T
        corr = np.corrcoef(flat + 1e-6 * np.random.default_rng(0).standard_normal(flat.shape))
        out += [corr[0, 1], corr[0, 2], corr[1, 2]]
        energy = np.abs(grey)
        if name == "median":
            grid2 = [energy[i::2, j::2].mean() for i in range(2) for j in range(2)]
            out += list(np.log(np.asarray(grid2) / (np.mean(grid2) + 1e-6) + 1e-6))
            on8 = energy[::8].mean() + energy[:, ::8].mean()
            out.append(np.log((on8 / 2 + 1e-6) / (energy.mean() + 1e-6)))
    return np.asarray(out, np.float64)


def table(record: dict) -> str:
    rows = [f"| {fam.FAMILIES[k][0]} | {r['fakes']} | {r['roc_auc']:.3f} | "
            f"{r['fakes_caught_strict']:.2f} |" for k, r in record["families"].items()]
    return "\n".join([
        "# A model of real pictures only (one-class)", "",
        f"Gaussian mixture ({record['components']} components) on {record['features']} residual "
        f"statistics of {record['train_reals']} training reals of `{record['data']}`; test: "
        f"{record['test_reals']} reals. Never trained on a fake, so each family is unseen.", "",
        "| family | test fakes | ROC-AUC | fakes caught at the strict point |",
        "|---|---|---|---|", *rows, "",
        f"Mean ROC-AUC {record['mean_roc_auc']:.3f}; worst {record['worst']} "
        f"{record['worst_roc_auc']:.3f}. All test fakes: ROC-AUC {record['roc_auc']:.3f}; the "
        f"strict point (threshold from {record['val_reals']} validation reals) calls "
        f"{record['test_reals_called_fake_strict']:.3f} of test reals AI and catches "
        f"{record['fakes_caught_strict']:.3f} of fakes.", ""])


def main() -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--components", type=int, default=8)
    args = parser.parse_args()
    train, val = stratified_split(load_split(Path(args.data) / "train"), 0.15, 42)
    test = load_split(Path(args.data) / "test")

    def reals(files) -> np.ndarray:
        return np.stack([features(p) for p, y in zip(files.paths, files.labels) if y == 0])

    model = make_pipeline(StandardScaler(), GaussianMixture(
        args.components, covariance_type="full", reg_covar=1e-3, random_state=0))
    model.fit(reals(train))
    val_scores = -model.score_samples(reals(val))
    test_x = np.stack([features(p) for p in test.paths])
    scores, labels = -model.score_samples(test_x), np.asarray(test.labels)
    # AI above this: at most 1% of validation reals score higher (metrics.strict_threshold's
    # rule, on a score that is not a probability)
    strict = float(np.sort(val_scores)[::-1][int(0.01 * len(val_scores))])
    sources = np.array([group_of(p) for p in test.paths])
    per = {}
    for key, (_, members) in fam.FAMILIES.items():
        keep = (labels == 0) | np.isin(sources, members)
        if (labels[keep] == 1).any():
            per[key] = {"fakes": int((labels[keep] == 1).sum()),
                        "roc_auc": float(roc_auc_score(labels[keep], scores[keep])),
                        "fakes_caught_strict": float((scores[keep][labels[keep] == 1]
                                                      > strict).mean())}
    worst = min(per, key=lambda k: per[k]["roc_auc"])
    record = {"data": args.data, "components": args.components, "features": test_x.shape[1],
              "train_reals": int((train.labels == 0).sum()), "val_reals": len(val_scores),
              "test_reals": int((labels == 0).sum()), "families": per,
              "mean_roc_auc": statistics.mean(r["roc_auc"] for r in per.values()),
              "worst": worst, "worst_roc_auc": per[worst]["roc_auc"],
              "roc_auc": float(roc_auc_score(labels, scores)),
              "test_reals_called_fake_strict": float((scores[labels == 0] > strict).mean()),
              "fakes_caught_strict": float((scores[labels == 1] > strict).mean())}
    (RESULTS / "one_class.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "one_class.md").write_text(table(record))
    print(table(record))


if __name__ == "__main__":
    main()
