from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from deepfake_detection.inference import bundle
from deepfake_detection.models import build_model


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return build_model("resnet_small", widths=(8, 16), blocks_per_stage=1)


BATCH = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def test_save_and_load_round_trip(small_model, tmp_path):
    out = bundle.Bundle(tmp_path / "b", {"threshold": {"value": 0.3}}, small_model).save(BATCH)
    saved = bundle.Bundle.load(out)
    model, meta = saved.model, saved.metadata
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
        bundle.Bundle.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(bundle.BundleError, match="missing model.keras"):
        bundle.Bundle.load(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / bundle.MODEL_FILE).write_text("not a model")
    with pytest.raises(bundle.BundleError, match="cannot load model"):
        bundle.Bundle.load(tmp_path / "bad")


def test_newer_schema_is_refused(small_model, tmp_path):
    out = bundle.Bundle(tmp_path / "b", {}, small_model).save(BATCH)
    meta = json.loads((out / bundle.METADATA_FILE).read_text())
    meta["schema_version"] = bundle.SCHEMA_VERSION + 1
    (out / bundle.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match="newer"):
        bundle.Bundle.load(out)


def test_bare_keras_file_loads_with_its_input_size(small_model, tmp_path):
    small_model.save(tmp_path / "bare.keras")
    saved = bundle.Bundle.load(tmp_path / "bare.keras")
    _, meta = saved.model, saved.metadata
    assert meta["image_spec"] == {"size": 32}


def test_the_original_export_reads_its_sidecar_and_means_what_the_bundle_means():
    """models/final_model.h5 (the original project's file) loads with its threshold and
    temperature from models/final_model.json: the same probabilities and verdicts as the
    bundled cifake detector."""
    from deepfake_detection.inference.detector import Detector

    root = Path(__file__).resolve().parents[1]
    export, shipped = Detector.load(root / "models" / "final_model.h5"), Detector.load()
    assert export.threshold == shipped.threshold and export.temperature == shipped.temperature
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(export.probabilities(x), shipped.probabilities(x), atol=1e-6)


def test_export_writes_a_sidecar_that_load_reads(small_model, tmp_path):
    meta = {"schema_version": 1, "image_spec": {"size": int(small_model.input_shape[1])},
            "threshold": {"value": 0.3}, "calibration": {"temperature": 2.0}}
    written = bundle.export_model(small_model, tmp_path / "final_model", BATCH, meta)
    assert [p.name for p in written][-1] == "final_model.json"
    for path in written[:2]:
        saved = bundle.Bundle.load(path)
        _, loaded = saved.model, saved.metadata
        assert loaded["threshold"]["value"] == 0.3 and loaded["calibration"]["temperature"] == 2


@pytest.mark.parametrize("field,value,message", [
    ("threshold", {"value": 0}, "threshold.value"),
    ("threshold", {"value": 1.5}, "threshold.value"),
    ("threshold", {"value": "0.5"}, "threshold.value"),
    ("calibration", {"temperature": 0}, "calibration.temperature"),
    ("calibration", {"temperature": -1}, "calibration.temperature"),
    ("image_spec", {"size": 64}, "image_spec.size"),
    ("image_spec", {"fit": "stretch"}, "image_spec"),
    ("image_spec", {"colour": 1}, "image_spec"),
    ("class_names", ["FAKE", "REAL"], "class_names"),
    ("schema_version", 99, "schema_version"),
])
def test_bad_metadata_is_a_bundle_error_naming_the_field(small_model, tmp_path, field, value,
                                                         message):
    size = int(small_model.input_shape[1])
    meta = {"schema_version": 1, "image_spec": {"size": size}, field: value}
    if field == "image_spec" and "size" not in value:
        meta["image_spec"] = {"size": size, **value}
    small_model.save(tmp_path / "model.keras")
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match=f"field {message} "):
        bundle.Bundle.load(tmp_path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe"])
def test_unreadable_metadata_is_a_bundle_error(small_model, tmp_path, content):
    small_model.save(tmp_path / "model.keras")
    (tmp_path / "metadata.json").write_text(content, encoding="latin-1")
    with pytest.raises(bundle.BundleError, match="metadata"):
        bundle.Bundle.load(tmp_path)


def test_a_bundle_owns_its_files_and_reads_its_model_only_when_used(small_model, tmp_path):
    out = bundle.Bundle(tmp_path / "b", {"threshold": {"value": 0.3}}, small_model).save(BATCH)
    opened = bundle.Bundle.open(out)
    assert opened._model is None and opened.threshold == 0.3 and opened.name == "b"
    assert opened.calibration.temperature == 1.0 and opened.spec.size == 32
    assert opened.write_card("# card\n") == out / bundle.CARD_FILE
    assert opened.write_json(bundle.CONFIG_FILE, {"seed": 1}).read_text().count("seed") == 1
    assert opened.history is None
    opened.write_json(bundle.HISTORY_FILE, {"main": {"loss": [0.5]}})
    assert opened.history == {"main": {"loss": [0.5]}}
    with pytest.raises(ValueError, match="not a bundle file"):
        opened.write_json("../elsewhere.json", {})
    np.testing.assert_allclose(opened.model(BATCH), small_model(BATCH), atol=1e-5)
