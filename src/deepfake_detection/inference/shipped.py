"""The shipped detectors' names and folders, and the check of a `--model` value.

Kept apart from `detectors` (which loads TensorFlow) so that a mistyped name is answered at
once, before seconds of start-up: `--model nativ` -> "did you mean native?".
"""

from __future__ import annotations

import difflib
from pathlib import Path

from deepfake_detection.errors import DetectionError

ASSETS = Path(__file__).parents[1] / "assets"
BUNDLES = {"cifake": ASSETS / "default_detector", "native": ASSETS / "native_detector",
           "robust": ASSETS / "robust_detector"}
AUTO = "auto"
CHOICES = (AUTO, *BUNDLES)
# `balanced`: each bundle's own threshold; `strict`: at most 1% of its validation reals called AI.
OPERATING_POINTS = ("balanced", "strict")


class UnknownModel(DetectionError, ValueError):
    """A `--model` that is neither a shipped name nor a folder."""


def check_name(model: str | Path | None) -> None:
    """Refuse a model that is neither a shipped name nor an existing bundle (folder or model
    file), naming the valid choices and the nearest one."""
    if model is None or str(model) in CHOICES or Path(model).exists():
        return
    near = difflib.get_close_matches(str(model), CHOICES, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near else ""
    raise UnknownModel(f"unknown model {str(model)!r} (no such model bundle or detector name): "
                       f"{hint}choose {', '.join(CHOICES)}, or a bundle folder made by "
                       "`deepfake-detection train`")
