from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_detection.imaging import ImageError, ImageSpec, load_prepared, load_rgb, prepare


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "image, fmt",
    [
        (RGB, "JPEG"), (RGB, "PNG"), (RGB, "WEBP"), (RGB, "BMP"), (RGB, "TIFF"),
        (RGB.convert("P"), "GIF"), (RGB.convert("L"), "PNG"), (RGB.convert("RGBA"), "PNG"),
        (RGB.convert("CMYK"), "JPEG"), (RGB.convert("LA"), "PNG"),
    ],
)
def test_every_format_and_mode_becomes_uint8_rgb(image, fmt):
    rgb = load_rgb(_encode(image, fmt))
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8


def test_alpha_is_composited_on_white():
    transparent = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert (load_rgb(_encode(transparent, "PNG")) == 255).all()


def test_16bit_png_scales_full_range():
    arr = np.array([[0, 65535]], dtype=np.uint16)
    rgb = load_rgb(_encode(Image.fromarray(arr, "I;16"), "PNG"))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    assert load_rgb(_encode(image, "JPEG", exif=exif)).shape == (40, 20, 3)


@pytest.mark.parametrize(
    "payload, message",
    [(b"", "empty"), (b"hello, not an image", "not an image"),
     (_encode(RGB, "PNG")[:120], "corrupt or truncated")],
)
def test_bad_bytes_raise_clear_errors(payload, message):
    with pytest.raises(ImageError, match=message):
        load_rgb(payload)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_rgb(tmp_path / "absent.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_rgb(tmp_path / "empty.jpg")


def test_arrays_of_any_dtype():
    assert load_rgb(np.ones((5, 5), dtype=np.float32)).max() == 255  # 0..1 floats
    assert load_rgb(np.full((5, 5, 1), 65535, dtype=np.uint16)).min() == 255
    with pytest.raises(ImageError):
        load_rgb(np.zeros((5, 5, 2)))


@pytest.mark.parametrize("shape", [(1, 1), (10000, 10000), (3000, 4000)])
def test_prepare_any_size_to_model_input(shape):
    rgb = np.full((*shape, 3), 128, dtype=np.uint8)
    x = prepare(rgb, ImageSpec(size=32))
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    assert np.allclose(x, 128, atol=1)


def test_center_crop_keeps_the_middle_and_squash_keeps_everything():
    rgb = np.zeros((32, 96, 3), dtype=np.uint8)
    rgb[:, 32:64] = 255  # white centre square, black sides
    assert prepare(rgb, ImageSpec(size=32, fit="center_crop")).min() == 255
    assert prepare(rgb, ImageSpec(size=32, fit="squash")).min() < 10


def test_load_prepared_on_a_file(tmp_path):
    path = tmp_path / "x.png"
    RGB.save(path)
    assert load_prepared(path, ImageSpec(size=16)).shape == (16, 16, 3)


def test_spec_rejects_unknown_methods():
    with pytest.raises(ValueError):
        ImageSpec(resize_method="magic")
    with pytest.raises(ValueError):
        ImageSpec(fit="stretch")


def test_nan_or_infinite_pixels_are_an_error_not_a_verdict():
    import numpy as np
    import pytest

    from deepfake_detection.imaging import ImageError, load_rgb

    image = np.full((8, 8, 3), 0.5, np.float32)
    image[0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        load_rgb(image)
    image[0, 0, 0] = np.inf
    with pytest.raises(ImageError, match="infinite"):
        load_rgb(image)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with next to no data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_from_its_header():
    with pytest.raises(ImageError, match=r"too large \(289 MP; the limit is 100 MP"):
        load_rgb(_png_header(17000, 17000))  # PIL's own guard answers first (over 200 MP)
    with pytest.raises(ImageError, match=r"too large \(12000x12000, 144 MP; the limit is 100"):
        load_rgb(_png_header(12000, 12000))


@pytest.mark.parametrize("source", [None, 3.5, ["a.png"]])
def test_things_that_are_not_images_are_image_errors(source):
    with pytest.raises(ImageError, match="cannot read an image from"):
        load_rgb(source)


def test_images_without_pixels_are_image_errors():
    with pytest.raises(ImageError, match="has no pixels"):
        load_rgb(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageError, match="not an image file"):
        load_rgb(_png_header(0, 0))  # PIL does not even identify it


def _smooth(height: int = 48, width: int = 64) -> Image.Image:
    """Gradients: what lossy codecs (HEIC, AVIF, JPEG) keep nearly exactly."""
    y, x = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([x * 3, y * 4, x + y], -1).astype(np.uint8))


def _sideways(image: Image.Image, fmt: str) -> bytes:
    """`image` stored turned a quarter turn, with EXIF orientation 6 to turn it back, as a
    phone held upright writes it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(image.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes(),
                   quality=95)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_and_browser_formats_are_read(fmt):
    """HEIC/HEIF (iPhones; through pillow-heif) and AVIF (browsers): the same picture as a
    lossless copy, within codec loss."""
    image = _smooth()
    rgb = load_rgb(_encode(image, fmt, quality=95))
    assert rgb.shape == (48, 64, 3)
    assert np.abs(rgb.astype(int) - np.asarray(image, int)).mean() < 4


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "JPEG", "PNG"])
def test_exif_orientation_is_applied_once_in_every_format(fmt):
    """Whatever the container, a sideways-stored picture comes out upright, never turned
    twice (libheif rotates HEIC itself and resets the tag)."""
    image = _smooth()
    rgb = load_rgb(_sideways(image, fmt))
    assert rgb.shape == (48, 64, 3)
    assert np.abs(rgb.astype(int) - np.asarray(image, int)).mean() < 4


def test_animated_images_give_their_first_frame():
    first, second = Image.new("RGB", (16, 16), (250, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 250))
    for fmt in ("GIF", "WEBP"):
        buffer = io.BytesIO()
        first.save(buffer, fmt, save_all=True, append_images=[second], lossless=True)
        rgb = load_rgb(buffer.getvalue())
        assert rgb[..., 0].mean() > 200 and rgb[..., 2].mean() < 50, fmt


def test_a_bomb_between_the_limit_and_pillows_guard_is_one_clear_error(recwarn):
    """Between MAX_PIXELS and twice that Pillow only warns (two lines on stderr); the error
    says it all and no warning escapes."""
    with pytest.raises(ImageError, match=r"too large \(10500x10500"):
        load_rgb(_png_header(10500, 10500))
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_folder_scan_picks_up_every_format_a_file_is_read_in(tmp_path):
    from collections import Counter

    from deepfake_detection.imaging import IMAGE_SUFFIXES, iter_image_files

    for suffix in (".heic", ".HEIF", ".avif", ".jpg", ".png", ".tif", ".webp", ".gif", ".bmp"):
        (tmp_path / f"a{suffix}").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "README").write_text("x")
    skipped: Counter[str] = Counter()
    found = list(iter_image_files([tmp_path], skipped=skipped))
    assert len(found) == 9 and {".heic", ".heif", ".avif"} <= set(IMAGE_SUFFIXES)
    assert skipped == {".txt": 1, "(none)": 1}
