"""Gradio web app: upload images, get a verdict, its probability, the evidence and the model card.

A thin front end: everything it shows comes from the Detector (or the automatic choice between
the shipped detectors) that the CLI uses too.
"""

from __future__ import annotations

import atexit
import json
import logging
import random
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfake_detection.escaping import for_html, for_markdown
from deepfake_detection.imaging import IMAGE_SUFFIXES, ImageError, load_rgb
from deepfake_detection.inference import detectors, provenance
from deepfake_detection.inference.bundle import CARD_FILE, BundleError
from deepfake_detection.inference.checking import join
from deepfake_detection.inference.detector import Detector
from deepfake_detection.inference.detectors import AutoDetector
from deepfake_detection.inference.explain import gradcam, overlay, regions_overlay
from deepfake_detection.inference.shipped import OPERATING_POINTS
from deepfake_detection.interfaces.prediction_io import PREDICT_FIELDS, csv_row, family_note

MAX_FILE_SIZE = "25mb"
# Uploads are deleted every 10 minutes once 30 minutes old, and all of them when the server
# stops; one image is scored at a time (the model uses every core anyway) with at most 16 waiting,
# so memory stays bounded however many people upload at once.
DELETE_CACHE = (600, 1800)
CONCURRENCY, QUEUE_SIZE = 1, 16
# The words of a verdict, the same in both tabs (headings, table, gallery captions).
VERDICT_WORDS = {"fake": "Likely AI-generated", "real": "No sign of AI generation found",
                 "uncertain": "Uncertain", None: "Unreadable"}
VERDICT_TEXT = {
    "fake": "## Likely AI-generated",
    "real": "## No sign of AI generation found",
    "uncertain": "## Uncertain: no verdict either way",
}
# The file types the upload boxes take: every format the detector reads (HEIC and AVIF
# included, which browsers' "image" filter may not list).
UPLOAD_TYPES = ["image", *IMAGE_SUFFIXES]
# The operating points a visitor can pick (inference.shipped.OPERATING_POINTS), in words.
POINT_INFO = ("balanced: both kinds of error weighed equally; strict: says AI only where at "
              "most 1 real picture in 100 of the detector's validation set scored as high, so "
              "it misses more fakes (for when a wrong accusation is the worse error)")
BATCH_HEADERS = ["image", "verdict", "probability AI", "detector", "note"]
log = logging.getLogger("deepfake_detection.app")
# Record fields the panel leaves out: raw PNG text (shown by key), flags the summary states, and
# the trust lists (named once at the bottom).
HIDDEN_FACTS = ("value", "trusted", "intact", "trust_lists", "validation_state")
EXAMPLE_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sd-vs-real-32"


def model_card(detector: Detector | AutoDetector) -> str:
    """The bundle's model card if it has one, else a summary built from its metadata; both
    cards, under their names, for the automatic choice."""
    if isinstance(detector, AutoDetector):
        parts = [f"**Which detector answers:** the {detectors.RULE}."]
        for name, one in (("cifake", detector.cifake), ("native", detector.native)):
            if one is not None:
                parts.append(f"# The {name} detector\n\n{model_card(one)}")
        return "\n\n".join(parts)
    card = detector.bundle_dir / CARD_FILE if detector.bundle_dir else None
    if card and card.is_file():
        return card.read_text()
    meta = detector.metadata
    val = meta.get("validation_metrics", {})
    lines = [
        f"**Architecture:** `{meta.get('architecture', 'unknown')}` at "
        f"{detector.spec.size}x{detector.spec.size} pixels.",
        f"**Decision threshold:** {detector.threshold:.3f} "
        f"({meta.get('threshold', {}).get('rule', 'not recorded')}).",
        f"**Trained on:** {meta.get('config', {}).get('data_dir', 'unknown')} "
        f"({meta.get('data', {}).get('train', {})} images).",
    ]
    if val:
        lines.append(f"**Validation:** ROC-AUC {val.get('roc_auc', float('nan')):.3f}, accuracy "
                     f"{val.get('at_threshold', {}).get('accuracy', float('nan')):.3f}.")
    lines.append("**Limits:** trained on small Stable Diffusion vs photo images; other "
                 "generators, heavy editing or recompression can fool it.")
    return "\n\n".join(lines)


def _evidence(detector: Detector, path: str):
    """(prediction, picture): crop scores over the whole image for a native detector, whose
    verdict is their average; Grad-CAM on the model's input for a resizing one."""
    if detector.native:
        rgb = load_rgb(path)  # decoded once for the verdict and the picture
        result = detector.predict(rgb)
        result.source = path
        return result, regions_overlay(rgb, result.regions or [], detector.band)
    cam, result, image = gradcam(detector, path)
    return result, overlay(image, cam)


def provenance_panel(record: dict | None) -> str:
    """Markdown for the Provenance panel: who signed, which generator, which actions. Every
    string in `record` was written by whoever made the file, so each is escaped (`for_markdown`):
    it shows as text, never as markup, a link or an image."""
    if not record:
        return "### Provenance\nNot read."
    lines = ["### Provenance", f"**{for_markdown(record['summary'])}**"]
    for item in record["items"]:
        facts = [f"{k.replace('_', ' ')}: " + for_markdown(_plain(v))
                 for k, v in item["details"].items() if v and k not in HIDDEN_FACTS]
        lines.append(f"- *{for_markdown(item['kind'])}*, "
                     f"{for_markdown(item['strength'].replace('_', ' '))}: "
                     f"{for_markdown(item['summary'])}"
                     + (f" ({'; '.join(facts)})" if facts else ""))
    lines += [f"- warning: {for_markdown(w)}" for w in record["warnings"]]
    if record.get("trust_lists"):
        lines.append("\nC2PA signers checked against: "
                     + for_markdown("; ".join(record["trust_lists"])) + ".")
    lines.append("\nSigned C2PA credentials are as trustworthy as their signer; EXIF, XMP and PNG "
                 "text are plain text anyone can write or strip. Missing metadata is not "
                 "evidence of a real photo.")
    return "\n".join(lines)


def _plain(value: Any) -> str:
    """A fact as one line of text: lists joined, mappings as `key: value`."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items() if v not in ("", [], None))
    if isinstance(value, list):
        return "; ".join(_plain(v) for v in value)
    return str(value)


def verdict_text(result, chosen: Detector) -> str:
    """The one verdict on screen: a heading, the probability that led to it, the detector.
    An `uncertain` heading says so and states no class; a signed declaration the pixels
    contradict is in the heading itself (the Provenance panel says who signed and whether the
    signer is trusted)."""
    how = ("crops of the pixels as they are, never resized; the picture shows each crop's score"
           if chosen.native else
           f"the image resized to {chosen.spec.size}x{chosen.spec.size}; the heatmap is Grad-CAM")
    heading = VERDICT_TEXT[result.verdict]
    strengths = {i["strength"] for i in (result.provenance or {}).get("items", [])}
    pixels = {"real": "The pixels show no sign of AI", "uncertain": "The pixels are inconclusive",
              "fake": "Pixels look AI-generated"}[result.verdict]
    if "signed_ai_declaration" in strengths and result.verdict_basis == "pixels" \
            and result.verdict != "fake":
        heading = (f"## {pixels}, but the file's signed Content Credentials say generative AI "
                   "made or edited it")
    elif "signed_capture_claim" in strengths and result.verdict == "fake":
        heading = (f"## {pixels}, but the file's signed Content Credentials say a camera "
                   "captured it")
    low, high = chosen.band
    heading += family_line(result)
    return (f"{heading}\n\nProbability it is AI-generated: **{result.prob_fake:.1%}** "
            f"(likely AI-generated from {high:.1%}, no sign of AI below {low:.1%}, uncertain "
            f"between).\n\nAnswered by the **{chosen.name}** detector ({how}){_strict(chosen)}.")


def _strict(chosen: Detector) -> str:
    return ("" if chosen.operating_point == "balanced" else ", at the strict operating point: AI "
            "only where at most 1 real picture in 100 of its validation set scored as high")


def family_line(result) -> str:
    """One short line under an AI verdict: which generator family it looks like, or that it
    matches none the detector was trained on; nothing for any other verdict."""
    if result.verdict != "fake" or not result.generator_family:
        return ""
    runner = result.generator_runner_up
    if result.generator_family == "unknown":
        return ("\n\nMade with: **a generator it was not trained on**, as far as it can tell "
                f"(the closest family it knows, {for_markdown(runner['family'])}, at "
                f"{runner['prob']:.0%})")
    return (f"\n\nMade with: looks most like **{for_markdown(result.generator_family)}** "
            f"({result.generator_family_prob:.0%}; next {for_markdown(runner['family'])} "
            f"{runner['prob']:.0%})")


def analyze(detector: Detector | AutoDetector, path: str | None, trust_metadata: bool = False
            ) -> tuple[str, Any, str, dict, str]:
    """One uploaded file -> (verdict text, evidence picture, warnings, details, provenance
    panel). The file is read as a file, so its metadata is seen too."""
    import gradio as gr

    if not path:
        raise gr.Error("Upload an image first.", print_exception=False)
    chosen = detector.choose(path) if isinstance(detector, AutoDetector) else detector
    try:
        result, picture = _evidence(chosen, path)
    except ImageError as error:  # Gradio shows the message as HTML: the file name is escaped
        message = _name_only(error, path)
        log.warning("upload refused: %s", message.encode("unicode_escape").decode())  # 1 line
        raise gr.Error("Could not read this image: " + for_html(message),
                       print_exception=False) from None
    result = join(result, provenance.read(path), trust_metadata)
    warnings = "\n".join(f"- {for_markdown(w)}" for w in result.warnings) or "No warnings."
    details = result.to_dict()
    details["source"] = Path(path).name
    return (verdict_text(result, chosen), picture, warnings, details,
            provenance_panel(result.provenance))


def _name_only(error: Exception | str, path: str) -> str:
    """The error without the server's upload folder in it."""
    return str(error).replace(str(path), Path(path).name)


def predict_files(detector: Detector | AutoDetector, paths: list[str] | None) -> list[dict]:
    """Several images -> the same records as `deepfake-detection predict --json` run on the
    files by name (the server's upload folder stays on the server)."""
    from deepfake_detection.inference.checking import Checker

    rows = [r.to_dict() for r in Checker(detector).check_many(list(paths or []))]
    for row in rows:
        if row["error"]:
            row["error"] = _name_only(row["error"], row["source"])
        row["source"] = Path(row["source"]).name
    failed = sum(1 for r in rows if r["error"])
    if failed:
        log.warning("batch of %d: %d unreadable", len(rows), failed)
    return rows


def _percent(prob: float | None) -> str:
    return "" if prob is None else f"{prob:.1%}"


def batch_view(rows: list[dict], paths: list[str] | None, folder: Path):
    """What the batch tab shows for `predict_files` records: a summary line, a table and a
    gallery in the one-image tab's words and units, and the CSV and JSON that `predict --csv`
    / `--json` write for the same files (`folder` holds them until the next batch)."""
    counts = {key: sum(1 for r in rows if r["verdict"] == key and not r["error"])
              for key in ("fake", "uncertain", "real")}
    failed = sum(1 for r in rows if r["error"])
    summary = (f"**{len(rows)} image{'s' if len(rows) != 1 else ''}:** {counts['fake']} likely "
               f"AI-generated, {counts['uncertain']} uncertain, {counts['real']} with no sign of AI"
               + (f", {failed} unreadable" if failed else "") + ".")
    table = [[r["source"], VERDICT_WORDS[None if r["error"] else r["verdict"]],
              _percent(r["prob_fake"]), r["detector"] or "",
              r["error"] or "; ".join(filter(None, (family_note(r), *r["warnings"])))]
             for r in rows]
    batch = _fresh(folder)
    gallery = [(thumb, f"{r['source']}: {VERDICT_WORDS[r['verdict']]}, "
                f"{_percent(r['prob_fake'])} AI")
               for i, (path, r) in enumerate(zip(paths or [], rows))
               if not r["error"] and (thumb := _thumbnail(path, batch / f"{i}.jpg"))]
    return summary, table, gallery, *_downloads(rows, batch)


def _fresh(folder: Path) -> Path:
    """A new folder for this batch's files; the previous batch's are removed (Gradio has
    copied them into its upload cache by then)."""
    for old in folder.glob("*"):
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=folder))


def _thumbnail(path: str, out: Path) -> str | None:
    """A JPEG thumbnail any browser shows (HEIC and 16-bit TIFF it may not), or None."""
    from PIL import Image

    try:
        image = Image.fromarray(load_rgb(path))
    except ImageError:
        return None
    image.thumbnail((320, 320))
    image.save(out, quality=85)
    return str(out)


def _downloads(rows: list[dict], batch: Path) -> tuple[Any, Any]:
    """results.csv and results.json, byte for byte what the CLI writes."""
    import csv

    import gradio as gr

    with (batch / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, PREDICT_FIELDS)
        writer.writeheader()
        writer.writerows(csv_row(r) for r in rows)
    (batch / "results.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return (gr.File(str(batch / "results.csv"), visible=True),
            gr.File(str(batch / "results.json"), visible=True))


def example_images(count: int = 4) -> list[str]:
    """A few test-split images from the shared data, read in place (nothing is committed)."""
    examples: list[str] = []
    for cls in ("REAL", "FAKE"):
        folder = EXAMPLE_DIR / "test" / cls
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            examples += [str(p) for p in random.Random(0).sample(files, min(count // 2,
                                                                              len(files)))]
    return examples


def default_host(env: Mapping[str, str]) -> str:
    """Where `python app.py` listens: GRADIO_SERVER_NAME if set; else 0.0.0.0 on Hugging Face
    Spaces (which sets SPACE_ID, and must reach the app), else this machine only."""
    return env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1")


def stop_on_sigterm() -> None:
    """SIGTERM (what `kill`, systemd and docker send) stops the app as Ctrl-C does: Gradio's
    shutdown then deletes every upload (`delete_cache`), which the default SIGTERM action, an
    immediate exit, never reaches. Main thread only (Python's rule for signal handlers)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _results_folder() -> Path:
    """Where the batch tab writes its CSV/JSON downloads; removed when the app exits."""
    folder = Path(tempfile.mkdtemp(prefix="dfd-results-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _leave_no_empty_files(component):
    """`component` (a gr.File) passing filepath uploads on as they are: Gradio 6.31's `File`
    opens a `NamedTemporaryFile` in its upload folder for every file it passes on and never
    removes it (one empty file per upload, measured by benchmarks/app_load.py). Set on the
    instance: a subclass would make Gradio write a .pyi stub into the installed package."""
    import types

    import gradio as gr
    from gradio.utils import NamedString
    from gradio_client import utils as client_utils

    def passed_on(self, f):
        if self.type != "filepath":
            return gr.File._process_single_file(self, f)
        if self.file_types and not client_utils.is_valid_file(f.path, self.file_types):
            log.warning("upload refused: not an accepted file type")
            raise gr.Error("This file type is not accepted: upload an image.",
                           print_exception=False)
        return NamedString(f.path)

    component._process_single_file = types.MethodType(passed_on, component)
    return component


class Choices:
    """The detectors a visitor can pick: the app's own first, then every other shipped bundle
    (e.g. `robust`), each loaded on first use."""

    def __init__(self, default: Detector | AutoDetector):
        self.loaded = {default.name: default}
        self.names = [default.name] + [n for n, folder in detectors.BUNDLES.items()
                                       if n != default.name and folder.exists()]

    def __call__(self, name: str | None, point: str | None = None) -> Detector | AutoDetector:
        name = name or self.names[0]
        if name not in self.names:
            raise ValueError(f"unknown detector {name!r}; choose from {self.names}")
        if name not in self.loaded:
            self.loaded[name] = detectors.load(name)
        if point in (None, self.loaded[name].operating_point):
            return self.loaded[name]
        try:
            return self.loaded[name].at(point)
        except BundleError as error:  # a bundle without the strict point
            import gradio as gr

            raise gr.Error(for_html(str(error)), print_exception=False) from None


def build_demo(detector: Detector | AutoDetector | None = None, show_examples: bool = True):
    """The Gradio Blocks app around a Detector (default: the automatic choice between the
    shipped ones), with the other shipped detectors to pick from. `show_examples` offers a few
    shared-data test images; off for screenshots that get committed."""
    import gradio as gr

    detector = detector or detectors.load()
    pick = Choices(detector)
    with gr.Blocks(title="deepfake-detection", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# Real photo or AI-generated?\nUpload an image to check it. The picture "
                    "shows where the evidence is: each crop's score for photos of 128 px and "
                    "more (native detector), Grad-CAM for small images (cifake detector).")
        with gr.Tab("One image"):
            with gr.Row():
                with gr.Column():
                    image = _leave_no_empty_files(gr.File(
                        file_types=UPLOAD_TYPES, type="filepath",
                        label="Image file (read as a file, so what it declares is checked too)"))
                    choice = gr.Radio(pick.names, value=pick.names[0], label="Detector",
                                      info="auto: native for images of 128 px and more, "
                                      "cifake below; robust: the cifake detector trained "
                                      "against L-inf attacks (see its model card)")
                    point = gr.Radio(list(OPERATING_POINTS), value="balanced",
                                     label="When to say AI", info=POINT_INFO)
                    button = gr.Button("Check image", variant="primary")
                    with gr.Accordion("Or take a photo / paste one (pixels only)", open=False):
                        snapshot = gr.Image(type="filepath", label="Picture",
                                            sources=["webcam", "clipboard"])
                        snap_button = gr.Button("Check this picture")
                    examples = example_images() if show_examples else []
                    if examples:
                        gr.Examples(examples, inputs=image, label="Test-split examples")
                with gr.Column():
                    verdict = gr.Markdown(elem_id="verdict", latex_delimiters=[])
                    cam = gr.Image(label="Where the evidence is", type="pil")
                    warnings = gr.Markdown(elem_id="warnings", latex_delimiters=[])
                    panel = gr.Markdown("### Provenance\nUpload an image.", elem_id="provenance",
                                        latex_delimiters=[])
                    with gr.Accordion("Details (JSON)", open=False):
                        details = gr.JSON()
            outputs = [verdict, cam, warnings, details, panel]
            button.click(lambda p, name, at: analyze(pick(name, at), p), [image, choice, point],
                         outputs, api_name="analyze")
            snap_button.click(lambda p, name, at: analyze(pick(name, at), p),
                              [snapshot, choice, point], outputs, api_visibility="private")
        with gr.Tab("Several images"):
            results_folder = _results_folder()
            with gr.Row():
                with gr.Column(scale=1):
                    files = _leave_no_empty_files(gr.File(
                        file_count="multiple", file_types=UPLOAD_TYPES, type="filepath",
                        label="Images (JPEG, PNG, WebP, HEIC, AVIF, TIFF, ...)", height=220,
                        elem_id="batch-files"))
                    many_choice = gr.Radio(pick.names, value=pick.names[0], label="Detector")
                    many_point = gr.Radio(list(OPERATING_POINTS), value="balanced",
                                          label="When to say AI", info=POINT_INFO)
                    run = gr.Button("Check all", variant="primary")
                with gr.Column(scale=2):
                    summary = gr.Markdown(elem_id="batch-summary", latex_delimiters=[])
                    table = gr.Dataframe(headers=BATCH_HEADERS, interactive=False,
                                         elem_id="batch-table", wrap=True)
                    with gr.Row():
                        csv_file = gr.File(label="results.csv (as predict --csv writes it)",
                                           visible=False, elem_id="batch-csv")
                        json_file = gr.File(label="results.json (as predict --json)",
                                            visible=False, elem_id="batch-json")
                    gallery = gr.Gallery(label="Each image with its verdict", columns=5,
                                         height=300, object_fit="cover",
                                         elem_id="batch-gallery")
                    with gr.Accordion("Records (JSON)", open=False):
                        records = gr.JSON()
            run.click(lambda p, name, at: predict_files(pick(name, at), p),
                      [files, many_choice, many_point], records, api_name="predict").then(
                lambda rows, p: batch_view(rows, p, results_folder), [records, files],
                [summary, table, gallery, csv_file, json_file], api_visibility="private")
        with gr.Accordion("Model card", open=False):
            gr.Markdown(model_card(detector))
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)


def launch(model: str | None = "auto", host: str = "127.0.0.1", port: int | None = None,
           share: bool = False, block: bool = True):
    """Serve the app; uploads above MAX_FILE_SIZE are refused by Gradio before reaching us."""
    detector = detectors.load(model)
    demo = build_demo(detector)
    if block:
        stop_on_sigterm()
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_FILE_SIZE,
                prevent_thread_lock=not block, show_error=True)
    return demo
