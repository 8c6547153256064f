"""Nothing a file says can act: crafted metadata (C2PA manifests and certificate subjects, PNG
text, EXIF, XMP) and file names, shown in the terminal table, CSV, JSON and the app's Markdown."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from deepfake_detection.escaping import for_csv, for_markdown, for_terminal
from deepfake_detection.inference import provenance
from deepfake_detection.interfaces import app
from deepfake_detection.interfaces.cli import main

from . import crafted

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A folder of crafted files; returns (folder, the payload)."""
    text = crafted.payload()
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "signed.jpg").write_bytes(crafted.signed_attack(text))
    (folder / "text.png").write_bytes(crafted.png_attack(text))
    (folder / "exif.jpg").write_bytes(crafted.exif_attack(text))
    (folder / crafted.hostile_name()).write_bytes(crafted.png_attack("plain"))
    return folder, text


def test_helpers_make_every_trick_inert():
    text = crafted.payload() + "\u2066\u2028"
    assert not CONTROL.search(for_terminal(text)) and "\\x1b[2J" in for_terminal(text)
    assert for_csv(crafted.FORMULA) == "'" + crafted.FORMULA and for_csv(0.5) == 0.5
    assert [for_csv(s)[0] for s in ("-1+2", "@SUM(A1)", "+1", "\tx")] == ["'", "'", "'", "\\"]
    assert not _elements(for_markdown(text)) and not CONTROL.search(for_markdown(text))


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def _elements(markdown: str) -> list[str]:
    """The HTML elements a CommonMark renderer (with raw HTML and bare-URL links on, as in
    Gradio) makes from `markdown`, other than the paragraphs, lists and emphasis of the frame."""
    from markdown_it import MarkdownIt

    parser = _Tags()
    parser.feed(MarkdownIt("commonmark", {"html": True, "linkify": False}).render(markdown))
    return [t for t in parser.tags if t not in ("p", "ul", "li", "strong", "em", "h3")]


def test_the_app_panels_show_crafted_metadata_as_text(hostile):
    folder, text = hostile
    for name in ("signed.jpg", "text.png", "exif.jpg"):
        record = provenance.read(folder / name).to_dict()
        panel = app.provenance_panel(record)
        assert not _elements(panel), (name, _elements(panel))
        assert "http" not in re.sub(r"\\.", "", panel).split("://")[0][-8:]  # no link scheme
    signed = provenance.read(folder / "signed.jpg").to_dict()
    assert signed["items"][0]["details"]["claim_generator"] == [text]  # JSON keeps it exact


def test_terminal_table_and_csv_carry_no_control_byte_and_no_formula(hostile, tiny_bundle,
                                                                     capsys, monkeypatch):
    folder, _ = hostile
    model = str(tiny_bundle[1])
    monkeypatch.chdir(folder)  # sources are then the bare names: one starts with '='
    assert main(["predict", "*", "--model", model]) == 0
    table = capsys.readouterr()
    assert not CONTROL.search(table.out + table.err) and "\\x1b" in table.out
    assert main(["predict", "*", "--model", model, "--csv"]) == 0
    out = capsys.readouterr().out
    assert not CONTROL.search(out.replace("\r\n", "\n"))
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == 5
    for cell in (c for row in rows[1:] for c in row if c):
        assert not cell.startswith(("=", "+", "-", "@")), cell
    assert any(row[0].startswith("'=cmd") for row in rows)  # the file name, neutralised


def test_json_keeps_the_exact_text_and_csv_resume_finds_hostile_names(hostile, tiny_bundle,
                                                                      tmp_path):
    folder, text = hostile
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--jsonl", "-o",
                 str(out)]) == 0
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.open())}
    assert crafted.hostile_name() in rows
    exif = rows["exif.jpg"]["provenance"]["items"][0]["details"]["Software"]
    assert exif.startswith("Stable Diffusion <img") and "[click me](http" in exif
    signed = rows["signed.jpg"]["provenance"]["items"][0]["details"]
    assert signed["software_agents"] == [text] and "\x1b[2J" in signed["signer"]
    table = tmp_path / "out.csv"
    assert main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--csv", "-o",
                 str(table)]) == 0
    lines = table.read_text().count("\n")
    assert main(["predict", str(folder), "--model", str(tiny_bundle[1]), "--csv", "-o",
                 str(table), "--resume"]) == 0
    assert table.read_text().count("\n") == lines  # the '=cmd... name was recognised as done
