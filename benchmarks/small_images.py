"""Images whose short side is under 256 px: which detector ranks them best? mixed-256 test crops
shrunk (Lanczos) to a side of 128 / 192 px, scored by `cifake` (what `auto` picks for them) and
by `native` on the image enlarged to its 256 px crop; writes
benchmarks/results/small_images.{json,md}.

    python benchmarks/small_images.py

Both detectors warn that these results are unreliable, so their verdict is `uncertain`; this
measures whether either probability would still be worth a verdict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detection import tensorflow_logs

RESULTS = Path(__file__).parent / "results"


def shrunk(paths: list[str], side: int) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB").resize((side, side),
                                                           Image.Resampling.LANCZOS))
            for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mixed-256/test")
    parser.add_argument("--sides", type=int, nargs="+", default=[128, 192])
    parser.add_argument("--out", default=str(RESULTS / "small_images"))
    args = parser.parse_args()
    tensorflow_logs.import_quietly()
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.inference.detectors import load
    from deepfake_detection.metrics import recall_at_fpr

    files = sorted(p for cls in ("REAL", "FAKE") for p in (Path(args.data) / cls).iterdir())
    labels = np.array([int("/FAKE/" in str(p)) for p in files])
    detectors = {name: load(name) for name in ("cifake", "native")}
    rows = []
    for side in args.sides:
        images = shrunk([str(p) for p in files], side)
        for name, detector in detectors.items():
            results = list(detector.predict_many(images))
            probs = np.array([r.prob_fake for r in results])
            band = [detector.verdict(p) for p in probs]  # the band's verdict, unwithheld
            rows.append({"side": side, "detector": name, "images": len(images),
                         "band_reals_called_ai": float(np.mean(
                             [v == "fake" for v, y in zip(band, labels) if y == 0])),
                         "band_fakes_called_real": float(np.mean(
                             [v == "real" for v, y in zip(band, labels) if y == 1])),
                         "roc_auc": float(roc_auc_score(labels, probs)),
                         "caught_at_1pct_fpr": float(recall_at_fpr(labels, probs, 0.01)),
                         "uncertain": float(np.mean([r.verdict == "uncertain"
                                                     for r in results]))})
            print(rows[-1], flush=True)
    lines = ["# Small images: mixed-256 test crops shrunk", "",
             "`python benchmarks/small_images.py`", "",
             "| side (px) | detector | ROC-AUC | fakes caught at 1% FPR | verdict uncertain | "
             "by its band alone: reals called AI | fakes called real |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['side']} | {r['detector']} | {r['roc_auc']:.3f} | "
              f"{r['caught_at_1pct_fpr']:.2f} | {r['uncertain']:.2f} | "
              f"{r['band_reals_called_ai']:.2f} | {r['band_fakes_called_real']:.2f} |"
              for r in rows]
    Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
