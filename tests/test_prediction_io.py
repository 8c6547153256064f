"""Nothing lost: predict/scan/train outputs never destroy inputs or earlier results, and
`--resume` refuses what it cannot read instead of deleting it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_detection.interfaces import cli
from deepfake_detection.training.config import ConfigError, TrainConfig, fast_phases


@pytest.fixture
def folder(tiny_bundle, tmp_path):
    root = tmp_path / "imgs"
    shutil.copytree(tiny_bundle[0] / "data" / "test", root)
    return root


def predict(tiny_bundle, *args: str) -> int:
    return cli.main(["predict", *args, "--model", str(tiny_bundle[1])])


def test_an_existing_output_is_replaced_only_with_force(tiny_bundle, folder, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    out.write_text("keep me\n")
    assert predict(tiny_bundle, str(folder), "--jsonl", "-o", str(out)) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert predict(tiny_bundle, str(folder), "--jsonl", "-o", str(out), "--force") == 0
    assert len(out.read_text().splitlines()) == 24


@pytest.mark.parametrize("spelling", ["file", "folder", "glob"])
def test_the_output_is_never_one_of_the_inputs(tiny_bundle, folder, capsys, spelling):
    image = folder / "REAL" / sorted(os.listdir(folder / "REAL"))[0]
    before = image.read_bytes()
    item = {"file": str(image), "folder": str(folder), "glob": str(folder / "*" / "*.png")}
    assert predict(tiny_bundle, item[spelling], "--jsonl", "-o", str(image), "--force") == 2
    assert "is one of the input images" in capsys.readouterr().err
    assert image.read_bytes() == before


def test_resume_refuses_a_file_it_cannot_read_and_leaves_it_alone(tiny_bundle, folder,
                                                                   tmp_path, capsys):
    noise = tmp_path / "x.jsonl"
    noise.write_bytes(bytes(range(256)).replace(b"\n", b"") * 12)  # no newline at all
    before = noise.read_bytes()
    assert predict(tiny_bundle, str(folder), "--jsonl", "-o", str(noise), "--resume") == 2
    assert "not a JSON Lines file written by predict" in capsys.readouterr().err
    assert noise.read_bytes() == before


def test_resume_refuses_the_other_format(tiny_bundle, folder, tmp_path, capsys):
    jsonl = tmp_path / "r.out"
    assert predict(tiny_bundle, str(folder / "REAL"), "--jsonl", "-o", str(jsonl)) == 0
    before = jsonl.read_bytes()
    assert predict(tiny_bundle, str(folder), "--csv", "-o", str(jsonl), "--resume") == 2
    assert "is not predict's CSV header" in capsys.readouterr().err
    assert jsonl.read_bytes() == before


def test_resume_matches_sources_by_resolved_path(tiny_bundle, folder, tmp_path, monkeypatch,
                                                 capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.jsonl"
    assert predict(tiny_bundle, "imgs", "--jsonl", "-o", "r.jsonl") == 0
    capsys.readouterr()
    assert predict(tiny_bundle, "./imgs/", "--jsonl", "-o", str(out), "--resume") == 0
    assert "nothing left to score: all 24" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 24


def test_undecodable_file_names_are_written_and_resumed(tiny_bundle, folder, tmp_path, capsys):
    odd = os.fsdecode(b"caf\xe9.png")
    shutil.copy(next((folder / "FAKE").iterdir()), folder / "FAKE" / odd)
    out = tmp_path / "r.csv"
    assert predict(tiny_bundle, str(folder), "--csv", "-o", str(out)) == 0
    assert b"caf\xe9.png" in out.read_bytes()  # the name's own bytes, as `ls` shows them
    assert predict(tiny_bundle, str(folder)) == 0  # the table on a strict-UTF-8 stdout
    assert "caf\\udce9.png" in capsys.readouterr().out
    assert predict(tiny_bundle, str(folder), "--csv", "-o", str(out), "--resume") == 0
    assert "nothing left to score: all 25" in capsys.readouterr().err


def test_unwritable_outputs_fail_in_one_line_before_the_model_loads(folder, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "r.jsonl"
    (tmp_path / "not-a-bundle").mkdir()  # a folder: past the name check, fails only to load
    code = cli.main(["predict", str(folder), "--jsonl", "-o", str(missing), "--model",
                     str(tmp_path / "not-a-bundle")])
    assert code == 2 and f"folder {missing.parent} does not exist" in capsys.readouterr().err
    assert cli.main(["predict", str(folder), "-o", str(tmp_path), "--model",
                     str(tmp_path / "not-a-bundle")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert cli.main(["scan", str(folder), "-o", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_a_one_line_error(tiny_bundle, folder, capsys):
    assert predict(tiny_bundle, str(folder), "--jsonl", "-o", "/dev/full") == 2
    assert "/dev/full: cannot write (No space left on device)" in capsys.readouterr().err


def test_a_closed_pipe_stops_quietly(tiny_bundle, folder):
    script = ("import sys; from deepfake_detection.interfaces.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    reader = subprocess.Popen([sys.executable, "-c", script, "predict", str(folder), "--jsonl",
                               "--model", str(tiny_bundle[1])], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.readline()
    reader.stdout.close()  # `| head -1`
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 141 and "Traceback" not in err


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    values = {"output_dir": str(tmp_path / "run"), "phases": fast_phases(1),
              "export_stem": str(tmp_path / "models" / "final_model"), **overrides}
    return TrainConfig(**values)


def test_train_refuses_to_replace_a_bundle_or_an_export_without_force(tmp_path):
    from deepfake_detection.training.trainer import check_outputs

    config = _config(tmp_path)
    check_outputs(config)  # nothing there yet
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "final_model.h5").write_bytes(b"tracked")
    with pytest.raises(ConfigError, match="final_model.h5 already exist"):
        check_outputs(config)
    check_outputs(config, force=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metadata.json").write_text("{}")
    with pytest.raises(ConfigError, match="metadata.json"):
        check_outputs(_config(tmp_path, export_stem=""))


def test_train_refuses_nothing_to_train_and_a_file_as_out(tmp_path):
    from deepfake_detection.training.trainer import check_outputs

    config = _config(tmp_path)
    for phase in config.phases:
        phase.epochs = 0
    with pytest.raises(ConfigError, match="every phase has 0 epochs"):
        check_outputs(config)
    (tmp_path / "run").write_text("a file")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_outputs(_config(tmp_path))


def test_train_cli_checks_before_any_work(tmp_path, capsys):
    (tmp_path / "final_model.keras").write_bytes(b"x")
    code = cli.main(["train", "--recipe", "fast", "--data", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "run"), "--export", str(tmp_path / "final_model")])
    assert code == 2 and "pass --force" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["final_model.keras"]


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--image-size", "0"],
                                    ["--adv-eps", "300"], ["--adv-eps", "x"]])
def test_train_refuses_nonsense_numbers_at_parse_time(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--data", "anywhere", *option])
    assert exit_info.value.code == 2 and "argument" in capsys.readouterr().err
