"""Hugging Face Spaces entry point: the same app on the bundled detector.

Spaces runs `python app.py`; `src/` is put on the path so the package works without installing.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from deepfake_detection import tensorflow_logs  # noqa: E402

tensorflow_logs.import_quietly()  # before the app's modules load TensorFlow
from deepfake_detection.interfaces.app import (  # noqa: E402
    MAX_FILE_SIZE,
    build_demo,
    default_host,
    stop_on_sigterm,
)

demo = build_demo()

if __name__ == "__main__":
    stop_on_sigterm()  # uploads are deleted on `kill` as on Ctrl-C
    demo.launch(server_name=default_host(os.environ), max_file_size=MAX_FILE_SIZE)
