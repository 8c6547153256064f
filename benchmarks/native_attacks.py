"""How robust the native-resolution detector is to small pixel changes: FGSM and PGD-10 at 1, 2
and 4/255 on 256x256 crops of mixed-256 test, with the sanity checks.

Threat model: L-inf, untargeted, white-box (ART on the detector's own logit, aimed at its
threshold), true labels, eps in /255 of the 0..255 pixels; PGD-10 from a random start, step
2.5*eps/10. The detector was not trained against any attack. Each crop is the centre 256x256
window of a test image, which is what the detector scores for an image of exactly that size.

    python benchmarks/native_attacks.py --subset 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mixed-256"))
    parser.add_argument("--model", default="native")
    parser.add_argument("--subset", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from deepfake_detection.evaluation import rendering, robustness
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.training.data import discover

    detector = load(args.model)
    test = discover(args.data / "test")
    idx = robustness.AttackPlan(subset=args.subset, seed=args.seed).pick(test.labels)
    x = np.stack([detector.prepare(test.paths[i])[0] for i in idx])
    y = test.labels[idx].astype(np.int64)
    started = time.perf_counter()
    result = robustness.sweep(detector, x, y, robustness.AttackPlan(pgd_steps=10, seed=args.seed),
                              eps_list=(1.0, 2.0, 4.0))
    result["seconds"] = time.perf_counter() - started
    result["command"] = "python benchmarks/native_attacks.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "native_attacks.json").write_text(json.dumps(result, indent=2))
    lines = ["# The native detector under attack (not adversarially trained)", "",
             f"Reproduce: `{result['command']}`", "",
             f"{len(y)} centre 256x256 crops of mixed-256 test (balanced, seed {args.seed}). "
             "White-box, L-inf, untargeted, true labels, aimed at the bundle's threshold; PGD-10 "
             "from a random start, step 2.5*eps/10.", ""]
    lines += rendering.render_sweep(detector.name, result)
    (RESULTS / "native_attacks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
