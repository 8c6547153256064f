"""Leave-one-family-out (LOFO): how the native recipe does on a generator family it never saw.

For each family of fakes in mixed-256, the recipe is trained without it (training and
validation), then that family's test fakes are scored against all test reals: ROC-AUC, the share
of its fakes caught at the bundle's own threshold, and the share of reals called real. One table,
mean and worst over the families done so far. Resumable and splittable, to fit sessions:
a family whose result file exists is not trained again.

    python benchmarks/lofo.py --families gan_faces gpt   # some families now
    python benchmarks/lofo.py                            # the rest, then the table

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

RESULTS = Path(__file__).parent / "results"
FAMILIES = {
    "sd1": ["ddb", "sd15", "sdft"],  # Stable Diffusion 1.x / 1.5 / 2.x fine-tunes
    "sdxl": ["sdxl"],
    "flux": ["flux"],
    "gpt": ["gptimg2", "gpt4o", "gptimage1"],  # OpenAI's autoregressive image models
    "midjourney": ["midjourney"],
    "dalle2": ["dalle2"],  # unCLIP pixel diffusion with upsamplers
    "latent_2022": ["glid3", "ldm"],  # 2022 latent diffusion (CompVis LDM, GLID-3)
    "dallemini": ["dallemini"],  # VQGAN decoder
    "disco": ["disco"],  # CLIP-guided pixel diffusion
    "gan_faces": ["tpdne", "genphotos", "stylegan2"],  # StyleGAN-family faces
}
# Reduced schedule (said in every table): 1 frozen + 3 fine-tune epochs with frozen BatchNorm,
# about 12 minutes a family on 2 cores against 25 for the full recipe.
TRAIN = ["--recipe", "native", "--set", "freeze_batchnorm=true", "--epochs", "frozen_base=1",
         "--epochs", "fine_tune=3", "--export", ""]


def train(family: str, data: str, runs: Path, extra: list[str]) -> Path:
    out = runs / family
    if not (out / "metadata.json").is_file():
        subprocess.run([sys.executable, "-m", "deepfake_detection", "train", *TRAIN, *extra,
                        "--data", data, "--out", str(out), "--set",
                        "exclude_sources=" + ",".join(FAMILIES[family])], check=True)
    return out


def score(bundle: Path, family: str, data: str) -> dict:
    """The held-out family's test fakes against every test real."""
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.inference.detectors import load
    from deepfake_detection.training.data import group_of, load_split

    test = load_split(Path(data) / "test")
    keep = [i for i, p in enumerate(test.paths)
            if test.labels[i] == 0 or group_of(p) in FAMILIES[family]]
    paths, labels = [test.paths[i] for i in keep], np.asarray(test.labels)[keep]
    detector = load(bundle)
    probs = np.array([r.prob_fake for r in detector.predict_many(paths, batch_size=64)])
    called = probs >= detector.threshold
    return {"family": family, "sources": FAMILIES[family], "fakes": int(labels.sum()),
            "reals": int((labels == 0).sum()), "roc_auc": float(roc_auc_score(labels, probs)),
            "fakes_caught": float(called[labels == 1].mean()),
            "reals_called_real": float((~called[labels == 0]).mean()),
            "threshold": detector.threshold, "schedule": shlex.join(TRAIN)}


def table(results: dict[str, dict], tag: str) -> str:
    rows = [f"| {r['family']} ({', '.join(r['sources'])}) | {r['fakes']} | {r['roc_auc']:.3f} | "
            f"{r['fakes_caught']:.2f} | {r['reals_called_real']:.2f} |"
            for r in results.values()]
    aucs = [r["roc_auc"] for r in results.values()]
    worst = min(results.values(), key=lambda r: r["roc_auc"])
    return "\n".join([
        f"# Leave-one-family-out ({tag})", "",
        f"Each family held out of training and validation, its test fakes scored against all "
        f"test reals; schedule `{shlex.join(TRAIN)}`. {len(results)} of "
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
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override for a variant (with --tag)")
    parser.add_argument("--runs", default="runs/lofo")
    args = parser.parse_args()
    folder = RESULTS / f"lofo_{args.tag}"
    folder.mkdir(parents=True, exist_ok=True)
    extra = [x for item in args.set for x in ("--set", item)]
    for family in args.families:
        result_file = folder / f"{family}.json"
        if result_file.is_file():
            continue
        bundle = train(family, args.data, Path(args.runs) / args.tag, extra)
        result_file.write_text(json.dumps(score(bundle, family, args.data), indent=2) + "\n")
        print(f"{family}: {json.loads(result_file.read_text())['roc_auc']:.3f}", flush=True)
    results = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    (RESULTS / f"lofo_{args.tag}.md").write_text(table(results, args.tag))
    print(table(results, args.tag))


if __name__ == "__main__":
    main()
