"""Family attribution: how often the family head names the right generator family on mixed-256
test fakes, and how often it names a family it was never shown (leave-one-family-out), for the
head `deepfake-detection family-head` fits; writes benchmarks/results/attribution.{json,md}.

    python benchmarks/attribution.py                  # the shipped native detector's features
    python benchmarks/attribution.py --c 0.01 0.05 0.2

The head reads the detector's own feature statistics (those of its novelty check), extracted
once per split and cached under runs/. Its open-set calibration comes from training data only
(each family held out of the validation fit in turn, `training.attribution.calibrate`). In the
LOFO rows the head never saw the held-out family; the detector's network did see it (as "fake",
never by name; except Gemini and SD 3.x, added after it was trained), so these rows measure the
head's open-set rule, not a network blind to the family.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deepfake_detection import tensorflow_logs
from deepfake_detection.families import FAMILIES

RESULTS = Path(__file__).parent / "results"
KEYS = list(FAMILIES)


def cached_features(bundle_dir: str, data: str, cache: Path) -> dict[str, np.ndarray]:
    """Train and test fakes' features, family labels and paths, extracted once and again
    when the bundle (its creation time) or the listed fakes changed."""
    tensorflow_logs.import_quietly()
    from deepfake_detection.inference import bundle
    from deepfake_detection.training import attribution
    from deepfake_detection.training.trainer import novelty_features

    made = np.array(bundle.Bundle.open(bundle_dir).metadata["created"])
    listed = {split: attribution.fakes_by_family(Path(data) / split) for split in ("train", "test")}
    if cache.is_file():
        feats = dict(np.load(cache))
        if np.array_equal(feats.get("created"), made) and all(
                np.array_equal(feats[f"{split}_paths"], np.array(paths))
                for split, (paths, _) in listed.items()):
            return feats
    saved = bundle.Bundle.load(bundle_dir)
    out = {"created": made}
    for split, (paths, y) in listed.items():
        out |= {f"{split}_x": novelty_features(saved, paths), f"{split}_y": y,
                f"{split}_paths": np.array(paths)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def evaluate(feats: dict[str, np.ndarray], c: float, unknown_rate: float) -> dict:
    """Calibrated on train/validation as shipped; test top-1 and naming per family; LOFO: the
    share of a held-out family's test fakes named as some family (>= 50%)."""
    import dataclasses

    from deepfake_detection.training import attribution as attr

    x, y, tx, ty = feats["train_x"], feats["train_y"], feats["test_x"], feats["test_y"]
    train_i, val_i = attr.split_by_image(list(feats["train_paths"]), y, 0.2, 42)
    held = attr.held_out_scores(x[train_i], y[train_i], x[val_i], y[val_i], c)
    temperature, unknown = attr.calibrate(attr.fit_head(x[train_i], y[train_i], [], c),
                                          x[val_i], y[val_i], held, unknown_rate)
    head = dataclasses.replace(attr.fit_head(x, y, [], c), temperature=temperature,
                               unknown_logit=unknown)
    probs = head.probabilities(tx)[:, :-1]
    top = np.array([KEYS.index(head.families[k]) for k in probs.argmax(1)])
    named = probs.max(1) >= 0.5
    test_held = attr.held_out_scores(x, y, tx, ty, c)
    rows = {}
    for f, scores in zip(np.unique(ty), test_held):
        inside = ty == f
        rows[KEYS[f]] = {"test_fakes": int(inside.sum()),
                         "top1": float(np.mean(top[inside] == f)),
                         "named_right": float(np.mean(named[inside] & (top[inside] == f))),
                         "named_wrong": float(np.mean(named[inside] & (top[inside] != f))),
                         "held_out_named": attr.named_share([scores], temperature, unknown)}
    return {"c": c, "unknown_rate": unknown_rate, "temperature": temperature,
            "unknown_logit": unknown, "top1": float(np.mean(top == ty)),
            "named": float(named.mean()), "named_right": float(np.mean(named & (top == ty))),
            "named_wrong": float(np.mean(named & (top != ty))),
            "held_out_named": attr.named_share(test_held, temperature, unknown),
            "families": rows}


def table(result: dict) -> list[str]:
    lines = [f"C {result['c']:g}; open-set calibration on validation (at most "
             f"{result['unknown_rate']:.0%} of a held-out family's fakes named): temperature "
             f"{result['temperature']:.2f}, unknown logit {result['unknown_logit']:.1f}.", "",
             f"Test fakes: top-1 {result['top1']:.3f}; named (>= 50%) {result['named']:.2f}: "
             f"right {result['named_right']:.2f}, wrong {result['named_wrong']:.2f}. LOFO: a "
             f"held-out family's test fakes named as some family: "
             f"{result['held_out_named']:.2f}.", "",
             "| family | test fakes | top-1 | named right | named wrong | held out: named as "
             "another family |", "|---|---|---|---|---|---|"]
    lines += [f"| {FAMILIES[k][0]} | {r['test_fakes']} | {r['top1']:.2f} | {r['named_right']:.2f}"
              f" | {r['named_wrong']:.2f} | {r['held_out_named']:.2f} |"
              for k, r in result["families"].items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="src/deepfake_detection/assets/native_detector")
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--c", type=float, nargs="+", default=[0.01])
    parser.add_argument("--unknown-rate", type=float, default=0.2)
    parser.add_argument("--cache", default="runs/attribution_features.npz")
    parser.add_argument("--out", default=str(RESULTS / "attribution"))
    args = parser.parse_args()
    feats = cached_features(args.model, args.data, Path(args.cache))
    results = [evaluate(feats, c, args.unknown_rate) for c in args.c]
    lines = ["# Generator-family attribution (mixed-256)", "",
             f"`python benchmarks/attribution.py --c {' '.join(f'{c:g}' for c in args.c)}`; "
             f"features of `{args.model}`.", ""]
    for result in results:
        lines += table(result) + [""]
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
