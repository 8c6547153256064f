"""Shared fixtures: images the tests make themselves, and the workplace's shared data sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A data set under ../shared/data; skipped when absent, failing in CI (DFD_REQUIRE_...)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("DFD_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{path} is missing but DFD_REQUIRE_SHARED_DATA=1")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def sd32() -> Path:
    return shared_dataset("sd-vs-real-32")


def smooth_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A 'REAL' stand-in: smooth colour gradients (low-frequency content)."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-60, 60, (2, 3))
    img = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    return np.clip(img, 0, 255).astype(np.uint8)


def noisy_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A 'FAKE' stand-in: strong high-frequency checkerboard texture, trivially separable."""
    y, x = np.mgrid[0:size, 0:size]
    checker = ((x + y) % 2) * 120.0
    img = rng.uniform(60, 120, 3) + checker[..., None] + rng.normal(0, 10, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_split(root: Path, n_per_class: int, rng: np.random.Generator, size: int = 32) -> None:
    for name, maker in (("REAL", smooth_image), ("FAKE", noisy_image)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            prefix = "photo" if name == "REAL" else "gen"
            Image.fromarray(maker(rng, size)).save(folder / f"{prefix}_{i:03d}.png")


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """train/ (40 per class) and test/ (12 per class) of synthetic, separable 32x32 PNGs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tiny"
    write_split(root / "train", 40, rng)
    write_split(root / "test", 12, rng)
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(root, bundle): a resnet_small trained a few epochs on synthetic data under root/data."""
    from deepfake_detection.training.config import PhaseConfig, TrainConfig
    from deepfake_detection.training.trainer import train

    root = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    write_split(root / "data" / "train", 40, rng)
    write_split(root / "data" / "test", 12, rng)
    config = TrainConfig(
        data_dir=str(root / "data"), output_dir=str(root / "bundle"), arch="resnet_small",
        weights="none", batch_size=8, export_stem=str(root / "models" / "final_model"),
        # About 70 steps: BatchNorm's moving statistics need that many before inference-mode
        # predictions are reliable (with ~20 steps the synthetic task was learned only by luck).
        phases=[PhaseConfig("frozen_base", 8, 1e-3, freeze_base=True),
                PhaseConfig("adversarial", 0, 1e-4, adversarial=True),
                PhaseConfig("fine_tune", 1, 1e-4)],
    )
    return root, train(config)


@pytest.fixture(autouse=True)
def _reset_logging():
    """CLI commands point logging at the current stderr; drop those handlers after each test
    so no later test writes to a capture stream pytest has closed."""
    import logging

    yield
    for handler in logging.getLogger().handlers[:]:
        logging.getLogger().removeHandler(handler)
        handler.close()
