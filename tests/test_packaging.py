"""requirements.txt (what Hugging Face Spaces installs) agrees with pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")
# Spaces runs on CPU: the CPU-only TensorFlow wheel stands in for `tensorflow`.
ALIASES = {"tensorflow-cpu": "tensorflow"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.\-\[\]]+)(.*)", requirement.strip()).groups()
    name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
    return ALIASES.get(name, name), spec.replace(" ", "")


def test_spaces_requirements_match_the_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    needed = dict(map(_split, project["dependencies"] + extras["app"] + extras["attacks"]))
    lines = [line for line in (REPO / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    spaces = dict(map(_split, lines))
    core = dict(map(_split, project["dependencies"]))
    assert set(core) <= set(spaces), f"missing on Spaces: {set(core) - set(spaces)}"
    for name, spec in spaces.items():
        assert name in needed, f"{name} is in requirements.txt but not in pyproject.toml"
        assert spec == needed[name], f"{name}: {spec!r} in requirements.txt, {needed[name]!r}"


def test_readme_front_matter_deploys_app_py_on_spaces():
    """Spaces reads README.md's YAML front matter: gradio SDK, app.py, a version that
    requirements.txt admits (Gradio 6: build_demo uses Gradio 6's api_visibility)."""
    text = (REPO / "README.md").read_text()
    assert text.startswith("---\n")
    front = dict(line.split(": ", 1) for line in text.split("---\n")[1].splitlines())
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert (REPO / front["app_file"]).is_file()
    major = int(front["sdk_version"].split(".")[0])
    spec = next(line for line in (REPO / "requirements.txt").read_text().splitlines()
                if line.startswith("gradio"))
    assert spec == f"gradio>={major},<{major + 1}"


def test_every_expected_failure_shares_one_base_the_cli_catches():
    """One except clause in the CLI covers them all; each still is a ValueError (or, for the
    cluster runner, a RuntimeError) for code that caught those before."""
    from deepfake_detection import imaging, models
    from deepfake_detection.errors import DetectionError
    from deepfake_detection.inference import bundle, export
    from deepfake_detection.interfaces import prediction_io as outputs
    from deepfake_detection.interfaces import scan
    from deepfake_detection.models import torch_checkpoint
    from deepfake_detection.training import config, data

    errors = [config.ConfigError, data.DataError, imaging.ImageError, bundle.BundleError,
              models.ModelError, torch_checkpoint.CheckpointError, scan.ScanError,
              export.ExportError, outputs.OutputError]
    assert all(issubclass(e, DetectionError) for e in errors)
    assert all(issubclass(e, ValueError) for e in errors if e is not scan.ScanError)


def test_the_version_has_one_source():
    import deepfake_detection

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert deepfake_detection.__version__ == project["version"]


LAYERS = {"inference": 1, "training": 2, "evaluation": 3, "interfaces": 4}


FACES = ("__main__", "detector")  # the package's front doors: above every layer


def _layer(module: str) -> int:
    """Foundations (errors, imaging, metrics, calibration, attacks, models) are 0; the package
    itself (`import deepfake_detection as dfd`) and its FACES sit on top."""
    parts = module.split(".")
    if parts == ["deepfake_detection"] or parts[1:2] and parts[1] in FACES:
        return 5
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def test_no_module_imports_a_layer_above_it():
    """Data flows one way (README, Layout): the check reads every import, function-local ones
    included, of every module in the package."""
    import ast

    root = Path(__file__).resolve().parents[1] / "src"
    wrong = []
    for path in sorted((root / "deepfake_detection").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.startswith("deepfake_detection.") and _layer(name) > _layer(module):
                    wrong.append(f"{module} imports {name}")
    assert not wrong, wrong
    assert _layer("deepfake_detection.interfaces.cli") > _layer("deepfake_detection.imaging")
