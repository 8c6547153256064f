"""`deepfake-detection predict` end to end: output shapes, bad files, exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deepfake_detection.interfaces import cli


@pytest.fixture
def folder(tiny_bundle, tmp_path):
    import shutil

    root = tmp_path / "imgs"
    shutil.copytree(tiny_bundle[0] / "data" / "test", root)
    return root


def test_json_for_a_folder_recursively(tiny_bundle, folder, tmp_path):
    out = tmp_path / "r.json"
    code = cli.main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--json",
                     "-o", str(out)])
    rows = json.loads(out.read_text())
    assert code == 0 and len(rows) == 24
    assert set(rows[0]) >= {"source", "verdict", "label", "prob_fake", "threshold", "warnings",
                            "error"}
    assert all(r["error"] is None and 0 <= r["prob_fake"] <= 1 for r in rows)


def test_bad_files_are_reported_skipped_and_set_the_exit_code(tiny_bundle, folder, capsys):
    (folder / "FAKE" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "REAL" / "empty.jpg").write_bytes(b"")
    code = cli.main(["predict", str(folder), str(folder / "missing.png"), "--model",
                     str(tiny_bundle[1]), "--json"])
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert code == 1 and len(rows) == 26
    errors = {r["source"].rsplit("/", 1)[1]: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"broken.png", "empty.jpg"}
    assert "missing.png: no such file" in captured.err
    assert "24 scored" in captured.err and "3 failed" in captured.err


def test_table_and_csv_and_globs(tiny_bundle, folder, capsys):
    assert cli.main(["predict", str(folder / "REAL" / "*.png"), "--model",
                     str(tiny_bundle[1])]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["image", "verdict", "P(fake)"] and len(table) == 13
    words = ("AI", "uncertain", "no sign of AI")  # people's words; records keep real/fake
    assert all(row.split("  ")[1].strip() in words for row in table[1:])
    assert cli.main(["predict", str(folder / "FAKE"), "--model", str(tiny_bundle[1]),
                     "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 12 and rows[0]["verdict"] in ("real", "uncertain", "fake")


def test_nothing_to_score_is_a_usage_error(tiny_bundle, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "nope"), "--model", str(tiny_bundle[1])]) == 2
    assert "no images to score" in capsys.readouterr().err


def test_tiles_option(tiny_bundle, folder, capsys):
    assert cli.main(["predict", str(folder / "FAKE" / "gen_000.png"), "--tiles", "2",
                     "--model", str(tiny_bundle[1]), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["tiles"]) == 4


@pytest.mark.parametrize("fmt", ["--jsonl", "--csv"])
def test_streamed_output_resumes_after_an_interrupted_run(tiny_bundle, folder, tmp_path, fmt,
                                                          capsys):
    """A run killed part-way (10 rows and a torn line written) resumes: the torn line is
    dropped, the 10 are skipped, the rest appended; the result equals one uninterrupted run."""
    model = str(tiny_bundle[1])

    def read(path):
        text = path.read_text()
        if fmt == "--csv":
            return [dict(r) for r in csv.DictReader(io.StringIO(text))]
        return [json.loads(line) for line in text.splitlines()]

    full = tmp_path / f"full{fmt[2:]}"
    assert cli.main(["predict", str(folder), "--model", model, fmt, "-o", str(full)]) == 0
    rows = read(full)
    assert len(rows) == 24
    lines = full.read_text().splitlines(keepends=True)
    keep = 11 if fmt == "--csv" else 10  # CSV keeps its header line too
    part = tmp_path / f"part{fmt[2:]}"
    part.write_text("".join(lines[:keep]) + lines[keep][:7])
    capsys.readouterr()
    code = cli.main(["predict", str(folder), "--model", model, fmt, "-o", str(part),
                     "--resume"])
    assert code == 0 and "10 skipped" in capsys.readouterr().err
    resumed = read(part)
    assert len(resumed) == 24
    by_source = {r["source"]: r for r in rows}
    assert {r["source"] for r in resumed} == set(by_source)
    for r in resumed:
        assert float(r["prob_fake"]) == pytest.approx(float(by_source[r["source"]]["prob_fake"]))
    assert cli.main(["predict", str(folder), "--model", model, fmt, "-o", str(part),
                     "--resume"]) == 0
    assert "nothing left to score" in capsys.readouterr().err


def test_resume_needs_a_streamed_output_file(tiny_bundle, folder, capsys):
    assert cli.main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--resume"]) == 2
    assert "--resume needs --output" in capsys.readouterr().err


def test_folders_are_walked_lazily_in_a_stable_order(tmp_path):
    from deepfake_detection.interfaces.prediction_io import iter_inputs

    for sub in ("b", "a/c", "a"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        for name in ("2.png", "1.jpg", "notes.txt"):
            (tmp_path / sub / name).write_bytes(b"x")
    stream = iter_inputs([str(tmp_path)])
    assert next(stream).endswith("a/1.jpg")  # a generator: nothing else walked yet
    unmatched: list[str] = []
    files = list(iter_inputs([str(tmp_path), str(tmp_path / "nope")], unmatched))
    names = [f[len(str(tmp_path)) + 1:] for f in files]
    assert names == ["a/1.jpg", "a/2.png", "a/c/1.jpg", "a/c/2.png", "b/1.jpg", "b/2.png"]
    assert unmatched == [str(tmp_path / "nope")]


@pytest.mark.parametrize("option", [["--uncertain-margin", "-1"], ["--uncertain-margin", "5"],
                                    ["--batch-size", "0"], ["--tiles", "-2"],
                                    ["--tiles", "5000"], ["--uncertain-margin", "nan"]])
def test_nonsense_numbers_are_usage_errors_before_any_work(option, capsys):
    from deepfake_detection.interfaces.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "anything.jpg", *option])
    assert exit_info.value.code == 2 and "out of range" in capsys.readouterr().err


def _battery(folder, pixels):
    """One picture in every format the battery names. Lossless copies hold the very same
    pixels; lossy ones (HEIC, AVIF, JPEG) are near them."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, turned upright on reading
    same = {
        "plain.png": lambda p: image.save(p),
        "sideways.png": lambda p: image.transpose(Image.Transpose.ROTATE_90).save(
            p, exif=exif.tobytes()),
        "deep.png": lambda p: Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257,
                                              "I;16").save(p),
        "grey.tiff": lambda p: image.convert("L").save(p),
        "alpha.png": lambda p: image.convert("RGBA").save(p),
        "anim.gif": lambda p: image.save(p, save_all=True, append_images=[image.rotate(90)]),
        "anim.webp": lambda p: image.save(p, save_all=True, append_images=[image.rotate(90)],
                                          lossless=True),
        "lossless.tif": lambda p: image.save(p),
    }
    near = {
        "phone.heic": lambda p: image.save(p, "HEIF", quality=95),
        "browser.avif": lambda p: image.save(p, quality=95),
        "sideways.jpg": lambda p: image.transpose(Image.Transpose.ROTATE_90).save(
            p, exif=exif.tobytes(), quality=95),
        "progressive.jpg": lambda p: image.save(p, progressive=True, quality=95),
        "cmyk.jpg": lambda p: image.convert("CMYK").save(p, quality=95),
    }
    for name, save in {**same, **near}.items():
        save(folder / name)
    return same, near


def test_every_format_of_the_battery_is_scored_and_same_pixels_same_answer(tiny_bundle,
                                                                          tmp_path, capsys):
    """The formats battery in one folder scan: every file scored (the folder picks up each
    format a single file is read in), and the lossless copies of one picture, however stored
    (sideways EXIF-6, 16 bit, alpha, animated), give one probability."""
    import numpy as np

    folder = tmp_path / "battery"
    folder.mkdir()
    grey = np.repeat(np.linspace(30, 220, 32 * 32).reshape(32, 32, 1), 3, -1).astype(np.uint8)
    same, near = _battery(folder, grey)
    assert cli.main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--json"]) == 0
    rows = {r["source"].rsplit("/", 1)[1]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(same) | set(near) and not any(r["error"] for r in rows.values())
    probs = [rows[name]["prob_fake"] for name in same]
    assert max(probs) - min(probs) < 1e-6, dict(zip(same, probs))


def test_error_rows_do_not_repeat_the_path_and_the_summary_names_what_was_skipped(
        tiny_bundle, folder, capsys):
    (folder / "REAL" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("not an image")
    (folder / "list.csv").write_text("a,b")
    assert cli.main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--json"]) == 1
    captured = capsys.readouterr()
    broken = [r for r in json.loads(captured.out) if r["error"]]
    assert len(broken) == 1 and broken[0]["error"] == "not an image file PIL can read"
    assert "broken.jpg" not in broken[0]["error"] and broken[0]["source"].endswith("broken.jpg")
    assert "skipped 2 files that are not an image: .csv 1, .txt 1" in captured.err
    assert "24 scored" in captured.err and "1 failed" in captured.err


def test_nothing_scored_gives_no_rate(tiny_bundle, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    other = tmp_path / "bad2.png"
    other.write_bytes(b"junk")
    assert cli.main(["predict", str(bad), str(other), "--model", str(tiny_bundle[1])]) == 1
    err = capsys.readouterr().err
    assert "0 scored" in err and "2 failed" in err and "images/s" not in err


def test_an_unknown_model_is_answered_before_tensorflow_loads(tmp_path):
    """`--model nativ`: the valid names and the nearest one, in a fresh process that never
    imported TensorFlow (the answer costs no start-up)."""
    import subprocess
    import sys

    code = ("import sys; from deepfake_detection.interfaces import cli; "
            "rc = cli.main(['predict', 'x.jpg', '--model', 'nativ']); "
            "print('tensorflow' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and done.stdout.strip() == "False"
    assert "did you mean native?" in done.stderr and "auto, cifake, native, robust" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_evaluate_counts_the_verdicts_predict_gives(tiny_bundle, tmp_path, capsys):
    """`evaluate` on a folder counts real / uncertain / fake per source exactly as `predict`
    says them for the same images, and lists every image in predictions.csv."""
    from collections import Counter

    from deepfake_detection.training.data import group_of

    root, bundle_dir = tiny_bundle
    out = tmp_path / "report"
    assert cli.main(["predict", str(root / "data" / "test"), "--model", str(bundle_dir),
                     "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert cli.main(["evaluate", "--model", str(bundle_dir), "--data", str(root / "data"),
                     "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    expected: dict[str, Counter] = {}
    for row in said:
        expected.setdefault(group_of(row["source"]), Counter())[row["verdict"]] += 1
    for group, row in report["clean"]["per_group"].items():
        assert {k: v for k, v in row["verdicts"].items() if v} == dict(expected[group]), group
    rows = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text())))
    assert len(rows) == 24 and sorted(r["verdict"] for r in rows) == sorted(
        r["verdict"] for r in said)
    low, high = report["clean"]["intervals"]["roc_auc"]
    assert low <= report["clean"]["roc_auc"] <= high
    strict = report["operating_points"]["strict"]
    meta = json.loads((bundle_dir / "metadata.json").read_text())
    # the threshold predict uses at the strict point: never below the balanced one
    assert strict["threshold"] == max(meta["operating_points"]["strict"]["value"],
                                      meta["threshold"]["value"])
    reals = [r["prob_fake"] for r in said if "/REAL/" in r["source"]]
    assert strict["reals_called_fake"] == sum(p >= strict["threshold"] for p in reals) / 12
    text = (out / "report.md").read_text()
    assert "95% intervals" in text and "Small sample" in text  # 12 images a class
    assert "| strict | " in text
    for plot in ("roc.png", "pr_curve.png", "scores.png", "per_source.png",
                 "confusion_matrix.png", "reliability.png", "training_curves.png"):
        assert (out / plot).is_file(), plot


def test_a_report_on_your_folder_holds_only_your_data(tiny_bundle, tmp_path):
    """Evaluating someone's own folder: no training curves of the shipped bundle in it."""
    import shutil

    root, bundle_dir = tiny_bundle
    mine = tmp_path / "mine"
    shutil.copytree(root / "data" / "test", mine / "test")
    assert cli.main(["evaluate", "--model", str(bundle_dir), "--data", str(mine), "--out",
                     str(tmp_path / "report")]) == 0
    assert not (tmp_path / "report" / "training_curves.png").exists()
    assert (tmp_path / "report" / "per_source.png").is_file()


def test_evaluate_defaults_to_the_detector_predict_would_use(tiny_dataset, tmp_path, capsys):
    """No --model: `auto`, resolved to the one shipped detector it picks for every image
    (32x32 images: cifake), named on stderr; a folder it would split is refused, naming both."""
    from PIL import Image

    assert cli.main(["evaluate", "--data", str(tiny_dataset), "--out",
                     str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert "auto: the cifake detector answers for all 24 images" in err
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["model"]["image_spec"]["size"] == 32
    Image.new("RGB", (300, 300), (90, 120, 150)).save(tiny_dataset / "test" / "REAL" / "big.png")
    assert cli.main(["evaluate", "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "would split this folder between detectors" in err and "native for 1" in err


def test_the_strict_operating_point_is_in_every_record(tiny_bundle, folder, tmp_path, capsys):
    out = tmp_path / "strict.csv"
    assert cli.main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--csv", "-o",
                     str(out), "--operating-point", "strict"]) == 0
    assert "AI, strict: AI only where <= 1% of validation reals" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    meta = json.loads((tiny_bundle[1] / "metadata.json").read_text())
    strict = max(meta["operating_points"]["strict"]["value"], meta["threshold"]["value"])
    assert len(rows) == 24 and {r["operating_point"] for r in rows} == {"strict"}
    assert {float(r["threshold"]) for r in rows} == {strict}
    with pytest.raises(SystemExit):
        cli.main(["predict", str(folder), "--operating-point", "lenient"])
