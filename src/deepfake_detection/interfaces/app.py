"""Gradio web app: upload images, get a verdict, its probability, the evidence and the model card.

A thin front end: everything it shows comes from the Detector (or the automatic choice between
the shipped detectors) that the CLI uses too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfake_detection.imaging import IMAGE_SUFFIXES, ImageError, load_rgb
from deepfake_detection.inference import detectors, provenance
from deepfake_detection.inference.bundle import CARD_FILE
from deepfake_detection.inference.checking import join
from deepfake_detection.inference.detector import Detector
from deepfake_detection.inference.detectors import AutoDetector
from deepfake_detection.inference.explain import gradcam, overlay, regions_overlay
from deepfake_detection.interfaces.escaping import for_html, for_markdown

MAX_FILE_SIZE = "25mb"
# Uploads are deleted every 10 minutes once 30 minutes old, and all of them when the server
# stops; one image is scored at a time (the model uses every core anyway) with at most 16 waiting,
# so memory stays bounded however many people upload at once.
DELETE_CACHE = (600, 1800)
CONCURRENCY, QUEUE_SIZE = 1, 16
VERDICT_TEXT = {
    "fake": "## Likely AI-generated",
    "real": "## Likely a real photograph",
    "uncertain": "## Uncertain: no verdict either way",
}
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
        return result, regions_overlay(rgb, result.regions or [], result.threshold)
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
    pixels = {"real": "Pixels look real", "uncertain": "The pixels are inconclusive",
              "fake": "Pixels look AI-generated"}[result.verdict]
    if "signed_ai_declaration" in strengths and result.verdict_basis == "pixels" \
            and result.verdict != "fake":
        heading = (f"## {pixels}, but the file's signed Content Credentials say generative AI "
                   "made or edited it")
    elif "signed_capture_claim" in strengths and result.verdict == "fake":
        heading = (f"## {pixels}, but the file's signed Content Credentials say a camera "
                   "captured it")
    return (f"{heading}\n\nProbability it is AI-generated: **{result.prob_fake:.1%}** "
            f"(threshold {result.threshold:.1%}; 'uncertain' within "
            f"±{chosen.uncertain_margin:.0%} of it).\n\nAnswered by the **{chosen.name}** "
            f"detector ({how}).")


def analyze(detector: Detector | AutoDetector, path: str | None, trust_metadata: bool = False
            ) -> tuple[str, Any, str, dict, str]:
    """One uploaded file -> (verdict text, evidence picture, warnings, details, provenance
    panel). The file is read as a file, so its metadata is seen too."""
    import gradio as gr

    if not path:
        raise gr.Error("Upload an image first.")
    chosen = detector.choose(path) if isinstance(detector, AutoDetector) else detector
    try:
        result, picture = _evidence(chosen, path)
    except ImageError as error:  # Gradio shows the message as HTML: the file name is escaped
        raise gr.Error("Could not read this image: "
                       + for_html(_name_only(error, path))) from error
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
    """Several images -> the same records as `deepfake-detection predict --json`."""
    from deepfake_detection.inference.checking import Checker

    rows = [r.to_dict() for r in Checker(detector).check_many(list(paths or []))]
    for row in rows:  # the server's upload folder stays on the server
        if row["error"]:
            row["error"] = _name_only(row["error"], row["source"])
        row["source"] = Path(row["source"]).name
    return rows


def _table(rows: list[dict]) -> list[list]:
    return [[r["source"], r["verdict"] or "error",
             None if r["prob_fake"] is None else round(r["prob_fake"], 4),
             r["error"] or "; ".join(r["warnings"])] for r in rows]


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
            raise gr.Error("This file type is not accepted: upload an image.")
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

    def __call__(self, name: str | None) -> Detector | AutoDetector:
        name = name or self.names[0]
        if name not in self.names:
            raise ValueError(f"unknown detector {name!r}; choose from {self.names}")
        if name not in self.loaded:
            self.loaded[name] = detectors.load(name)
        return self.loaded[name]


def build_demo(detector: Detector | AutoDetector | None = None, show_examples: bool = True):
    """The Gradio Blocks app around a Detector (default: the automatic choice between the
    shipped ones), with the other shipped detectors to pick from. `show_examples` offers a few
    shared-data test images; off for screenshots that get committed."""
    import gradio as gr

    detector = detector or detectors.load()
    pick = Choices(detector)
    with gr.Blocks(title="deepfake-detection", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# Real photo or AI-generated?\nUpload an image to check it. The picture "
                    "shows where the evidence is: each crop's score for photos of 256 px and "
                    "more (native detector), Grad-CAM for small images (cifake detector).")
        with gr.Tab("One image"):
            with gr.Row():
                with gr.Column():
                    image = _leave_no_empty_files(gr.File(
                        file_types=["image"], type="filepath",
                        label="Image file (read as a file, so what it declares is checked too)"))
                    choice = gr.Radio(pick.names, value=pick.names[0], label="Detector",
                                      info="auto: native for images of 256 px and more, "
                                      "cifake below; robust: the cifake detector trained "
                                      "against L-inf attacks (see its model card)")
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
            button.click(lambda p, name: analyze(pick(name), p), [image, choice], outputs,
                         api_name="analyze")
            snap_button.click(lambda p, name: analyze(pick(name), p), [snapshot, choice],
                              outputs, api_visibility="private")
        with gr.Tab("Several images"):
            files = _leave_no_empty_files(gr.File(file_count="multiple", label="Images"))
            run = gr.Button("Check all", variant="primary")
            table = gr.Dataframe(headers=["image", "verdict", "P(fake)", "note"],
                                 interactive=False)
            records = gr.JSON(label="Results (JSON)")
            run.click(lambda p: predict_files(detector, p), files, records,
                      api_name="predict").then(_table, records, table, api_visibility="private")
        with gr.Accordion("Model card", open=False):
            gr.Markdown(model_card(detector))
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)


def launch(model: str | None = "auto", host: str = "127.0.0.1", port: int | None = None,
           share: bool = False, block: bool = True):
    """Serve the app; uploads above MAX_FILE_SIZE are refused by Gradio before reaching us."""
    detector = detectors.load(model)
    demo = build_demo(detector)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_FILE_SIZE,
                prevent_thread_lock=not block, show_error=True)
    return demo
