"""The shipped detectors' probabilities on fixed images, to prove a refactor changed nothing.

Run it on two checkouts (the package imported from each) and compare:

    PYTHONPATH=/tmp/old/src python benchmarks/bundle_probabilities.py --out /tmp/old.json
    python benchmarks/bundle_probabilities.py --out /tmp/new.json --against /tmp/old.json

Images: every 40th of `sd-vs-real-32/test` and every 30th of `mixed-256/test` (sorted), through
`predict_many`, so decoding, native crops, calibration and the auto choice are all included.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DETECTORS = ("cifake", "robust", "native", "auto")


def images(data: Path) -> list[str]:
    small = sorted((data / "sd-vs-real-32" / "test").rglob("*.*"))[::40]
    native = sorted((data / "mixed-256" / "test").rglob("*.*"))[::30]
    return [str(p) for p in small + native]


def load(name: str):
    try:
        from deepfake_detection.inference.detectors import load as load_detector
    except ImportError:  # the layout before the subpackages
        from deepfake_detection.detectors import load as load_detector
    return load_detector(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", type=Path)
    parser.add_argument("--out", required=True)
    parser.add_argument("--against", help="an earlier output: report the largest difference")
    args = parser.parse_args()
    paths = images(args.data)
    probs = {name: [r.prob_fake for r in load(name).predict_many(paths, batch_size=16)]
             for name in DETECTORS}
    Path(args.out).write_text(json.dumps({"paths": paths, "probs": probs}, indent=1))
    if args.against:
        before = json.loads(Path(args.against).read_text())["probs"]
        for name in DETECTORS:
            diff = max(abs(a - b) for a, b in zip(before[name], probs[name]))
            print(f"{name}: {len(paths)} images, largest difference {diff:.1e}")


if __name__ == "__main__":
    main()
