"""The laundering benchmark: mixed-256 test after what platforms and people do to images
(resizes, JPEG 4:2:0, WebP, screenshots, crops, sharpening, denoising, noise, and chains of
them), scored by each detector as uploads. Resumable: rows already in OUT.json are kept.

    python benchmarks/laundering.py --model native --out benchmarks/results/laundering
    python benchmarks/laundering.py --model native --model laundered=runs/native-laundered \
        --out benchmarks/results/laundering

`--model NAME=PATH` names a bundle folder; a bare name is a bundled detector (`native`, ...).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def named_models(values: list[str]) -> dict[str, str]:
    """`NAME=PATH` or a bundled name, each as name -> what `dfd.load` takes."""
    return dict(v.split("=", 1) if "=" in v else (v, v) for v in values)


def render(results: dict, data: str, count: int) -> str:
    from deepfake_detection.evaluation.laundering import describe

    names = list(results)
    chains = list(dict.fromkeys(c for rows in results.values() for c in rows))
    head = " | ".join(f"{n} ROC-AUC | {n} REAL acc. | {n} FAKE acc." for n in names)
    models = " ".join(f"--model {n}" if rows["clean"]["bundle"] == n else
                      f"--model {n}={rows['clean']['bundle']}" for n, rows in results.items())
    lines = [f"# Laundering: `{data}/test` ({count} images) after everyday processing", "",
             f"Reproduce: `python benchmarks/laundering.py {models} --out "
             "benchmarks/results/laundering`. Accuracies at each bundle's threshold; operations "
             "work on the 256x256 test crops, and an image left smaller than 256 px is enlarged "
             "by the Detector as any small upload is.", "",
             f"| operation | what it does | {head} |",
             "|---|---|" + "---|" * (3 * len(names))]
    for chain in chains:
        cells = []
        for name in names:
            row = results[name].get(chain)
            cells += (["-"] * 3 if row is None else
                      [f"{row['roc_auc']:.3f}", f"{row['REAL_accuracy']:.2f}",
                       f"{row['FAKE_accuracy']:.2f}"])
        words = "as published" if chain == "clean" else describe(chain)
        lines.append(f"| `{chain}` | {words} | " + " | ".join(cells) + " |")
    for name in names:
        rows = {c: r for c, r in results[name].items() if c != "clean"}
        if rows:
            single = {c: r for c, r in rows.items() if ">" not in c}
            chained = {c: r for c, r in rows.items() if ">" in c}
            worst = [f"worst single operation {min(single, key=lambda c: single[c]['roc_auc'])} "
                     f"{min(r['roc_auc'] for r in single.values()):.3f}"] if single else []
            worst += [f"worst chain {min(chained, key=lambda c: chained[c]['roc_auc'])} "
                      f"{min(r['roc_auc'] for r in chained.values()):.3f}"] if chained else []
            lines.append(f"\n{name}: " + "; ".join(worst) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/mixed-256")
    parser.add_argument("--model", action="append", default=[], help="NAME or NAME=PATH")
    parser.add_argument("--ops", nargs="*", help="chains to run (default: every single "
                        "operation and chain of evaluation.laundering)")
    parser.add_argument("--limit", type=int, default=0, help="a seeded subset (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/laundering")
    args = parser.parse_args()
    import deepfake_detection as dfd
    from deepfake_detection.evaluation import laundering
    from deepfake_detection.training.data import load_split

    test = load_split(Path(args.data) / "test")
    paths, labels = list(test.paths), np.asarray(test.labels)
    if args.limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(paths))[:args.limit])
        paths, labels = [paths[i] for i in keep], labels[keep]
    chains = args.ops or [*laundering.SINGLE, *laundering.CHAINS]
    for chain in chains:
        laundering.parse(chain)  # fails before any work
    out = Path(args.out + ".json")
    results = json.loads(out.read_text()) if out.exists() else {}
    for name, path in named_models(args.model or ["native"]).items():
        detector = dfd.load(path)
        done = results.setdefault(name, {})
        for chain in [c for c in ["clean", *chains] if c not in done]:
            start = time.perf_counter()
            done[chain] = laundering.benchmark(detector, paths, labels, [chain],
                                               args.seed)[chain]
            done[chain]["bundle"] = str(path)
            print(f"{name} {chain}: ROC-AUC {done[chain]['roc_auc']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            out.write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out + ".md").write_text(render(results, args.data, len(paths)))
    print(render(results, args.data, len(paths)))


if __name__ == "__main__":
    main()
