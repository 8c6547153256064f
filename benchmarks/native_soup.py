"""Do several native detectors together beat one? Logit ensembles and weight soups.

The bundles given must share one architecture and one validation split (same data, seed and
validation fraction: `training.trainer._bundle_splits` refuses a bundle whose split differs
from what it recorded). Each is scored on its validation split and on mixed-256 test (ROC-AUC);
then three ways of combining them, each computed on the same images:

- logit ensemble: the mean of every bundle's logits (inference cost x the number of bundles);
- uniform soup (Wortsman et al., 2022): one network whose weights, BatchNorm statistics
  included, are the mean of every bundle's (inference cost of one network);
- greedy soup: bundles taken in order of validation ROC-AUC, each kept only if the soup's
  validation ROC-AUC does not drop (chosen on validation, never on test);
- mirror TTA, the first bundle alone: the mean of its logits on each image and on its mirror
  image (inference cost x 2).

    python benchmarks/native_soup.py --out benchmarks/results/native_soup.json \\
        src/deepfake_detection/assets/native_detector runs/native-fbn \
        runs/native-ablation/{blur_jpeg_rescale,freeze_batchnorm,crop224,crop192,ema}-seed42
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score


def main() -> None:
    import keras

    from deepfake_detection.training import data
    from deepfake_detection.training.trainer import _bundle_splits, predict_logits

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--out")
    args = parser.parse_args()
    loaded = [_bundle_splits(b) for b in args.bundles]
    models = {b: saved.model for b, (saved, *_) in zip(args.bundles, loaded, strict=True)}
    val_files, spec = loaded[0][3], loaded[0][0].spec
    names = [[Path(p).name for p in v.paths] for *_, v in loaded]  # data_dir may be relative
    if len({saved.model.name for saved, *_ in loaded}) > 1 or any(n != names[0] for n in names):
        parser.error("the bundles must share one architecture and one validation split")
    test = data.load_split(Path(args.data) / "test")
    sets = {"val": (data.make_dataset(val_files.paths, None, spec, 32).cache(),
                    val_files.labels),
            "test": (data.make_dataset(test.paths, None, spec, 32).cache(), test.labels)}

    def logits(model, splits=tuple(sets)) -> dict[str, np.ndarray]:
        return {k: predict_logits(model, sets[k][0]) for k in splits}

    def aucs(scores: dict[str, np.ndarray]) -> dict[str, float]:
        return {k: round(float(roc_auc_score(sets[k][1], s)), 4) for k, s in scores.items()}

    soup_model = keras.models.clone_model(loaded[0][0].model)

    def soup(members: list[str], splits=tuple(sets)) -> dict[str, float]:
        weights = [models[m].get_weights() for m in members]
        soup_model.set_weights([np.mean(ws, axis=0) for ws in zip(*weights, strict=True)])
        return aucs(logits(soup_model, splits))

    single = {b: logits(m) for b, m in models.items()}
    result: dict = {"bundles": {b: aucs(s) for b, s in single.items()}}
    result["logit ensemble"] = aucs({k: np.mean([s[k] for s in single.values()], axis=0)
                                     for k in sets})
    result["uniform soup"] = soup(list(models))
    order = sorted(models, key=lambda b: -result["bundles"][b]["val"])
    chosen, best = [order[0]], result["bundles"][order[0]]["val"]
    for candidate in order[1:]:
        score = soup([*chosen, candidate], ("val",))["val"]  # chosen without looking at test
        if score >= best:
            chosen, best = [*chosen, candidate], score
    result["greedy soup"] = {"members": chosen, **soup(chosen)}
    first = models[args.bundles[0]]
    mirrored = {k: predict_logits(first, ds.map(lambda x: x[:, :, ::-1]))
                for k, (ds, _) in sets.items()}
    result["mirror TTA"] = aucs({k: (single[args.bundles[0]][k] + mirrored[k]) / 2
                                 for k in sets})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
