"""The original project's entry point: `python evaluate.py [evaluate options]`.

Same code and defaults as `deepfake-detection evaluate`; see `python evaluate.py --help`.
"""

import sys

from deepfake_detection.interfaces.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
