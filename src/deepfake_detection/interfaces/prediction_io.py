"""Prediction I/O: the images named on the command line, guarded output files, resumable
JSONL/CSV, the table.

`predict` and `scan` both read and write through here, so neither can overwrite an input image or an
earlier result by accident, and `--resume` reads back exactly what they wrote. Every check runs
before the model loads: a bad `-o` costs nothing.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from deepfake_detection.errors import DetectionError
from deepfake_detection.escaping import for_csv, for_terminal
from deepfake_detection.imaging import IMAGE_SUFFIXES, iter_image_files

PREDICT_FIELDS = ("source", "verdict", "label", "prob_fake", "threshold", "operating_point",
                  "detector", "warnings", "provenance", "verdict_basis", "generator_family",
                  "generator_family_prob", "error")
VERDICTS = ("real", "uncertain", "fake", "error")
# How people read a verdict (the table, the summary line); records keep the values above.
VERDICT_WORDS = {"fake": "AI", "uncertain": "uncertain", "real": "no sign of AI"}
FLUSH_SECONDS = 2.0  # the most a crash of a streaming predict can lose
# File names are bytes on POSIX; undecodable ones come back from os.fsdecode as surrogates, and
# this error handler writes those bytes back unchanged (and reads them again on --resume).
FILE_ERRORS = "surrogateescape"


class OutputError(DetectionError, ValueError):
    """An output that cannot be written, or would destroy something; the message says why."""


def check_output(output: str | os.PathLike, inputs: Sequence[str], force: bool = False,
                 resume: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written or would lose data.

    An existing non-empty file is replaced only with `force` (or continued with `resume`), and
    never when it is one of the input images.
    """
    path = Path(output)
    if path.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name for the output")
    if not path.parent.is_dir():
        raise OutputError(f"{output}: folder {path.parent} does not exist; create it first")
    if not path.exists() and not os.access(path.parent, os.W_OK):
        raise OutputError(f"{output}: folder {path.parent} is not writable")
    if is_input(path, inputs):
        raise OutputError(f"{output} is one of the input images; write the results elsewhere")
    if path.is_file() and path.stat().st_size and not (force or resume):
        raise OutputError(f"{output} exists; pass --force to replace it, or --resume to "
                          "continue it")
    return path


def is_input(path: Path, inputs: Sequence[str]) -> bool:
    """Whether `path` is one of the images that `inputs` (files, folders, globs) name."""
    if not path.exists():
        return False
    target = path.resolve()
    for item in inputs:
        if glob.has_magic(item):
            if any(Path(m).resolve() == target for m in glob.iglob(item, recursive=True)):
                return True
        elif Path(item).is_dir():
            if target.suffix.lower() in IMAGE_SUFFIXES and target.is_relative_to(
                    Path(item).resolve()):
                return True
        elif Path(item).exists() and Path(item).resolve() == target:
            return True
    return False


def source_key(source: str) -> str:
    """One spelling per file (`./d/a.jpg`, `d/a.jpg` and a symlink to it are the same)."""
    return os.path.realpath(source)


def resume_key(path: str, csv_format: bool) -> str:
    """How a file to score is matched against an output's records: its `source_key`, taken of
    the text a CSV cell holds for it (`for_csv`), since CSV shows names neutralised."""
    return source_key(for_csv(path) if csv_format else path)


def scored_sources(output: str | os.PathLike, csv_format: bool) -> tuple[set[str], int]:
    """Sources (as `source_key`s) already in a predict output, and the bytes of a torn last
    record dropped from it.

    A file that is not this format's predict output is refused, untouched. The only thing ever
    removed is an incomplete last record left by a killed run, recognisably predict's own; its
    image is scored again.
    """
    path = Path(output)
    if not path.is_file() or not path.stat().st_size:
        return set(), 0
    done: set[str] = set()
    complete = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                _check_torn(path, line, number, csv_format)
                os.truncate(path, complete)
                return done, len(line)
            source = _record_source(path, line, number, csv_format)
            if source is not None:
                done.add(source_key(source))
            complete += len(line)
    return done, 0


def _refuse(path: Path, number: int, csv_format: bool, why: str) -> OutputError:
    kind = "CSV" if csv_format else "JSON Lines"
    return OutputError(f"{path}: line {number} {why}, so it is not a {kind} file written by "
                       "predict; nothing was changed (choose another --output, or the other "
                       "format)")


def _record_source(path: Path, line: bytes, number: int, csv_format: bool) -> str | None:
    """The source of one complete line (None for the CSV header); refuses anything else."""
    text = line.decode("utf-8", FILE_ERRORS)
    if csv_format:
        row = next(csv.reader([text]), [])
        if number == 1:
            if tuple(row) != PREDICT_FIELDS:
                raise _refuse(path, 1, True, "is not predict's CSV header")
            return None
        if len(row) != len(PREDICT_FIELDS):
            raise _refuse(path, number, True, f"has {len(row)} fields, not "
                          f"{len(PREDICT_FIELDS)}")
        return row[0]
    try:
        record = json.loads(text)
    except ValueError:
        raise _refuse(path, number, False, "is not JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str):
        raise _refuse(path, number, False, "has no \"source\"")
    return record["source"]


def _check_torn(path: Path, line: bytes, number: int, csv_format: bool) -> None:
    """A last line without its newline may only be predict's own record, cut short."""
    start = b'{"source": '
    own = (number > 1 and len(next(csv.reader([line.decode("utf-8", FILE_ERRORS)]), []))
           <= len(PREDICT_FIELDS)) if csv_format else (line.startswith(start)
                                                      or start.startswith(line))
    if not own:
        raise _refuse(path, number, csv_format, "is incomplete and not a cut-short record")


def open_output(output: str | None, append: bool = False) -> IO[str]:
    """The output file (or stdout), writing undecodable file names back as their bytes."""
    if output is None:
        sys.stdout.reconfigure(errors="backslashreplace")  # a terminal shows them escaped
        return sys.stdout
    return open(output, "a" if append else "w", newline="", encoding="utf-8",
                errors=FILE_ERRORS)


def count_verdicts(rows: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[dict]:
    """Pass rows through, counting each verdict (or error) in `counts` on the way."""
    for row in rows:
        key = "error" if row["error"] else row["verdict"]
        counts[key] = counts.get(key, 0) + 1
        yield row


def write_stream(rows: Iterable[dict[str, Any]], out: IO[str], csv_format: bool,
                 header: bool = True) -> None:
    """One line per image, flushed at least every FLUSH_SECONDS (and at the first record), so a
    killed run loses only the last few seconds' records."""
    writer = csv.DictWriter(out, PREDICT_FIELDS, extrasaction="ignore") if csv_format else None
    if writer and header:
        writer.writeheader()
    flushed = 0.0
    for row in rows:
        if writer:
            writer.writerow(csv_row(row))
        else:
            out.write(json.dumps(row) + "\n")
        if time.monotonic() - flushed >= FLUSH_SECONDS:
            out.flush()
            flushed = time.monotonic()
    out.flush()


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A record as predict's CSV row: warnings joined, provenance as its summary, every cell
    neutralised for spreadsheets (`for_csv`)."""
    flat = {**row, "warnings": "; ".join(row["warnings"]),
            "provenance": (row["provenance"] or {}).get("summary", "")}
    return {key: for_csv(flat[key]) for key in PREDICT_FIELDS}


def write_table(rows: list[dict[str, Any]], out: IO[str]) -> None:
    """A fixed-width table for people: image, verdict, P(fake), first note; every text from a
    file is shown with its control characters escaped (`for_terminal`)."""
    names = [for_terminal(r["source"]) for r in rows]
    width = min(70, max(map(len, names)))
    out.write(f"{'image':<{width}}  {'verdict':<13}  {'P(fake)':>7}  note\n")
    for name, r in zip(names, rows):
        name = name if len(name) <= width else "..." + name[-width + 3:]
        if r["error"]:
            out.write(f"{name:<{width}}  {'ERROR':<13}  {'':>7}  {for_terminal(r['error'])}\n")
            continue
        prov = r.get("provenance") or {}
        declared = prov.get("summary", "") if prov.get("strongest", "none") != "none" else ""
        first = r["warnings"][0] if r["warnings"] else ""
        note = first if declared in first else "; ".join(filter(None, (declared, first)))
        note = "; ".join(filter(None, (family_note(r), note)))
        out.write(f"{name:<{width}}  {VERDICT_WORDS[r['verdict']]:<13}  {r['prob_fake']:>7.3f}  "
                  f"{for_terminal(note)}\n")


def family_note(record: dict[str, Any]) -> str:
    """`family: FLUX (82%)`, or that it matches no family the head knows; '' when no family
    was said (the verdict is not AI, or the detector has no family head)."""
    family = record.get("generator_family")
    if not family:
        return ""
    if family == "unknown":
        return "family: a generator it was not trained on"
    return f"family: {family} ({record['generator_family_prob']:.0%})"


# What `predict` and `scan` read, in the order they read it.
iter_inputs = iter_image_files
