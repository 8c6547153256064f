from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from deepfake_detection.imaging import ImageError
from deepfake_detection.inference.bundle import BundleError
from deepfake_detection.inference.detector import DEFAULT_BUNDLE, Detector
from deepfake_detection.inference.explain import gradcam, overlay


@pytest.fixture(scope="module")
def detector(tiny_bundle):
    return Detector.load(tiny_bundle[1])


def _file(tmp_path, image: Image.Image, name: str, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


def test_formats_modes_and_sizes_all_score(detector, tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8))
    sources = [
        _file(tmp_path, rgb, "a.jpg"), _file(tmp_path, rgb.convert("RGBA"), "b.png"),
        _file(tmp_path, rgb.convert("L"), "c.png"), _file(tmp_path, rgb.convert("CMYK"), "d.jpg"),
        _file(tmp_path, rgb, "e.webp"), _file(tmp_path, rgb, "f.bmp"),
        _file(tmp_path, rgb.convert("P"), "g.gif"), _file(tmp_path, rgb, "h.tiff"),
        _file(tmp_path, Image.fromarray(np.full((8, 8), 40000, np.uint16), "I;16"), "i.png"),
        _file(tmp_path, Image.new("RGB", (1, 1), "red"), "one.png"),
        rgb, np.asarray(rgb), _encode(rgb),
    ]
    for source in sources:
        result = detector.predict(source)
        assert 0.0 <= result.prob_fake <= 1.0 and result.verdict in ("real", "uncertain", "fake")
        assert result.label == ("FAKE" if result.prob_fake >= detector.threshold else "REAL")


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_huge_and_tiny_images_warn_and_get_no_verdict(detector, tmp_path):
    """Where the detector itself says its result is unreliable, it gives no verdict either:
    `uncertain`, with the probability still reported."""
    huge = detector.predict(_file(tmp_path, Image.new("RGB", (10000, 10000), (90, 120, 150)),
                                  "huge.png"))
    tiny = detector.predict(Image.new("RGB", (1, 1)))
    assert any("shrunk 312x" in w for w in huge.warnings)
    assert any("enlarged 32x" in w for w in tiny.warnings)
    assert huge.verdict == tiny.verdict == "uncertain" and 0 <= huge.prob_fake <= 1
    wide = detector.predict(Image.new("RGB", (64, 32)))
    assert any("centre 32px square" in w for w in wide.warnings)


def test_truncated_file_raises_a_clear_error(detector, tmp_path):
    path = tmp_path / "t.jpg"
    path.write_bytes(_encode(Image.new("RGB", (64, 64)))[:60])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        detector.predict(path)


def test_predict_many_keeps_order_and_reports_bad_files(detector, tiny_bundle, tmp_path):
    good = sorted(str(p) for p in (tiny_bundle[0] / "data" / "test" / "FAKE").iterdir())[:3]
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    results = list(detector.predict_many([good[0], str(bad), *good[1:]], batch_size=2))
    assert [r.source for r in results] == [good[0], str(bad), *good[1:]]
    assert results[1].error and np.isnan(results[1].prob_fake)
    assert json.loads(json.dumps(results[1].to_dict()))["prob_fake"] is None
    single = detector.predict(good[1]).prob_fake
    assert results[2].prob_fake == pytest.approx(single, abs=1e-6)


def test_verdict_band_is_centred_on_the_threshold(detector):
    t, m = detector.threshold, detector.uncertain_margin
    assert detector.verdict(min(1.0, t + m + 1e-6)) in ("fake", "uncertain")
    assert detector.verdict(t) == "uncertain"
    low = min(t - m, 0.5)  # below 50% at the most: the one rule
    assert detector.verdict(max(0.0, low - 1e-3)) == "real" or low <= 0


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.64, 0.9])
@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_a_verdict_never_contradicts_its_probability(detector, threshold, margin):
    """The one rule: 50% and more is never `real`, under 50% never `fake`, whatever the
    threshold (64% was the native one: 73% AI was 'uncertain' and 44% 'real' before)."""
    saved = detector.threshold, detector.uncertain_margin
    detector.threshold, detector.uncertain_margin = threshold, margin
    try:
        probs = np.linspace(0, 1, 1001)
        verdicts = [detector.verdict(p) for p in probs]
        assert not any(v == "real" for p, v in zip(probs, verdicts) if p >= 0.5)
        assert not any(v == "fake" for p, v in zip(probs, verdicts) if p < 0.5)
        assert verdicts[0] == "real" or threshold - margin <= 0
        assert verdicts[-1] == "fake"
    finally:
        detector.threshold, detector.uncertain_margin = saved


def test_temperature_changes_probabilities_not_ranking(tiny_bundle):
    a = Detector.load(tiny_bundle[1])
    b = Detector.load(tiny_bundle[1])
    a.temperature, b.temperature = 1.0, 2.0
    x = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    pa, pb = a.probabilities(x), b.probabilities(x)
    assert np.array_equal(np.argsort(pa), np.argsort(pb))
    assert np.all(np.abs(pb - 0.5) <= np.abs(pa - 0.5) + 1e-12)


def test_gradcam_is_a_normalised_map_for_the_verdict(detector, tiny_bundle):
    path = sorted((tiny_bundle[0] / "data" / "test" / "FAKE").iterdir())[0]
    cam, result, image = gradcam(detector, path)
    assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert result.prob_fake == pytest.approx(detector.predict(path).prob_fake, abs=1e-5)
    np.testing.assert_array_equal(image, detector.prepare(path)[0])
    shown = overlay(image, cam)
    assert shown.size == (256, 256) and shown.mode == "RGB"


def test_tiles_score_each_part(detector):
    image = np.zeros((64, 64, 3), np.uint8)
    image[32:, 32:] = 255
    result = detector.predict_tiles(image, grid=2)
    assert len(result.tiles) == 4
    expected = np.mean([detector.predict(image).prob_fake, *result.tiles])
    assert result.prob_fake == pytest.approx(expected, abs=1e-6)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="no such model bundle"):
        Detector.load(tmp_path / "none")


def test_the_bundled_detector_loads():
    if not DEFAULT_BUNDLE.exists():
        pytest.fail(f"the repository should ship a detector at {DEFAULT_BUNDLE}")
    detector = Detector.load()
    assert detector.spec.size == 32 and 0 < detector.threshold < 1
    assert detector.temperature != 1.0  # calibrated on its validation split
    assert (DEFAULT_BUNDLE / "model_card.md").is_file()


def test_none_in_a_batch_is_an_error_record_not_an_abort(detector, tiny_bundle):
    good = sorted(str(p) for p in (tiny_bundle[0] / "data" / "test" / "FAKE").iterdir())[0]
    with pytest.raises(ImageError, match="cannot read an image from NoneType"):
        detector.predict(None)
    results = list(detector.predict_many([None, good]))
    assert "NoneType" in results[0].error and results[1].error is None


def test_predict_many_and_check_take_a_folder_or_a_glob(tiny_bundle, tmp_path):
    """`Detector.predict_many(folder)` and `dfd.check(folder or glob)` yield one record per
    image, as they go; a folder that does not exist is a clear error, not 'no such file' for
    each of its letters."""
    import deepfake_detection as dfd
    from deepfake_detection.imaging import ImageError

    root, bundle_dir = tiny_bundle
    test = root / "data" / "test"
    detector = Detector.load(bundle_dir)
    records = detector.predict_many(test)
    first = next(records)
    assert first.error is None and first.source.endswith(".png")
    assert 1 + sum(1 for _ in records) == 24
    expected = {r.source: r.prob_fake for r in detector.predict_many(
        sorted(str(p) for p in (test / "FAKE").iterdir()))}
    checked = list(dfd.check(str(test / "FAKE" / "*.png"), model=bundle_dir))
    assert {r.source: r.prob_fake for r in checked} == pytest.approx(expected)
    assert all(r.provenance is not None for r in checked)
    one = dfd.check(str(test / "FAKE" / "gen_000.png"), model=bundle_dir)
    assert one.prob_fake == pytest.approx(expected[str(test / "FAKE" / "gen_000.png")])
    with pytest.raises(ImageError, match="no such file, folder or match"):
        list(detector.predict_many(tmp_path / "missing"))


def test_a_stream_yields_its_first_records_after_a_few_images():
    from deepfake_detection.inference.detector import chunked

    assert [len(c) for c in chunked(range(70), 32)] == [4, 32, 32, 2]
    assert [len(c) for c in chunked(range(3), 2)] == [2, 1]
    assert list(chunked([], 8)) == []


def test_crops_that_disagree_withhold_a_real_verdict(tiny_bundle):
    """A native detector's `real` verdict (mean of its crops) becomes `uncertain` when one crop
    is strongly AI: part of the picture may be generated; all-real crops stay `real`."""
    import dataclasses

    detector = Detector.load(tiny_bundle[1])
    detector.spec = dataclasses.replace(detector.spec, fit="native")
    boxes = [[0, 0, 32, 32]] * 9
    nan = np.full(9, np.nan)
    calm = detector._aggregate("x", np.full(9, -8.0), nan, None, boxes, [])
    one_loud = detector._aggregate("x", np.array([-8.0] * 8 + [8.0]), nan, None, boxes, [])
    assert calm.verdict == "real" and one_loud.prob_fake < 0.5
    assert one_loud.verdict == "uncertain" and "the crops disagree" in one_loud.warnings[-1]


def test_the_evidence_map_keeps_the_picture_and_colours_crops_by_the_verdict_band():
    """Crops outlined in the colour of the verdict their own score would get, the picture only
    lightly tinted inside them, and a legend strip below with the band and the coverage."""
    from deepfake_detection.inference.explain import BAND_COLOURS, regions_overlay

    rgb = np.full((1200, 1600, 3), 128, np.uint8)
    probs = [0.2, 0.6, 0.9]
    regions = [{"box": [i * 600, 300, i * 600 + 256, 556], "prob_fake": p}
               for i, p in enumerate(probs)]
    shown = np.asarray(regions_overlay(rgb, regions, (0.5, 0.74)))
    scale = 768 / 1600
    assert shown.shape[1] == 768 and shown.shape[0] > round(1200 * scale)  # + the legend
    for region, colour in zip(regions, BAND_COLOURS[::-1]):
        left, top, right, bottom = (round(v * scale) for v in region["box"])
        inside = shown[(top + bottom) // 2 + 10, (left + right) // 2].astype(int)
        assert np.abs(inside - 128).max() < 40  # tinted, not washed out
        edge = shown[(top + bottom) // 2, left].astype(int)
        assert np.abs(edge - np.array(colour)).max() < 30  # the band's colour


def test_the_strict_operating_point_only_raises_the_ai_limit(detector, tiny_bundle):
    strict = detector.at("strict")
    point = detector.metadata["operating_points"]["strict"]
    assert strict.model is detector.model
    assert strict.threshold == max(point["value"], detector.threshold)  # never below balanced
    assert point["reals_called_fake"] <= 0.01 and "validation REAL" in point["rule"]
    assert strict.band == (detector.band[0], max(detector.band[1], point["value"]))
    paths = sorted((tiny_bundle[0] / "data" / "test").rglob("*.png"))
    pairs = list(zip(detector.predict_many(paths), strict.predict_many(paths)))
    for balanced, careful in pairs:
        assert careful.operating_point == "strict" and careful.threshold == strict.threshold
        assert careful.prob_fake == balanced.prob_fake
        assert (careful.verdict == "fake") == (careful.prob_fake >= strict.band[1])
        assert careful.verdict != "fake" or balanced.verdict == "fake"
        assert (careful.verdict == "real") == (balanced.verdict == "real")


def test_a_bundle_without_the_strict_point_says_how_to_add_it(tiny_bundle, tmp_path):
    import shutil

    from deepfake_detection.interfaces import cli

    copy = tmp_path / "old"
    shutil.copytree(tiny_bundle[1], copy)
    meta = json.loads((copy / "metadata.json").read_text())
    trained = meta.pop("operating_points")["strict"]
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="deepfake-detection operating-points --model"):
        Detector.load(copy, operating_point="strict")
    with pytest.raises(BundleError, match="unknown operating point 'lenient'"):
        Detector.load(copy, operating_point="lenient")
    assert cli.main(["operating-points", "--model", str(copy)]) == 0
    added = json.loads((copy / "metadata.json").read_text())["operating_points"]["strict"]
    assert added["value"] == pytest.approx(trained["value"], abs=1e-6)


@pytest.mark.parametrize("name", ["cifake", "native", "robust"])
def test_every_shipped_detector_has_a_strict_point_above_its_threshold(name):
    from deepfake_detection.inference.shipped import BUNDLES

    meta = json.loads((BUNDLES[name] / "metadata.json").read_text())
    strict = meta["operating_points"]["strict"]
    assert meta["threshold"]["value"] < strict["value"] < 1
    assert strict["reals_called_fake"] <= 0.01
