from __future__ import annotations

import numpy as np
import pytest

from deepfake_detection.imaging import ImageSpec
from deepfake_detection.training import data


def test_discover_labels_by_folder(tiny_dataset):
    files = data.discover(tiny_dataset / "train")
    assert files.counts() == {"REAL": 40, "FAKE": 40}
    assert all(("/FAKE/" in p) == bool(y) for p, y in zip(files.paths, files.labels))


def test_lowercase_folders_and_non_images(tmp_path, tiny_dataset):
    split = tmp_path / "split"
    split.mkdir()
    (tiny_dataset / "test" / "REAL").rename(split / "real")
    (tiny_dataset / "test" / "FAKE").rename(split / "fake")
    (split / "fake" / "notes.txt").write_text("hello")
    files = data.discover(split)
    assert files.counts() == {"REAL": 12, "FAKE": 12}
    assert [reason for _, reason in files.rejected] == ["not an image suffix"]


def test_missing_class_folder_and_empty_class_are_clear_errors(tmp_path):
    (tmp_path / "REAL").mkdir()
    with pytest.raises(data.DataError, match="missing the FAKE/ sub-folder"):
        data.discover(tmp_path)
    (tmp_path / "FAKE").mkdir()
    with pytest.raises(data.DataError, match="no images"):
        data.discover(tmp_path)
    with pytest.raises(data.DataError, match="no such folder"):
        data.discover(tmp_path / "nowhere")


def test_screen_skips_and_reports_bad_files(tiny_dataset):
    fake = tiny_dataset / "train" / "FAKE"
    (fake / "zero.png").write_bytes(b"")
    (fake / "text.jpg").write_text("not an image")
    good = (fake / "gen_000.png").read_bytes()
    (fake / "truncated.png").write_bytes(good[: len(good) // 2])
    files = data.load_split(tiny_dataset / "train")
    assert files.counts() == {"REAL": 40, "FAKE": 40}
    assert sorted(p.rsplit("/", 1)[1] for p, _ in files.rejected) == [
        "text.jpg", "truncated.png", "zero.png"]


def test_one_readable_class_is_an_error(tiny_dataset):
    for path in (tiny_dataset / "train" / "FAKE").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(data.DataError, match="no readable FAKE"):
        data.load_split(tiny_dataset / "train")


def test_max_per_class_subsamples_each_class(tiny_dataset):
    files = data.load_split(tiny_dataset / "train", max_per_class=5, seed=1)
    assert files.counts() == {"REAL": 5, "FAKE": 5}


def test_stratified_split_is_seeded_disjoint_and_keeps_ratio():
    labels = np.array([0] * 90 + [1] * 30, dtype=np.int32)
    files = data.FileList([f"f{i}" for i in range(120)], labels)
    train, val = data.stratified_split(files, 0.2, seed=3)
    again, _ = data.stratified_split(files, 0.2, seed=3)
    other, _ = data.stratified_split(files, 0.2, seed=4)
    assert val.counts() == {"REAL": 18, "FAKE": 6}
    assert not set(train.paths) & set(val.paths)
    assert len(train.paths) + len(val.paths) == 120
    assert train.paths == again.paths and train.paths != other.paths


def test_class_weights_balance_the_loss():
    weights = data.class_weights(np.array([0, 0, 0, 1]))
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})
    assert 3 * weights[0] == pytest.approx(1 * weights[1])


def test_group_of_uses_the_file_name_prefix():
    assert data.group_of("x/REAL/cifar_cat_0001.jpg") == "cifar"
    assert data.group_of("x/FAKE/sd15_style_3.jpg") == "sd15"
    assert data.group_of("x/FAKE/plain.jpg") == "FAKE"


@pytest.mark.parametrize("cache", [False, True])
def test_dataset_yields_model_input(tiny_dataset, cache):
    files = data.discover(tiny_dataset / "test")
    training = data.Training(0, data.Augmentation(flip=True, shift=2, blur_jpeg_p=0.5))
    ds = data.make_dataset(files.paths, files.labels, ImageSpec(size=16), batch_size=10,
                           training=training, cache=cache)
    batches = list(ds)
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert images.shape == (24, 16, 16, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1
    assert sorted(labels.tolist()) == sorted(files.labels.tolist())


def test_inference_dataset_keeps_order(tiny_dataset):
    files = data.discover(tiny_dataset / "test")
    spec = ImageSpec(size=32)
    ds = data.make_dataset(files.paths, None, spec, batch_size=7)
    images = np.concatenate([x.numpy() for x in ds])
    from deepfake_detection.imaging import load_prepared

    assert np.array_equal(images[5], load_prepared(files.paths[5], spec))


def test_download_offline_gives_an_actionable_error(monkeypatch):
    import kagglehub

    def offline(handle):
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    with pytest.raises(data.DataError, match="--data DIR"):
        data.download_cifake()


def test_shift_augmentation_translates_without_inventing_content():
    """A shifted image is the original moved by at most `shift` pixels (reflect-padded edge):
    its interior matches the original at one of the allowed offsets."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (16, 16, 3)).astype(np.float32)
    fn = data.Augmentation(shift=2).image_fn()
    offsets = set()
    for i in range(30):
        out = fn(tf.constant(image), (0, i)).numpy()
        assert out.shape == image.shape
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                if np.array_equal(out[2:-2, 2:-2], image[2 + dy:14 + dy, 2 + dx:14 + dx]):
                    offsets.add((dy, dx))
                    break
    assert len(offsets) > 3  # several different translations, each an exact one


def test_blur_jpeg_augmentation_smooths_and_is_off_at_zero():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    image = tf.constant(rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    off = data.Augmentation(blur_jpeg_p=0.0).image_fn()
    np.testing.assert_array_equal(off(image, (0, 0)).numpy(), image.numpy())
    on = data.Augmentation(blur_jpeg_p=1.0, blur_sigma_max=3.0, jpeg_min=30).image_fn()
    outs = np.stack([on(image, (1, i)).numpy() for i in range(8)])
    assert outs.min() >= 0 and outs.max() <= 255
    # Blur and JPEG both remove high-frequency energy from white noise; draws differ.
    def roughness(x):
        return np.abs(np.diff(x, axis=-2)).mean()
    assert all(roughness(o) < roughness(image.numpy()) for o in outs)
    assert len({round(float(roughness(o)), 3) for o in outs}) > 1


def test_augmentation_is_a_function_of_its_seed():
    """The same seed gives the same image, whatever else ran before: no hidden generator state
    for a parallel map to hand out in thread order."""
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(2).uniform(0, 255, (16, 16, 3)), tf.float32)
    fn = data.Augmentation(flip=True, shift=2, blur_jpeg_p=0.5).image_fn()
    first = fn(image, (7, 3)).numpy()
    for i in range(5):
        fn(image, (0, i))
    np.testing.assert_array_equal(fn(image, (7, 3)).numpy(), first)
    assert len({fn(image, (7, i)).numpy().tobytes() for i in range(8)}) > 1


def test_noise_augmentation_adds_seeded_noise_up_to_its_sigma():
    import tensorflow as tf

    flat = tf.constant(np.full((64, 64, 3), 128, np.float32))
    assert np.array_equal(data.Augmentation(noise_p=0.0).image_fn()(flat, (0, 0)).numpy(),
                          flat.numpy())
    fn = data.Augmentation(noise_p=1.0, noise_max=16.0).image_fn()
    outs = [fn(flat, (3, i)).numpy() for i in range(8)]
    spreads = [float(o.std()) for o in outs]
    assert all(s <= 17 for s in spreads) and max(spreads) > 2  # sigma ~ U[0, 16]
    assert len({round(s, 2) for s in spreads}) > 1
    assert all(np.array_equal(o, np.round(o)) for o in outs)  # whole 8-bit levels
    np.testing.assert_array_equal(fn(flat, (3, 0)).numpy(), outs[0])


def test_safe_rotation_moves_pixels_without_new_values_and_blackens_corners():
    """Nearest-neighbour rotation about the centre (SAFE): every output pixel is an input
    pixel or the black fill; no angle drawn leaves the image as it was."""
    import tensorflow as tf

    image = np.random.default_rng(3).integers(1, 256, (32, 32, 3)).astype(np.float32)
    fn = data.Augmentation(rotate_p=1.0, rotate_max=180.0).image_fn()
    outs = [fn(tf.constant(image), (5, i)).numpy() for i in range(6)]
    values = set(image.ravel().tolist()) | {0.0}
    assert all(set(o.ravel().tolist()) <= values for o in outs)
    assert sum((o[0, 0] == 0).all() for o in outs) >= 3  # most angles leave a black corner
    exact = data.Augmentation(rotate_p=1.0, rotate_max=0.0).image_fn()
    np.testing.assert_array_equal(exact(tf.constant(image), (1, 1)).numpy(), image)


def test_safe_colour_jitter_changes_levels_within_range_and_is_seeded():
    import tensorflow as tf

    image = tf.constant(np.random.default_rng(4).uniform(0, 255, (16, 16, 3)), tf.float32)
    fn = data.Augmentation(color_p=1.0, color_strength=0.5).image_fn()
    outs = [fn(image, (2, i)).numpy() for i in range(6)]
    assert all(o.min() >= 0 and o.max() <= 255 for o in outs)
    assert len({round(float(o.mean()), 2) for o in outs}) == 6  # brightness drawn per seed
    np.testing.assert_array_equal(fn(image, (2, 0)).numpy(), outs[0])
    still = data.Augmentation(color_p=1.0, color_strength=0.0).image_fn()
    np.testing.assert_allclose(still(image, (2, 0)).numpy(), image.numpy(), atol=1e-3)


def test_safe_mask_blacks_out_whole_grid_cells_and_leaves_the_rest():
    import tensorflow as tf

    image = np.random.default_rng(5).integers(1, 256, (64, 48, 3)).astype(np.float32)
    fn = data.Augmentation(mask_p=1.0, mask_max=0.75, mask_patch=16).image_fn()
    shares = []
    for i in range(8):
        out = fn(tf.constant(image), (9, i)).numpy()
        black = (out == 0).all(axis=-1)
        cells = black.reshape(4, 16, 3, 16).transpose(0, 2, 1, 3).reshape(12, -1)
        assert all(c.all() or not c.any() for c in cells)  # a cell is masked whole or not
        np.testing.assert_array_equal(out[~black], image[~black])
        shares.append(black.mean())
    assert max(shares) > 0 and max(shares) <= 0.75 + 0.25 and len(set(shares)) > 1
