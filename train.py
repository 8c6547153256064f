"""The original project's entry point: `python train.py [train options]`.

Same code and defaults as `deepfake-detection train`; see `python train.py --help`.
"""

import sys

from deepfake_detection.interfaces.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
