"""A newcomer's first hour: a quiet `predict`, the package's top-level face, the README's
Python example run as written, and `train` that leaves the tracked model files alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detection.interfaces.cli import TRACKED_EXPORT, _train_config, build_parser

from .conftest import REPO


def _photo(path: Path, size=(300, 400)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), np.uint8)).save(path, quality=90)
    return path


def _run(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("TF_CPP_MIN_LOG_LEVEL", "DFD_VERBOSE")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**environ, **env})


def test_predict_on_one_image_prints_only_its_result(tmp_path):
    _photo(tmp_path / "photo.jpg")
    quiet = _run([sys.executable, "-m", "deepfake_detection", "predict", "photo.jpg"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # no oneDNN notice, no cuInit "error", no summary line
    lines = quiet.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("image") and lines[1].startswith("photo.jpg")
    loud = _run([sys.executable, "-m", "deepfake_detection", "predict", "photo.jpg",
                 "--verbose"], tmp_path)
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert loud.stderr  # TensorFlow's own start-up lines, shown when asked for


def _readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    return blocks[0]


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The first ```python block of the README, run in a folder holding a photo.jpg."""
    _photo(tmp_path / "photo.jpg")
    example = _readme_python_example()
    assert "import deepfake_detection as dfd" in example
    run = _run([sys.executable, "-c", example], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and re.search(r"\b(real|fake|uncertain)\b", run.stdout)


def test_the_top_level_face_is_light_and_matches_the_subpackages(tmp_path):
    import deepfake_detection as dfd
    from deepfake_detection.detector import Detector
    from deepfake_detection.inference.detector import Detector as Inner

    assert Detector is Inner is dfd.Detector
    assert {"load", "check", "read_provenance", "Detector"} <= set(dfd.__all__)
    light = _run([sys.executable, "-c", "import sys, deepfake_detection; "
                  "print('tensorflow' in sys.modules)"], tmp_path)
    assert light.stdout.strip() == "False"  # importing the package loads no model code
    photo = _photo(tmp_path / "p.png", (40, 40))
    record = dfd.check(photo, model="cifake")
    assert record.detector == "cifake" and record.provenance["summary"].startswith("no prov")
    assert record.prob_fake == dfd.load("cifake").predict(photo).prob_fake
    assert dfd.read_provenance(photo)["strongest"] == "none"


def test_cli_train_exports_inside_the_run_and_train_py_keeps_the_tracked_files(tmp_path):
    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "runs" / "x")])
    assert _train_config(args).export_stem == str(tmp_path / "runs" / "x" / "final_model")
    asked = build_parser().parse_args(["train", "--data", str(tmp_path), "--export", ""])
    assert _train_config(asked).export_stem == ""
    script = ("import sys, runpy; import deepfake_detection.interfaces.cli as cli; "
              "cli.main = lambda argv: print(argv) or 0; sys.argv = ['train.py', '--seed', '1']; "
              "runpy.run_path('train.py', run_name='__main__')")
    run = _run([sys.executable, "-c", script], REPO)
    assert f"'--export', '{TRACKED_EXPORT}'" in run.stdout, run.stderr
