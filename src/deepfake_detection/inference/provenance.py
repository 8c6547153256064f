"""What a file says about its own origin: C2PA Content Credentials, IPTC/XMP, PNG text, EXIF.

Read from the file's bytes beside the Detector, never by it: the pixels and the metadata are
two kinds of evidence, each reported for what it is. A signed C2PA manifest is the strongest
claim a file can make, and only as good as its signer; everything else here is plain text anyone
can write or strip. Absence of metadata is "no provenance found", never evidence of a real photo.

Each reader is bounded (bytes looked at, chunk sizes) and contained: a malformed or hostile
field becomes a line in `warnings`, never an exception, and never stops the pixel verdict.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from deepfake_detection.inference import content_credentials
from deepfake_detection.inference.content_credentials import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    TrustSettings,
)

# Strongest first: a file's summary is its strongest item.
# A signed manifest that claims nothing about origin (the Nikon Z 9 sample) still outranks
# unsigned text; so does one whose file no longer matches what was signed (the Truepic sample):
# a broken signature is evidence that the file changed, which an EXIF camera name is not.
STRENGTHS = ("signed_ai_declaration", "unsigned_ai_declaration", "signed_capture_claim",
             "signed_manifest", "damaged_manifest", "camera_capture_claim", "editing_software")
# Generator names seen in EXIF Software / PNG text (lower case substrings).
GENERATORS = ("stable diffusion", "midjourney", "dall-e", "dall·e", "firefly", "novelai",
              "comfyui", "automatic1111", "invokeai", "imagen", "gemini", "gpt-4o", "chatgpt",
              "flux", "leonardo", "dreamstudio", "sdxl", "ideogram", "openai")
PNG_GENERATOR_KEYS = {"parameters": "AUTOMATIC1111 / Forge generation parameters",
                      "prompt": "ComfyUI prompt graph", "workflow": "ComfyUI workflow",
                      "invokeai_metadata": "InvokeAI metadata", "sd-metadata": "InvokeAI metadata",
                      "Dream": "InvokeAI / dream parameters"}
# MPO: Pillow's name for JPEGs with extra pictures (Nikon and other cameras write them).
MIME = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
        "TIFF": "image/tiff", "GIF": "image/gif", "AVIF": "image/avif", "HEIF": "image/heic"}
MAX_BYTES = 64 * 2**20  # files above this are not parsed for metadata (the app caps at 25 MB)
MAX_TEXT = 2000  # characters of any one field kept in a record
_SOURCE_TYPE = re.compile(rb"digitalsourcetype/([A-Za-z]+)", re.IGNORECASE)


@dataclass
class Evidence:
    """One claim a file makes: where it was read, how strong it is, what it says."""

    kind: str  # c2pa, xmp, png_text, exif
    strength: str  # one of STRENGTHS
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provenance:
    items: list[Evidence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trust_lists: list[str] = field(default_factory=list)  # what C2PA signers were checked against

    @property
    def strongest(self) -> Evidence | None:
        return min(self.items, key=lambda e: STRENGTHS.index(e.strength), default=None)

    @property
    def summary(self) -> str:
        best = self.strongest
        return best.summary if best else "no provenance found (this is not evidence either way)"

    def declares_ai(self, signed_only: bool = False) -> Evidence | None:
        wanted = ("signed_ai_declaration",) if signed_only else STRENGTHS[:2]
        return next((e for e in sorted(self.items, key=lambda e: STRENGTHS.index(e.strength))
                     if e.strength in wanted), None)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary,
                "strongest": self.strongest.strength if self.strongest else "none",
                "items": [asdict(e) for e in self.items], "warnings": self.warnings,
                "trust_lists": self.trust_lists}


def _clip(value: Any) -> str:
    """Text of at most MAX_TEXT characters, with undecodable bytes replaced, not fatal."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... ({len(text)} chars)"


def read(source: str | Path | bytes, trust: TrustSettings | None = None) -> Provenance:
    """Everything the file declares; never raises for a bad file (see `warnings`). C2PA
    signers are checked against `trust` (default: the shipped C2PA trust list plus what the
    DFD_TRUST_ANCHORS / DFD_ALLOWED_CERTS environment variables name)."""
    trust = trust or TrustSettings.from_env()
    result = Provenance(trust_lists=trust.lists)
    try:
        data = _bytes(source)
    except OSError as error:
        result.warnings.append(f"metadata not read: {error.strerror or error}")
        return result
    if data is None:
        result.warnings.append(f"metadata not read: file larger than {MAX_BYTES // 2**20} MB")
        return result
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, info = image.format, dict(image.info)
            exif = image.getexif()
    except Exception as error:  # noqa: BLE001 - any decoder failure is only a warning here
        result.warnings.append(f"metadata not read: {type(error).__name__}: {_clip(error)}")
        return result
    for reader, args in ((_c2pa, (data, fmt, trust)), (_xmp, (info,)), (_png_text, (info,)),
                         (_exif, (exif,))):
        try:
            result.items += reader(*args)
        except Exception as error:  # noqa: BLE001 - a hostile field must not stop the rest
            result.warnings.append(f"{reader.__name__.strip('_')} metadata unreadable: "
                                   f"{type(error).__name__}: {_clip(error)[:200]}")
    return result


def _bytes(source: str | Path | bytes) -> bytes | None:
    if isinstance(source, bytes):
        return source if len(source) <= MAX_BYTES else None
    path = Path(source)
    if path.stat().st_size > MAX_BYTES:
        return None
    return path.read_bytes()


def _c2pa(data: bytes, fmt: str | None, trust: TrustSettings) -> list[Evidence]:
    if fmt not in MIME:
        return []
    try:
        import c2pa  # noqa: F401 - the optional library, named if missing
    except ImportError as error:
        raise RuntimeError("C2PA not checked: pip install c2pa-python") from error
    found = content_credentials.read_manifests(data, MIME[fmt], trust)
    return [] if found is None else [_c2pa_evidence(content_credentials.describe(found, trust))]


def _c2pa_evidence(facts: dict[str, Any]) -> Evidence:
    """One sentence a person can act on, and the strength the validation codes allow."""
    facts = {k: _clip_all(v) for k, v in facts.items()}
    ai_parts = [i for i in facts["ingredients"]
                if set(i.get("digital_source_types", [])) & set(AI_SOURCE_TYPES)]
    types = set(facts["digital_source_types"])
    by = ", ".join(facts["software_agents"] or facts["claim_generator"]) or "unnamed software"
    if types & set(AI_SOURCE_TYPES):
        kind = "ai"
        what = ("a picture edited with a generative AI tool" if types <= {
            "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"} else
            "says it was generated by AI") + f" ({by})"
    elif ai_parts:
        kind, what = "ai", (f"an edit ({', '.join(facts['actions']) or 'no actions listed'}) "
                            f"of an image its ingredient's manifest says was generated by AI "
                            f"({', '.join(ai_parts[0].get('software_agents') or ['unnamed'])})")
    elif types & set(CAPTURE_SOURCE_TYPES):
        kind, what = "capture", "says it was captured by a camera"
    else:
        kind = "other"
        what = (f"records {', '.join(facts['actions'])} by {by}" if facts["actions"] else
                f"makes no claim about how the picture was made (claim generator: {by})")
    certificate = {"expired": "; the certificate has expired since",
                   "revoked": "; the certificate has been revoked"}.get(facts["certificate"], "")
    integrity = ("; the file still matches what was signed" if facts["intact"] else
                 f"; but {facts['integrity']}")
    summary = (f"C2PA: signed by {facts['signer']} ({facts['trust']}): {what}{certificate}"
               f"{integrity}")
    intact = facts["intact"]
    strength = {"ai": ("signed_ai_declaration", "unsigned_ai_declaration"),
                "capture": ("signed_capture_claim", "camera_capture_claim"),
                "other": ("signed_manifest", "damaged_manifest")}[kind][0 if intact else 1]
    facts["validation"] = (f"tampered: {facts['integrity']}" if not intact else
                           f"valid, signer {facts['trust']}" if facts["trusted"] else
                           f"untrusted signer: {facts['trust']} (signature valid)")
    return Evidence("c2pa", strength, summary, facts)


def _clip_all(value: Any) -> Any:
    """`_clip` through lists and dicts (a manifest's strings can be any length)."""
    if isinstance(value, list):
        return [_clip_all(v) for v in value[:100]]
    if isinstance(value, dict):
        return {k: _clip_all(v) for k, v in value.items()}
    return _clip(value) if isinstance(value, str) else value


def _xmp(info: dict) -> list[Evidence]:
    packet = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
    if isinstance(packet, str):
        packet = packet.encode("utf-8", "replace")
    found = {m.decode() for m in _SOURCE_TYPE.findall(packet[:4 * 2**20])}
    ai, capture = sorted(found & set(AI_SOURCE_TYPES)), sorted(found & set(CAPTURE_SOURCE_TYPES))
    if not (ai or capture):
        return []
    words = "; ".join(f"{content_credentials.SOURCE_TYPE_WORDS[t]} ({t})" for t in ai or capture)
    return [Evidence("xmp", "unsigned_ai_declaration" if ai else "camera_capture_claim",
                     f"IPTC digital source type in XMP: {words} (unsigned text)",
                     {"digital_source_types": sorted(found)})]


def _png_text(info: dict) -> list[Evidence]:
    items = []
    for key, label in PNG_GENERATOR_KEYS.items():
        if key in info and isinstance(info[key], (str, bytes)):
            items.append(Evidence("png_text", "unsigned_ai_declaration",
                                  f"PNG text chunk '{key}': {label} (unsigned text)",
                                  {"key": key, "value": _clip(info[key])}))
    software, comment = str(info.get("Software", "")), info.get("Comment")
    if "novelai" in software.lower() or (isinstance(comment, str) and '"steps"' in comment):
        items.append(Evidence("png_text", "unsigned_ai_declaration",
                              f"PNG text says NovelAI ({_clip(software) or 'Comment settings'}; "
                              "unsigned text)", {"Software": _clip(software),
                                                 "Comment": _clip(comment or "")}))
    return items


def _exif(exif: Image.Exif) -> list[Evidence]:
    make, model = _clip(exif.get(271, "")).strip("\x00 "), _clip(exif.get(272, "")).strip("\x00 ")
    software = _clip(exif.get(305, "")).strip("\x00 ")
    items = []
    if software and any(g in software.lower() for g in GENERATORS):
        items.append(Evidence("exif", "unsigned_ai_declaration",
                              f"EXIF Software names a generator: {software} (unsigned text)",
                              {"Software": software}))
    elif software:
        items.append(Evidence("exif", "editing_software",
                              f"EXIF Software: {software} (unsigned text)", {"Software": software}))
    if make or model:
        camera = " ".join(p for p in (make, model) if p)
        items.append(Evidence("exif", "camera_capture_claim",
                              f"EXIF names a camera: {camera} (unsigned text, easily copied)",
                              {"Make": make, "Model": model}))
    return items
