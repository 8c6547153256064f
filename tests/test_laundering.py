"""The laundering operations do what their names say, at any size, reproducibly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from deepfake_detection.evaluation import laundering

RNG = np.random.default_rng(0)
IMAGE = Image.fromarray(RNG.integers(0, 256, (120, 200, 3), dtype=np.uint8))


@pytest.mark.parametrize("chain", [*laundering.SINGLE, *laundering.CHAINS])
def test_every_listed_operation_runs_changes_the_pixels_and_has_words(chain):
    out = laundering.launder(IMAGE, chain, np.random.default_rng(0))
    assert out.mode == "RGB"
    if out.size == IMAGE.size:
        assert np.abs(np.asarray(out, np.float32) - np.asarray(IMAGE, np.float32)).mean() > 0.5
    assert laundering.describe(chain).count("->") == chain.count(">")


def test_sizes_follow_the_operation():
    def size(chain):
        return laundering.launder(IMAGE, chain, np.random.default_rng(0)).size

    assert size("resize:0.5") == (100, 60)
    assert size("screenshot:1.25") == (250, 150)
    assert size("crop:0.7") == (140, 84)
    assert size("crop:0.9>resize:0.53>jpeg:80") == (95, 57)
    assert size("jpeg:60") == IMAGE.size


def test_jpeg_is_chroma_subsampled_and_noise_is_seeded():
    saved = io.BytesIO()
    IMAGE.save(saved, "JPEG", quality=80, subsampling=2)
    assert JpegImagePlugin.get_sampling(Image.open(saved)) == 2
    reference = Image.open(io.BytesIO(saved.getvalue())).convert("RGB")
    assert np.array_equal(np.asarray(laundering.launder(IMAGE, "jpeg:80", RNG)),
                          np.asarray(reference))
    a, b, c = (laundering.launder(IMAGE, "noise:8", np.random.default_rng(s)) for s in (1, 1, 2))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    spread = np.asarray(a, np.float32) - np.asarray(IMAGE, np.float32)
    unclipped = ((np.asarray(IMAGE) > 30) & (np.asarray(IMAGE) < 225)).all(-1)
    assert 6 < spread[unclipped].std() < 10


@pytest.mark.parametrize("chain", ["blur:2", "jpeg", "jpeg:high", "crop:0.9>>jpeg:80"])
def test_unknown_or_malformed_operations_are_refused_with_the_choices(chain):
    with pytest.raises(ValueError, match="jpeg"):
        laundering.parse(chain)


def test_laundered_reads_files_and_seeds_each_image(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        IMAGE.save(paths[-1])
    first = [np.asarray(x) for x in laundering.laundered(paths, "noise:4", seed=5)]
    again = [np.asarray(x) for x in laundering.laundered(paths, "noise:4", seed=5)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])  # each image its own draw
