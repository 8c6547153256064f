"""Native-resolution detectors on mixed-256, side by side in one run.

Rows: linear probes on frozen EfficientNet-Lite features (ImageNet weights and random weights,
the `--weights none` control), trained bundles (e.g. `train --recipe native`), and the cifake
detector (everything shrunk to 32x32) as the baseline. Columns: test ROC-AUC, accuracy at the
threshold chosen on validation (never on test), REAL / FAKE accuracy, the worst source, ROC-AUC
after a JPEG q75 re-save and after a 0.5x downscale, leave-one-generator-out ROC-AUC (the
held-out generator against all test reals), and speed.

    python benchmarks/native.py --data ../shared/data/mixed-256 \
        --bundle native=src/deepfake_detection/assets/native_detector \
        --logo-bundle flux=runs/native-no-flux --logo-bundle sdxl=runs/native-no-sdxl

Probes hold every generator out in turn by refitting (seconds); a bundle's leave-one-out figure
needs a bundle trained without that generator (`--set exclude_sources=flux`), given with
`--logo-bundle`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
HELD_OUT = ("flux", "sdxl", "gptimg2")
PROBES = {  # name -> (arch, weights)
    "probe_lite0_imagenet": ("efficientnet_lite0", "imagenet"),
    "probe_lite0_random": ("efficientnet_lite0", "none"),
    "probe_lite2_imagenet": ("efficientnet_lite2", "imagenet"),
}


def perturbations() -> dict:
    from deepfake_detection.evaluation.perturbations import apply

    rng = np.random.default_rng(0)
    return {"jpeg75": lambda x: apply(x, "jpeg_quality", 75, rng),
            "half": lambda x: apply(x, "rescale_down_to", x.shape[0] // 2, rng)}


def summarise(labels, probs, threshold, paths, extra=None) -> dict:
    from deepfake_detection.metrics import classification_metrics, ranking_metrics
    from deepfake_detection.training.data import group_of

    at = classification_metrics(labels, probs, threshold)
    groups = np.array([group_of(p) for p in paths])
    per_source = {g: float(((probs[groups == g] >= threshold) == labels[groups == g]).mean())
                  for g in sorted(set(groups))}
    worst = min(per_source, key=per_source.get)
    return {"roc_auc": ranking_metrics(labels, probs)["roc_auc"], "threshold": threshold,
            "accuracy": at["accuracy"], "real_acc": at["per_class_accuracy"]["REAL"],
            "fake_acc": at["per_class_accuracy"]["FAKE"], "per_source": per_source,
            "worst_source": f"{worst} {per_source[worst]:.2f}", **(extra or {})}


def _auc(labels, probs) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs))


def logo_auc(test_labels, test_probs, test_paths, generator) -> float:
    from deepfake_detection.training.data import group_of

    groups = np.array([group_of(p) for p in test_paths])
    mask = (groups == generator) | (test_labels == 0)
    return _auc(test_labels[mask], test_probs[mask])


def run_probe(name, arch, weights, train, val, test, size) -> dict:
    from deepfake_detection.imaging import ImageSpec
    from deepfake_detection.metrics import best_f1_threshold
    from deepfake_detection.training import probe
    from deepfake_detection.training.data import group_of, source_weights

    spec = ImageSpec(size=size, fit="native")
    model = probe.feature_model(arch, size, weights)
    started = time.perf_counter()
    feats = {k: probe.extract(model, files.paths, spec) for k, files in
             (("train", train), ("val", val), ("test", test))}
    speed = (len(train.paths) + len(val.paths) + len(test.paths)) / (time.perf_counter() - started)
    for key, fn in perturbations().items():
        feats[key] = probe.extract(model, test.paths, spec, perturb=fn)
    weights_ = source_weights(train.paths, train.labels)
    fitted = probe.fit(feats["train"], train.labels, weights_)
    threshold = best_f1_threshold(val.labels, fitted.predict_proba(feats["val"])[:, 1],
                                  balanced=True)["value"]
    probs = fitted.predict_proba(feats["test"])[:, 1]
    extra = {f"auc_{k}": _auc(test.labels, fitted.predict_proba(feats[k])[:, 1])
             for k in perturbations()}
    groups = np.array([group_of(p) for p in train.paths])
    for generator in HELD_OUT:
        keep = groups != generator
        held = probe.fit(feats["train"][keep], train.labels[keep],
                         source_weights(np.array(train.paths)[keep], train.labels[keep]))
        extra[f"logo_{generator}"] = logo_auc(test.labels, held.predict_proba(feats["test"])[:, 1],
                                              test.paths, generator)
    extra["features_img_s"] = speed
    print(f"{name}: done", file=sys.stderr, flush=True)
    return summarise(test.labels, probs, threshold, test.paths, extra)


def run_bundle(path, test, logo: dict[str, str]) -> dict:
    from deepfake_detection.inference.detectors import load

    detector = load(path)
    results = list(detector.predict_many(test.paths, batch_size=64))
    probs = np.array([r.prob_fake for r in results])
    images = np.stack([detector.prepare(p)[0] for p in test.paths])
    extra = {f"auc_{k}": _auc(test.labels,
                              detector.probabilities(np.stack([fn(x) for x in images])))
             for k, fn in perturbations().items()}
    for generator, held_path in logo.items():
        held = load(held_path)
        held_probs = np.array([r.prob_fake for r in held.predict_many(test.paths, 64)])
        extra[f"logo_{generator}"] = logo_auc(test.labels, held_probs, test.paths, generator)
    extra.update(speed(detector))
    return summarise(test.labels, probs, detector.threshold, test.paths, extra)


def speed(detector) -> dict:
    """Median seconds for one 1024x1024 verdict (decode included) and batch images/s at 256."""
    from detector_speed import jpeg_1024

    data = jpeg_1024()
    detector.predict(data)
    seconds = []
    for _ in range(7):
        start = time.perf_counter()
        detector.predict(data)
        seconds.append(time.perf_counter() - start)
    batch = np.random.default_rng(1).uniform(0, 255, (64, detector.spec.size,
                                                      detector.spec.size, 3)).astype(np.float32)
    detector.logits(batch)
    start = time.perf_counter()
    for _ in range(3):
        detector.logits(batch)
    return {"latency_1024_s": statistics.median(seconds),
            "batch_img_s": 3 * len(batch) / (time.perf_counter() - start)}


def render(rows: dict) -> str:
    cols = ["roc_auc", "accuracy", "real_acc", "fake_acc", "worst_source", "auc_jpeg75",
            "auc_half", *[f"logo_{g}" for g in HELD_OUT]]
    lines = ["| detector | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in rows.items():
        cells = [row.get(c, "-") for c in cols]
        lines.append(f"| {name} | " + " | ".join(
            f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    lines += ["", "| detector | " + " | ".join(sorted({
        s for r in rows.values() for s in r["per_source"]})) + " |"]
    sources = sorted({s for r in rows.values() for s in r["per_source"]})
    lines.append("|---" * (len(sources) + 1) + "|")
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{row['per_source'].get(s, float('nan')):.2f}" for s in sources) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from deepfake_detection.training.data import load_split, stratified_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--probes", nargs="*", default=list(PROBES))
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--logo-bundle", action="append", default=[], metavar="GEN=PATH",
                        help="a bundle trained without generator GEN, for the first --bundle")
    parser.add_argument("--baseline", default="cifake", help="'' to skip")
    parser.add_argument("--out", default=str(RESULTS / "native"))
    args = parser.parse_args()
    train, val = stratified_split(load_split(Path(args.data) / "train"), 0.15, 42)
    test = load_split(Path(args.data) / "test")
    rows: dict = {}
    for name in args.probes:
        rows[name] = run_probe(name, *PROBES[name], train, val, test, 256)
    logo = dict(item.split("=", 1) for item in args.logo_bundle)
    for i, item in enumerate(args.bundle):
        name, path = item.split("=", 1)
        rows[name] = run_bundle(path, test, logo if i == 0 else {})
    if args.baseline:
        rows[f"{args.baseline} (baseline)"] = run_bundle(args.baseline, test, {})
    result = {"data": args.data, "machine": platform.processor() or platform.machine(),
              "test_counts": {"REAL": int((test.labels == 0).sum()),
                              "FAKE": int((test.labels == 1).sum())},
              "command": " ".join(sys.argv), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2))
    Path(args.out + ".md").write_text(f"`{result['command']}`\n\n" + render(rows))
    print(render(rows))


if __name__ == "__main__":
    main()
