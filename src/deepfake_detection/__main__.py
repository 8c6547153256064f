"""`python -m deepfake_detection ...` is the `deepfake-detection` command."""

import sys

from deepfake_detection.interfaces.cli import main

sys.exit(main())
