"""`from deepfake_detection.detector import Detector` as it was before the package grew rooms.

The classes live in `deepfake_detection.inference.detector`; `import deepfake_detection as dfd;
dfd.load()` is the short way in.
"""

from deepfake_detection.inference.detector import Detector, Prediction

__all__ = ["Detector", "Prediction"]
