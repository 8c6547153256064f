"""The NPR branch sees x - up(down(x)) and nothing else of the content."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from deepfake_detection.models import ModelError, build_model, set_base_trainable


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model("efficientnet_lite0_npr", image_size=32, weights="none")


def test_residual_is_the_image_minus_its_nearest_down_up_copy(model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    residual = np.asarray(keras.Model(model.input, model.get_layer("head_npr_residual").output)(x))
    full = x - np.repeat(np.repeat(x[:, ::2, ::2], 2, 1), 2, 2)
    for colour in range(3):
        for k, (row, col) in enumerate([(0, 1), (1, 0), (1, 1)]):
            np.testing.assert_allclose(residual[..., 3 * colour + k],
                                       full[:, row::2, col::2, colour], atol=1e-3)


def test_flat_blocks_reach_the_branch_as_zero_whatever_the_content(model):
    """An image made of 2x2 constant blocks (an exact nearest upsample) has no residual."""
    small = np.random.default_rng(1).uniform(0, 255, (1, 16, 16, 3)).astype("float32")
    blocky = np.repeat(np.repeat(small, 2, 1), 2, 2)
    branch = keras.Model(model.input, model.get_layer("head_npr_residual").output)
    assert float(np.abs(branch(blocky)).max()) == 0.0
    noisy = blocky + np.random.default_rng(2).normal(0, 4, blocky.shape).astype("float32")
    assert float(np.abs(branch(noisy)).max()) > 1.0


def test_residual_stays_fixed_while_the_branch_trains(model):
    set_base_trainable(model, False)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "head_npr_conv0" in trainable and "head_npr_residual" not in trainable
    set_base_trainable(model, True)


def test_odd_sizes_are_refused():
    with pytest.raises(ModelError, match="divisible by 2"):
        build_model("efficientnet_lite0_npr", image_size=33)
