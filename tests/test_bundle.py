from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from deepfake_detection import bundle
from deepfake_detection.models import build_model


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return build_model("resnet_small", widths=(8, 16), blocks_per_stage=1)


BATCH = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def test_save_and_load_round_trip(small_model, tmp_path):
    out = bundle.save_bundle(small_model, tmp_path / "b", {"threshold": {"value": 0.3}}, BATCH)
    model, meta = bundle.load_bundle(out)
    assert meta["schema_version"] == bundle.SCHEMA_VERSION
    assert meta["threshold"]["value"] == 0.3
    assert meta["reload_check"]["max_abs_prob_diff"] <= bundle.RELOAD_TOLERANCE
    np.testing.assert_allclose(model(BATCH), small_model(BATCH), atol=1e-5)


def test_reload_check_catches_a_different_model(small_model, tmp_path):
    other = build_model("resnet_small", widths=(8, 16), blocks_per_stage=1)
    other.save(tmp_path / "other.keras")
    with pytest.raises(bundle.BundleError, match="differ"):
        bundle.verify_reload(small_model, tmp_path / "other.keras", BATCH)


def test_export_writes_keras_and_legacy_h5(small_model, tmp_path):
    paths = bundle.export_model(small_model, tmp_path / "models" / "final_model", BATCH)
    assert [p.name for p in paths] == ["final_model.keras", "final_model.h5"]
    h5 = keras.models.load_model(paths[1], compile=False)
    np.testing.assert_allclose(h5(BATCH), small_model(BATCH), atol=1e-5)


def test_missing_or_foreign_bundles_are_clear_errors(tmp_path):
    with pytest.raises(bundle.BundleError, match="no such model bundle"):
        bundle.load_bundle(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(bundle.BundleError, match="missing model.keras"):
        bundle.load_bundle(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / bundle.MODEL_FILE).write_text("not a model")
    with pytest.raises(bundle.BundleError, match="cannot load model"):
        bundle.load_bundle(tmp_path / "bad")


def test_newer_schema_is_refused(small_model, tmp_path):
    out = bundle.save_bundle(small_model, tmp_path / "b", {}, BATCH)
    meta = json.loads((out / bundle.METADATA_FILE).read_text())
    meta["schema_version"] = bundle.SCHEMA_VERSION + 1
    (out / bundle.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match="newer"):
        bundle.load_bundle(out)


def test_bare_keras_file_loads_with_its_input_size(small_model, tmp_path):
    small_model.save(tmp_path / "bare.keras")
    _, meta = bundle.load_bundle(tmp_path / "bare.keras")
    assert meta["image_spec"] == {"size": 32}
