"""The original project's entry point: `python train.py [train options]`.

Same code as `deepfake-detection train`, with the original design's export: the trained model is
also written to models/final_model.h5 (and .keras) unless `--export` says otherwise.
"""

import sys

from deepfake_detection.interfaces.cli import TRACKED_EXPORT, main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--export" or a.startswith("--export=") for a in argv):
        argv += ["--export", TRACKED_EXPORT]
    sys.exit(main(["train", *argv]))
