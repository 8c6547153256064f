"""Leave-one-family-out (LOFO): how the native recipe does on a generator family it never saw.

For each family of fakes in mixed-256, the recipe is trained without it (training and
validation), then that family's test fakes are scored against all test reals: ROC-AUC, the share
of its fakes caught at the bundle's own threshold, and the share of reals called real. One table,
mean and worst over the families done so far. Resumable and splittable, to fit sessions:
a family whose result file exists is not trained again.

    python benchmarks/lofo.py --families gan_faces gpt   # some families now
    python benchmarks/lofo.py                            # the rest, then the table
    python benchmarks/lofo.py --tag probe --probe efficientnet_lite0   # frozen features
    python benchmarks/lofo.py --tag local --recipe local --families gan_faces  # FerretNet-style
    python benchmarks/lofo.py --tag native_lpd --fuse-with lpd --families gemini  # two networks

`--probe ARCH` asks the same question of a linear probe on frozen ImageNet features (every
stage's channel mean and RMS, `deepfake_detection.training.probe`): Ojha et al. (CVPR 2023)
found features never tuned to the training generators generalise better to new ones than a
network fine-tuned on them. Features are extracted once; each family is then a refit.
`--fuse ARCH` measures what `deepfake-detection fuse-probe` ships: each family's plain-recipe
bundle (trained first if missing) averaged with such a probe fitted without the family.
`--fuse-with TAG` measures `deepfake-detection fuse-networks`: each family's plain-recipe bundle
and the variant TAG's bundle of the same family (run it first), their calibrated logits averaged.

Families group the sources by how the images were made (the architecture and its decoder), so
that holding one out removes every close relative: a held-out SD 1.5 would be no test while SD
1.x fine-tunes stay in training.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from deepfake_detection import families as _families

RESULTS = Path(__file__).parent / "results"
# The grouping and its reasons: deepfake_detection.families (the attribution head uses it too).
FAMILIES = {key: list(sources) for key, (_, sources) in _families.FAMILIES.items()}
# Reduced schedule (said in every table): 1 frozen + 3 fine-tune epochs with frozen BatchNorm,
# about 12 minutes a family on 2 cores against 25 for the full recipe.
TRAIN = ["--recipe", "native", "--set", "freeze_batchnorm=true", "--epochs", "frozen_base=1",
         "--epochs", "fine_tune=3", "--export", ""]
# Other recipes run their own schedule (`local`: 15 epochs from scratch on 128 px crops).
RECIPE_TRAIN = {"local": ["--recipe", "local", "--export", ""]}


def train(family: str, data: str, runs: Path, extra: list[str], recipe: str = "native"
          ) -> Path:
    out = runs / family
    if not (out / "metadata.json").is_file():
        command = RECIPE_TRAIN.get(recipe, TRAIN)
        subprocess.run([sys.executable, "-m", "deepfake_detection", "train", *command, *extra,
                        "--data", data, "--out", str(out), "--set",
                        "exclude_sources=" + ",".join(FAMILIES[family])], check=True)
    return out


def fused(family: str, data: str, runs: Path, tag: str, command: list[str]) -> Path:
    """The plain-recipe bundle without the family (trained first if missing), fused by
    `command` (`fuse-probe` or `fuse-networks` and its own options)."""
    out = runs / tag / family
    if not (out / "metadata.json").is_file():
        base = train(family, data, runs / "native", [])
        subprocess.run([sys.executable, "-m", "deepfake_detection", *command, "--model",
                        str(base), "--out", str(out), "--force"], check=True)
    return out


def result(family: str, labels: np.ndarray, probs: np.ndarray, threshold: float,
           schedule: str) -> dict:
    """The held-out family's record: ROC-AUC, and both classes at the threshold."""
    from sklearn.metrics import roc_auc_score

    called = probs >= threshold
    # The strict operating point read on these reals: at most 1% of them called AI.
    strict = np.quantile(probs[labels == 0], 0.99, method="higher")
    return {"family": family, "sources": FAMILIES[family], "fakes": int(labels.sum()),
            "reals": int((labels == 0).sum()), "roc_auc": float(roc_auc_score(labels, probs)),
            "fakes_caught": float(called[labels == 1].mean()),
            "reals_called_real": float((~called[labels == 0]).mean()),
            "fakes_caught_at_1pct_fpr": float((probs[labels == 1] > strict).mean()),
            "threshold": float(threshold), "schedule": schedule}


def score(bundle: Path, family: str, data: str, recipe: str = "native") -> dict:
    """The held-out family's test fakes against every test real."""
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.training.data import group_of, load_split

    test = load_split(Path(data) / "test")
    keep = [i for i, p in enumerate(test.paths)
            if test.labels[i] == 0 or group_of(p) in FAMILIES[family]]
    paths, labels = [test.paths[i] for i in keep], np.asarray(test.labels)[keep]
    detector = load(bundle)
    probs = np.array([r.prob_fake for r in detector.predict_many(paths, batch_size=64)])
    return result(family, labels, probs, detector.threshold,
                  shlex.join(RECIPE_TRAIN.get(recipe, TRAIN)))


def probe_features(arch: str, data: str, runs: Path) -> dict[str, tuple]:
    """(paths, labels, features) of train, val (15%, by source image) and test, cached."""
    from deepfake_detection.imaging import ImageSpec
    from deepfake_detection.training import probe
    from deepfake_detection.training.data import load_split, stratified_split

    train, val = stratified_split(load_split(Path(data) / "train"), 0.15, 42)
    splits = {"train": train, "val": val, "test": load_split(Path(data) / "test")}
    cache = runs / f"probe_{arch}.npz"
    names = {f"{k}_paths": np.asarray([Path(p).name for p in f.paths]) for k, f in splits.items()}
    feats = dict(np.load(cache)) if cache.is_file() else {}
    if any(not np.array_equal(feats.get(k), v) for k, v in names.items()):  # new or data changed
        model = probe.feature_model(arch, 256)
        spec = ImageSpec(size=256, fit="native")
        feats = {**names, **{k: probe.extract(model, f.paths, spec) for k, f in splits.items()}}
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **feats)
    return {k: (np.asarray(f.paths), np.asarray(f.labels), feats[k]) for k, f in splits.items()}


def probe_columns(arch: str, parts: list[str]) -> np.ndarray:
    """Feature columns of the named parts (`stage0` ... `stage6`, `top`), in extraction order:
    (mean, RMS) of every stage's output, then of the top features."""
    from deepfake_detection.models import stage_outputs
    from deepfake_detection.training import probe

    base = probe.feature_model(arch, 256, weights="none")
    names = [*stage_outputs(base), "top"]
    widths = [base.get_layer(n).output.shape[-1] for n in names[:-1]]
    widths.append((base.output.shape[-1] - 2 * sum(widths)) // 2)
    unknown = set(parts) - {n.split("_")[0] for n in names}
    if unknown:
        raise SystemExit(f"--probe-parts: no {sorted(unknown)} in {arch}")
    edges = np.cumsum([0, *(2 * w for w in widths)])
    return np.concatenate([np.arange(edges[i], edges[i + 1]) for i, n in enumerate(names)
                           if n.split("_")[0] in parts])


def score_probe(feats: dict[str, tuple], family: str) -> dict:
    """Refit the probe without the family (train and val), threshold on val, score as above."""
    from deepfake_detection.metrics import best_f1_threshold
    from deepfake_detection.training import probe
    from deepfake_detection.training.data import group_of, source_weights

    def held(split: str, keep_family: bool):
        paths, labels, x = feats[split]
        inside = np.array([group_of(p) in FAMILIES[family] for p in paths])
        keep = (labels == 0) | (inside if keep_family else ~inside)
        return paths[keep], labels[keep], x[keep]

    paths, labels, x = held("train", False)
    fitted = probe.fit(x, labels, source_weights(paths, labels))
    _, val_labels, val_x = held("val", False)
    threshold = best_f1_threshold(val_labels, fitted.predict_proba(val_x)[:, 1],
                                  balanced=True)["value"]
    _, labels, x = held("test", True)
    record = result(family, labels, fitted.predict_proba(x)[:, 1], threshold,
                    "linear probe, frozen ImageNet features")
    return {**record, "features": x.shape[1]}


def table(results: dict[str, dict], tag: str) -> str:
    rows = [f"| {r['family']} ({', '.join(r['sources'])}) | {r['fakes']} | {r['roc_auc']:.3f} | "
            f"{r['fakes_caught']:.2f} | {r['reals_called_real']:.2f} |"
            for r in results.values()]
    aucs = [r["roc_auc"] for r in results.values()]
    worst = min(results.values(), key=lambda r: r["roc_auc"])
    return "\n".join([
        f"# Leave-one-family-out ({tag})", "",
        f"Each family held out of training and validation, its test fakes scored against all "
        f"test reals; schedule `{next(iter(results.values()))['schedule']}`. {len(results)} of "
        f"{len(FAMILIES)} families.", "",
        "| held-out family | test fakes | ROC-AUC | fakes caught | reals called real |",
        "|---|---|---|---|---|", *rows, "",
        f"Mean ROC-AUC {statistics.mean(aucs):.3f}; worst {worst['family']} "
        f"{worst['roc_auc']:.3f}.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES),
                        default=sorted(FAMILIES))
    parser.add_argument("--tag", default="native", help="names the results (e.g. a variant)")
    parser.add_argument("--recipe", default="native", choices=["native", *RECIPE_TRAIN],
                        help="the recipe trained without each family (native: the reduced "
                             "schedule above)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override for a variant (with --tag)")
    parser.add_argument("--epochs", action="append", default=[], metavar="PHASE=N",
                        help="a longer or shorter phase than the schedule's (with --tag), "
                             "said in the table")
    parser.add_argument("--runs", default="runs/lofo")
    parser.add_argument("--probe", metavar="ARCH",
                        help="a linear probe on this network's frozen ImageNet features instead "
                             "of training (e.g. efficientnet_lite0)")
    parser.add_argument("--fuse", metavar="ARCH",
                        help="the plain recipe fused with a trace probe on this network "
                             "(`fuse-probe`)")
    parser.add_argument("--fuse-with", metavar="TAG",
                        help="the plain recipe fused with variant TAG's network "
                             "(`fuse-networks`; TAG's bundles must exist)")
    parser.add_argument("--probe-parts", nargs="+", metavar="PART",
                        help="the probe reads only these (stage0 ... stage6, top); default all")
    args = parser.parse_args()
    folder = RESULTS / f"lofo_{args.tag}"
    folder.mkdir(parents=True, exist_ok=True)
    extra = [x for item in args.set for x in ("--set", item)]
    extra += [x for item in args.epochs for x in ("--epochs", item)]
    feats = None
    for family in args.families:
        result_file = folder / f"{family}.json"
        if result_file.is_file():
            continue
        if args.probe:
            if feats is None:
                feats = probe_features(args.probe, args.data, Path(args.runs))
                if args.probe_parts:
                    columns = probe_columns(args.probe, args.probe_parts)
                    feats = {k: (p, y, x[:, columns]) for k, (p, y, x) in feats.items()}
            record = score_probe(feats, family)
            record["schedule"] += f" of {args.probe}: {' '.join(args.probe_parts or ['all'])}"
        elif args.fuse or args.fuse_with:
            command, then = (
                (["fuse-probe", "--arch", args.fuse], f"fuse-probe --arch {args.fuse}")
                if args.fuse else
                (["fuse-networks", "--with", str(Path(args.runs) / args.fuse_with / family)],
                 f"fuse-networks with {args.fuse_with}"))
            bundle = fused(family, args.data, Path(args.runs), args.tag, command)
            record = score(bundle, family, args.data)
            record["schedule"] += f", then {then}"
        else:
            bundle = train(family, args.data, Path(args.runs) / args.tag, extra, args.recipe)
            record = score(bundle, family, args.data, args.recipe)
            record["schedule"] += "".join(f" --epochs {item}" for item in args.epochs)
        result_file.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{family}: {json.loads(result_file.read_text())['roc_auc']:.3f}", flush=True)
    results = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    (RESULTS / f"lofo_{args.tag}.md").write_text(table(results, args.tag))
    print(table(results, args.tag))


if __name__ == "__main__":
    main()
