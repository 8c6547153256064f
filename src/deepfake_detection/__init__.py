"""deepfake-detection: tell real photographs from AI-generated images, and show the evidence."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepfake-detection")  # one place: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed (Spaces)
    __version__ = "unknown"
