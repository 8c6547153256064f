from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection import models
from deepfake_detection.models import (
    ModelError,
    build_model,
    feature_layer_name,
    list_models,
    set_base_trainable,
)


@pytest.fixture(scope="module", params=list_models())
def model(request):
    keras.utils.set_random_seed(0)
    return build_model(request.param, image_size=32, weights="none")


def test_registry_has_the_reference_design():
    assert "efficientnet_b2" in list_models() and len(list_models()) >= 2


def test_forward_maps_pixels_to_one_unbounded_logit(model):
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    out = np.asarray(model(x, training=False))
    assert out.shape == (4, 1) and np.isfinite(out).all()
    assert model.get_layer("head_logit").activation is keras.activations.linear


def test_backward_reaches_the_input_and_every_trainable_weight(model):
    x = tf.constant(np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(model(x, training=True))
    grads = tape.gradient(loss, [x, *model.trainable_weights])
    assert float(tf.reduce_max(tf.abs(grads[0]))) > 0
    assert all(g is not None for g in grads[1:])


def test_save_load_round_trip(model, tmp_path):
    x = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=1e-5)


def test_freezing_leaves_only_the_head_trainable(model):
    set_base_trainable(model, False)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "head_logit" in trainable and all(n.startswith("head_") for n in trainable)
    set_base_trainable(model, True)
    assert len(model.trainable_weights) > 2
    unfrozen = len(model.trainable_weights)
    set_base_trainable(model, True, freeze_batchnorm=True)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
             and not layer.name.startswith("head_")]
    assert norms and not any(layer.trainable for layer in norms)
    assert 2 < len(model.trainable_weights) < unfrozen
    set_base_trainable(model, True)


def test_feature_layer_is_the_last_spatial_map(model):
    layer = model.get_layer(feature_layer_name(model))
    assert len(layer.output.shape) == 4 and layer.output.shape[1] >= 1


def test_unknown_architecture_and_bad_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown architecture"):
        build_model("vgg99")
    with pytest.raises(ModelError, match="not 'imagenet', 'none' or an existing file"):
        build_model("efficientnet_b2", weights=str(tmp_path / "absent.h5"))


def test_offline_imagenet_weights_say_what_to_do(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.setattr(keras.applications, "EfficientNetB2", offline)
    with pytest.raises(ModelError, match="--weights none"):
        models.build_model("efficientnet_b2", weights="imagenet")


def test_space_to_depth_stem_is_lossless_and_saves_as_h5(tmp_path):
    """The resnet_s2d stem is exactly tf.nn.space_to_depth, built from standard layers so the
    legacy .h5 export (models/final_model.h5) loads without custom objects."""
    model = build_model("resnet_s2d", image_size=32)
    x = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem_unshuffle").output)
    expected = tf.nn.space_to_depth(x / 127.5 - 1.0, 2)
    np.testing.assert_allclose(stem(x), expected, atol=1e-6)
    model.save(tmp_path / "m.h5")
    again = keras.models.load_model(tmp_path / "m.h5", compile=False)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=1e-5)
    with pytest.raises(ModelError, match="even"):
        build_model("resnet_s2d", image_size=33)


@pytest.mark.parametrize("factor", [2, 4])
def test_pooled_variants_are_the_network_on_a_lower_resolution_image(factor):
    """`efficientnet_lite0_poolN` with another model's weights scores an image exactly as that
    model scores the image's NxN block means (32 px): the pooling is the only change."""
    keras.utils.set_random_seed(0)
    size = 32 * factor
    plain = build_model("efficientnet_lite0", image_size=32, weights="none")
    pooled = build_model(f"efficientnet_lite0_pool{factor}", image_size=size, weights="none")
    pooled.set_weights(plain.get_weights())
    x = np.random.default_rng(3).uniform(0, 255, (2, size, size, 3)).astype("float32")
    means = x.reshape(2, 32, factor, 32, factor, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled(x, training=False), plain(means, training=False),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError, match=f"divisible by {factor}"):
        build_model(f"efficientnet_lite0_pool{factor}", image_size=size + factor // 2)


def test_local_residuals_drop_content_and_keep_pixel_relations():
    """The median residual is 0 on flat and linear areas and keeps an isolated spike; NPR's is 0
    on a nearest-neighbour 2x upsampled image (a generator's copy of a block) and not on a
    camera-like one."""
    from deepfake_detection.layers import LocalResidual

    ramp = np.tile(np.arange(16, dtype="float32")[None, :, None] * 8, (16, 1, 3))[None]
    median = LocalResidual("median")
    assert np.abs(np.asarray(median(ramp))[:, 1:-1, 1:-1]).max() < 1e-4
    spike = np.full((1, 9, 9, 3), 50, "float32")
    spike[0, 4, 4] = 200
    assert np.asarray(median(spike))[0, 4, 4, 0] == pytest.approx(150)
    small = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype("float32")
    upsampled = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    npr = LocalResidual("npr")
    assert np.abs(np.asarray(npr(upsampled))).max() == 0
    assert np.abs(np.asarray(npr(small))).max() > 10
    with pytest.raises(ValueError, match="unknown residual"):
        LocalResidual("sobel")
