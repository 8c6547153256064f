"""What files declare about themselves, on files the tests make: PNG text chunks, EXIF, XMP,
C2PA manifests signed here with a throwaway certificate (untrusted signer), the same file with
one byte of pixel data changed (tampered) and stripped (no provenance), and hostile metadata."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from deepfake_detection.inference import provenance
from deepfake_detection.inference.checking import join
from deepfake_detection.inference.detector import Prediction
from deepfake_detection.interfaces.cli import main

from .crafted import pixels, sign_jpeg, signer

c2pa = pytest.importorskip("c2pa")
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-'
       'rdf-syntax-ns#"><rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/'
       '2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/'
       'digitalsourcetype/{}"/></rdf:RDF></x:xmpmeta>')


def _jpeg(**save) -> bytes:
    buffer = io.BytesIO()
    pixels().save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def _png(**text) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    pixels().save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def signed() -> bytes:
    manifest = {"claim_generator_info": [{"name": "test-generator", "version": "1.0"}],
                "title": "generated.jpg", "assertions": [{"label": "c2pa.actions", "data": {
                    "actions": [{"action": "c2pa.created", "digitalSourceType": AI,
                                 "softwareAgent": {"name": "Test Diffusion 2.0"}}]}}]}
    return sign_jpeg(manifest, signer())


def test_png_text_from_a1111_and_comfyui_is_an_unsigned_ai_declaration():
    a1111 = provenance.read(_png(parameters="a cat\nSteps: 20, Sampler: Euler a, Seed: 1"))
    comfy = provenance.read(_png(prompt=json.dumps({"3": {"class_type": "KSampler"}})))
    for prov, key in ((a1111, "parameters"), (comfy, "prompt")):
        assert prov.strongest.strength == "unsigned_ai_declaration"
        assert prov.strongest.details["key"] == key and prov.declares_ai(signed_only=True) is None


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_keep_their_exif(fmt):
    """An iPhone HEIC (or an AVIF) names its camera as a JPEG does: the metadata survives
    the format (read through pillow-heif / Pillow)."""
    exif = Image.Exif()
    exif[271], exif[272] = "Apple", "iPhone 15 Pro"
    buffer = io.BytesIO()
    pixels().save(buffer, fmt, exif=exif.tobytes(), quality=90)
    prov = provenance.read(buffer.getvalue())
    assert prov.strongest.strength == "camera_capture_claim" and not prov.warnings
    assert "Apple iPhone 15 Pro" in prov.summary


def test_exif_camera_and_software():
    exif = Image.Exif()
    exif[271], exif[272], exif[305] = "Canon", "Canon EOS 5D Mark IV", "Adobe Photoshop 25.0"
    prov = provenance.read(_jpeg(exif=exif))
    assert {e.strength for e in prov.items} == {"camera_capture_claim", "editing_software"}
    assert "Canon EOS 5D" in prov.summary
    exif[305] = "Midjourney v6"
    assert provenance.read(_jpeg(exif=exif)).strongest.strength == "unsigned_ai_declaration"


@pytest.mark.parametrize("kind, strength", [("trainedAlgorithmicMedia", "unsigned_ai_declaration"),
                                            ("digitalCapture", "camera_capture_claim")])
def test_xmp_iptc_digital_source_type(kind, strength):
    prov = provenance.read(_jpeg(xmp=XMP.format(kind).encode()))
    assert prov.strongest.strength == strength and kind in prov.strongest.details[
        "digital_source_types"]


def test_signed_c2pa_untrusted_signer_then_tampered_then_stripped(signed):
    prov = provenance.read(signed)
    item = prov.strongest
    assert item.kind == "c2pa" and item.strength == "signed_ai_declaration"
    assert item.details["signer"] == "Throwaway Test Org"
    assert item.details["validation"].startswith("untrusted signer")
    assert item.details["software_agents"] == ["Test Diffusion 2.0"]
    tampered = bytearray(signed)
    tampered[-200] ^= 0xFF  # inside the entropy-coded pixels, after the manifest
    bad = provenance.read(bytes(tampered)).strongest
    assert bad.details["validation"].startswith("tampered")
    assert bad.strength == "unsigned_ai_declaration"
    stripped = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(stripped, "JPEG", quality=95)
    none = provenance.read(stripped.getvalue())
    assert none.items == [] and none.summary.startswith("no provenance found")


def test_hostile_metadata_is_a_warning_and_the_pixels_are_still_scored(signed, tmp_path,
                                                                       tiny_bundle):
    garbled = bytearray(signed)  # the manifest store (JUMBF in APP11) overwritten with junk
    start = signed.index(b"\xff\xeb") + 64
    garbled[start:start + 400] = np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes()
    prov = provenance.read(bytes(garbled))
    assert prov.warnings and prov.warnings[0].startswith("c2pa metadata unreadable")
    bad_utf8 = provenance.read(_jpeg(xmp=b"\xff\xfe" + b"\x00digitalsourcetype/" * 3000))
    assert bad_utf8.items == []
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(_png(parameters="x" * 5000)[:-40])
    assert provenance.read(truncated).warnings
    path = tmp_path / "hostile.jpg"
    path.write_bytes(bytes(garbled))
    out = tmp_path / "out.json"
    code = main(["predict", str(path), "--model", str(tiny_bundle[1]), "--json", "-o", str(out)])
    row = json.loads(out.read_text())[0]
    assert code == 0 and row["prob_fake"] is not None and row["provenance"]["warnings"]


def test_a_signed_tool_and_the_pixels_family_are_both_stated(signed):
    """A fake verdict with a family guess, in a file whose signed credentials name the tool:
    the record says which of the two said what."""
    fake = Prediction(source="x", prob_fake=0.9, label="FAKE", verdict="fake", threshold=0.5,
                      generator_family="FLUX", generator_family_prob=0.8)
    joined = join(fake, provenance.read(signed))
    note = next(w for w in joined.warnings if "family" in w)
    assert "signed C2PA declaration names Test Diffusion 2.0" in note
    assert "the pixels' guess at the family is FLUX (80%)" in note
    assert joined.generator_family == "FLUX"


def test_disagreement_is_stated_and_an_untrusted_signer_does_not_decide(signed):
    prov = provenance.read(signed)
    real = Prediction(source="x", prob_fake=0.1, label="REAL", verdict="real", threshold=0.5)
    joined = join(real, prov)
    assert joined.verdict == "real" and joined.verdict_basis == "pixels"
    assert joined.warnings[0].startswith("pixels say real") and "Throwaway" in joined.warnings[0]
    untrusted = join(Prediction(source="x", prob_fake=0.1, label="REAL", verdict="real",
                                threshold=0.5), prov, trust_metadata=True)
    assert untrusted.verdict == "real"  # a signer on no trust list does not decide (see
    # test_content_credentials for one that does)
    unsigned = join(Prediction(source="x", prob_fake=0.1, label="REAL", verdict="real",
                               threshold=0.5), provenance.read(_png(parameters="a cat")),
                    trust_metadata=True)
    assert unsigned.verdict == "real" and unsigned.warnings[0].startswith("pixels say real")


def test_predict_records_carry_provenance(signed, tmp_path, tiny_bundle, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "signed.jpg").write_bytes(signed)
    (tmp_path / "in" / "plain.png").write_bytes(_png())
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(tmp_path / "in"), "--model", str(tiny_bundle[1]), "--jsonl",
                 "-o", str(out)]) == 0
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.open())}
    assert rows["signed.jpg"]["provenance"]["strongest"] == "signed_ai_declaration"
    assert rows["plain.png"]["provenance"]["strongest"] == "none"
    csv_out = tmp_path / "out.csv"
    assert main(["predict", str(tmp_path / "in"), "--model", str(tiny_bundle[1]), "--csv",
                 "-o", str(csv_out), "--trust-metadata"]) == 0
    text = csv_out.read_text()
    assert "C2PA: signed by Throwaway Test Org" in text and ",pixels," in text  # untrusted
