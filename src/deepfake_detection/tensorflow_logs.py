"""Import TensorFlow without its C++ start-up chatter on the user's terminal.

On a machine without a GPU, TensorFlow 2.21 writes oneDNN notices and an `E0000 ... failed call
to cuInit` line to stderr while it loads, before its own log level is read, and a user takes
that for a crash. `import_quietly` sends file descriptor 2 to a temporary file for the import
and the device set-up, then gives stderr back; if the import fails, what was held back is
replayed so the real cause is seen. `DFD_VERBOSE=1` (the CLI's `--verbose`) shows everything.
"""

from __future__ import annotations

import os
import sys
import tempfile

VERBOSE_ENV = "DFD_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def import_quietly() -> None:
    """Load TensorFlow and its devices once, with stderr held back unless DFD_VERBOSE is set."""
    if "tensorflow" in sys.modules or verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # after start-up: warnings and errors
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe happens here, not at import
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
