"""The trace probe: frozen features, a logistic regression, folded into one Keras network."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from deepfake_detection.models import build_model
from deepfake_detection.training import probe

SIZE = 64


@pytest.fixture(scope="module")
def parts():
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet_lite0", image_size=SIZE, weights="none")
    features = probe.feature_model("efficientnet_lite0", SIZE, weights="none",
                                   stages=probe.TRACE_STAGES, top=False)
    x = np.random.default_rng(0).uniform(0, 255, (16, SIZE, SIZE, 3)).astype("float32")
    x[8:] *= 0.5  # a difference the probe can learn
    labels = np.array([0] * 8 + [1] * 8)
    pipeline = probe.fit(np.asarray(features(x)), labels, c=1.0)
    return model, features, pipeline, x


def test_trace_features_are_every_stage_without_the_top(parts):
    _, features, _, x = parts
    # EfficientNet-Lite0 stages end with 16, 24, 40, 80, 112, 192, 320 channels: mean and RMS
    assert features(x[:1]).shape == (1, 2 * (16 + 24 + 40 + 80 + 112 + 192 + 320))


def test_fused_logit_is_the_weighted_sum_of_both_logits(parts):
    model, features, pipeline, x = parts
    fused = probe.fuse(model, features, pipeline, weight=0.3)
    expected = (0.7 * np.asarray(model(x))[:, 0]
                + 0.3 * pipeline.decision_function(np.asarray(features(x))))
    np.testing.assert_allclose(np.asarray(fused(x))[:, 0], expected, rtol=1e-3, atol=1e-3)
    assert not fused.get_layer("trace_probe_logit").trainable
    assert fused.get_layer("stage0_block0_out") is model.get_layer("stage0_block0_out")


def test_fused_network_reloads_to_the_same_logits(parts, tmp_path):
    model, features, pipeline, x = parts
    fused = probe.fuse(model, features, pipeline, weight=0.5)
    fused.save(tmp_path / "fused.keras")
    again = keras.models.load_model(tmp_path / "fused.keras", compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(fused(x)), rtol=1e-4, atol=1e-4)


def test_weight_outside_zero_one_is_refused(parts):
    model, features, pipeline, _ = parts
    with pytest.raises(ValueError, match="weight"):
        probe.fuse(model, features, pipeline, weight=1.5)


def test_fuse_probe_writes_a_new_bundle_and_leaves_the_old_one(tiny_bundle, tmp_path):
    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.training.config import ConfigError
    from deepfake_detection.training.trainer import fuse_probe

    root, source = tiny_bundle
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    out = tmp_path / "fused"
    metadata = fuse_probe(source, out, weight=0.5)
    assert {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before
    assert metadata["trace_probe"]["features"] == 1568 and (out / "novelty.npz").is_file()
    assert 0 < metadata["threshold"]["value"] < 1
    detector = Detector.load(out)
    assert detector.model.get_layer("fused_logit").get_weights()[0].ravel().tolist() == [0.5, 0.5]
    tests = sorted((root / "data" / "test").rglob("*.png"))
    probs = [r.prob_fake for r in detector.predict_many([str(p) for p in tests])]
    fake = [p for p, t in zip(probs, tests) if t.parent.name == "FAKE"]
    real = [p for p, t in zip(probs, tests) if t.parent.name == "REAL"]
    assert min(fake) > max(real)  # the synthetic classes stay apart once the probe has its say
    with pytest.raises(ConfigError, match="already holds a bundle"):
        fuse_probe(source, out)
    from deepfake_detection.interfaces.cli import _reproduce

    assert "&& deepfake-detection fuse-probe --model runs/fused-base --out runs/fused" in (
        _reproduce(out))  # the model card's command rebuilds the fused bundle, not the base


def test_fuse_probe_refuses_its_own_folder_and_robust_bundles(tiny_bundle, tmp_path):
    import json
    import shutil

    from deepfake_detection.training.config import ConfigError
    from deepfake_detection.training.trainer import fuse_probe

    source = tiny_bundle[1]
    with pytest.raises(ConfigError, match="is the bundle being fused"):
        fuse_probe(source, source, force=True)
    robust = tmp_path / "robust"
    shutil.copytree(source, robust)
    metadata = json.loads((robust / "metadata.json").read_text())
    metadata["adversarial_training"]["applied"] = True
    (robust / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigError, match="threat model"):
        fuse_probe(robust, tmp_path / "fused")


def test_fuse_logits_is_the_weighted_sum_and_reloads(parts, tmp_path):
    from deepfake_detection.models import fuse_logits

    model, _, _, x = parts
    keras.utils.set_random_seed(1)
    other = build_model("efficientnet_lite0_lpd", image_size=SIZE, weights="none")
    fused = fuse_logits(model, other, [0.25, 2.0])
    expected = 0.25 * np.asarray(model(x))[:, 0] + 2.0 * np.asarray(other(x))[:, 0]
    np.testing.assert_allclose(np.asarray(fused(x))[:, 0], expected, rtol=1e-3, atol=1e-3)
    assert fused.get_layer("stage0_block0_out") is model.get_layer("stage0_block0_out")
    fused.save(tmp_path / "both.keras")  # the residual layer inside the nested network too
    again = keras.models.load_model(tmp_path / "both.keras", compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(fused(x)), rtol=1e-4, atol=1e-4)


def test_fuse_networks_averages_calibrated_logits_and_refuses_other_splits(tiny_bundle,
                                                                          tmp_path):
    """A bundle fused with itself gives its own calibrated logit: the weights undo each
    temperature before the new one is fitted on the same validation split. Another split is
    refused."""
    import json
    import shutil

    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.interfaces.cli import _reproduce
    from deepfake_detection.training.config import ConfigError
    from deepfake_detection.training.trainer import fuse_networks

    source = tiny_bundle[1]
    out = tmp_path / "fused"
    metadata = fuse_networks(source, source, out, weight=0.5)
    temperature = Detector.load(source).bundle.calibration.temperature
    detector = Detector.load(out)
    weights = detector.model.get_layer("fused_logit").get_weights()[0].ravel()
    np.testing.assert_allclose(weights, [0.5 / temperature] * 2, rtol=1e-6)
    assert metadata["fused_with"]["weight"] == 0.5 and (out / "novelty.npz").is_file()
    assert (out / "second_config.json").is_file()
    alone = Detector.load(source)
    x = np.random.default_rng(0).uniform(0, 255, (6, alone.bundle.spec.size,
                                                   alone.bundle.spec.size, 3)).astype("f4")
    np.testing.assert_allclose(detector.logits(x), alone.logits(x) / temperature, rtol=1e-4,
                               atol=1e-4)
    assert "fuse-networks --model runs/fused-first --with runs/fused-second" in _reproduce(out)
    with pytest.raises(ConfigError, match="already holds a bundle"):
        fuse_networks(source, source, out)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        fuse_networks(source, source, tmp_path / "x", weight=2.0)
    other = tmp_path / "other"
    shutil.copytree(source, other)
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["family_head"] = {"families": ["sd1"]}  # its file is not carried over: dropped
    (other / "metadata.json").write_text(json.dumps(metadata))
    assert "family_head" not in fuse_networks(other, source, tmp_path / "z")
    metadata["config"]["seed"] += 1  # another validation split, same counts
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigError, match="validation split"):
        fuse_networks(source, other, tmp_path / "y")


def test_card_command_rebuilds_the_family_head_of_plain_and_fused_bundles(tiny_bundle, tmp_path):
    """A bundle's model card must rebuild every part it ships: the shipped native detector's
    network, novelty and family head, and a fused bundle's family head after the fuse step."""
    import json
    import shutil

    from deepfake_detection.inference.detectors import BUNDLES
    from deepfake_detection.interfaces.cli import _reproduce

    family = " && deepfake-detection family-head --model runs/{} --data ../shared/data/mixed-256"
    shipped = _reproduce(BUNDLES["native"])
    assert "novelty --model runs/native_detector" in shipped
    assert shipped.endswith(family.format("native_detector"))
    fused = tmp_path / "fused"
    shutil.copytree(tiny_bundle[1], fused)
    metadata = json.loads((fused / "metadata.json").read_text())
    metadata["trace_probe"] = {"arch": "efficientnet_lite0", "weight": 0.5}
    metadata["family_head"] = {"data": "../shared/data/mixed-256"}
    (fused / "metadata.json").write_text(json.dumps(metadata))
    command = _reproduce(fused)
    assert "fuse-probe --model runs/fused-base --out runs/fused" in command
    assert command.endswith(family.format("fused"))


def test_card_says_what_is_fused_and_names_only_unseen_generators():
    """A fused bundle's card says its verdict is not the network's alone, and the examples of
    generators it never saw leave out the ones its training data held."""
    from deepfake_detection.evaluation.rendering import _limits, fused_card_lines

    probe = {"arch": "efficientnet_lite0", "weights": "imagenet", "stages": ["stage0"],
             "features": 64, "weight": 0.5, "train_images": 10}
    assert "linear probe on 64 frozen ImageNet features" in fused_card_lines(
        {"trace_probe": probe})[0]
    assert "second network (weight 0.3" in fused_card_lines({"fused_with": {"weight": 0.3}})[0]
    assert fused_card_lines({}) == []
    native = {"image_spec": {"fit": "native", "size": 256}, "config": {"weights": "imagenet"}}
    before = _limits({**native, "data": {"train_sources": {"flux": 3}}})[1]
    after = _limits({**native, "data": {"train_sources": {"flux": 3, "sd35": 2}}})[1]
    assert "Stable Diffusion 3.x" in before and "Stable Diffusion 3.x" not in after
    assert "Seedream" in after


def test_fuse_probe_with_noise_fits_noisy_copies_and_says_so(tiny_bundle, tmp_path):
    """`--noise` fits the probe on noisy copies too (the network was trained with noise): the
    probe's fit changes, and the metadata, the card and the rebuild command say so."""
    from deepfake_detection.evaluation.rendering import fused_card_lines
    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.interfaces.cli import _reproduce
    from deepfake_detection.training.config import ConfigError
    from deepfake_detection.training.trainer import fuse_probe

    plain = fuse_probe(tiny_bundle[1], tmp_path / "plain")
    noisy = fuse_probe(tiny_bundle[1], tmp_path / "noisy", noise=16)
    assert noisy["trace_probe"]["noise_max"] == 16 and plain["trace_probe"]["noise_max"] == 0
    probe = [Detector.load(tmp_path / name).model.get_layer("trace_probe_logit").get_weights()[0]
             for name in ("plain", "noisy")]
    assert not np.allclose(*probe)
    assert "Gaussian noise up to 16/255" in fused_card_lines(noisy)[0]
    assert "noise" not in fused_card_lines(plain)[0]
    assert _reproduce(tmp_path / "noisy").endswith("--weight 0.5 --noise 16")
    with pytest.raises(ConfigError, match="largest noise sigma"):
        fuse_probe(tiny_bundle[1], tmp_path / "negative", noise=-1)
    assert not (tmp_path / "negative").exists()
