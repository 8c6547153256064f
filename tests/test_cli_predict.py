"""`deepfake-detection predict` end to end: output shapes, bad files, exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deepfake_detection import cli


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
