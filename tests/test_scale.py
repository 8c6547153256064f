"""Scaling out: the Ray Data runner in local mode against `predict` (required in CI)."""

from __future__ import annotations

import json
import os

import pytest

from deepfake_detection.interfaces import cli

from .conftest import shared_dataset


def _ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("DFD_REQUIRE_SCALE") == "1":
            pytest.fail('Ray is missing but DFD_REQUIRE_SCALE=1: pip install ".[scale]"')
        pytest.skip("Ray not installed (optional extra: scale)")
    return ray


def _rows(path):
    return {r["source"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_ray_scan_gives_the_verdicts_of_predict(tmp_path, capsys):
    ray = _ray()
    test = shared_dataset("sd-vs-real-32") / "test"
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    items = [str(test), str(tmp_path / "bad.jpg")]
    try:
        assert cli.main(["scan", *items, "-o", str(tmp_path / "ray.jsonl"),
                         "--concurrency", "2"]) == 1  # the bad file is reported, not fatal
    finally:
        ray.shutdown()
    assert "images/s on Ray" in capsys.readouterr().err
    assert cli.main(["predict", *items, "--jsonl", "-o", str(tmp_path / "local.jsonl")]) == 1
    on_ray, local = _rows(tmp_path / "ray.jsonl"), _rows(tmp_path / "local.jsonl")
    assert len(on_ray) == 1481 and on_ray.keys() == local.keys()
    assert on_ray[str(tmp_path / "bad.jpg")]["error"]
    for source, row in local.items():
        assert on_ray[source]["verdict"] == row["verdict"]
        if row["prob_fake"] is not None:
            assert on_ray[source]["prob_fake"] == pytest.approx(row["prob_fake"], abs=1e-6)


def test_scan_without_images_is_a_clear_error(tmp_path, capsys):
    _ray()
    assert cli.main(["scan", str(tmp_path), "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "no images to scan" in capsys.readouterr().err
