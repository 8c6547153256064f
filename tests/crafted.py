"""Files the tests make: C2PA manifests signed with a throwaway certificate, and payloads of
the kind an attacker puts into metadata (markup, links, escape sequences, formulas)."""

from __future__ import annotations

import datetime
import io

import c2pa
import numpy as np
from PIL import Image


def signer(org: str = "Throwaway Test Org", common_name: str = "Test Signer"):
    """A throwaway CA and an ES256 signing certificate it issued (on no trust list); `org` and
    `common_name` name the signer (the security tests put hostile text there)."""
    return signer_and_chain(org, common_name)[0]


def signer_and_chain(org: str = "Throwaway Test Org", common_name: str = "Test Signer"):
    """(`signer`'s Signer, its PEM chain: the signing certificate, then the CA's)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])

    def usage(sign: bool):
        return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                             key_encipherment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                             encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, public, ca: bool):
        builder = (x509.CertificateBuilder().subject_name(name(subject))
                   .issuer_name(name("Throwaway Test CA")).public_key(public)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
                   .add_extension(usage(not ca), True))
        if not ca:  # the C2PA certificate profile asks for an EKU and key identifiers
            builder = (builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), False))
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    chain = cert(common_name, key.public_key(), False) + cert("Throwaway Test CA",
                                                                ca_key.public_key(), True)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, private, None)), chain


def pixels(seed: int = 0, size: int = 64) -> Image.Image:
    """Seeded random RGB pixels: a picture with no metadata of its own."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3),
                                                                  np.uint8))


def sign_jpeg(manifest: dict, sign, seed: int = 0) -> bytes:
    """A JPEG of `pixels(seed)` carrying `manifest`, signed by `sign` (a c2pa.Signer)."""
    source, out = io.BytesIO(), io.BytesIO()
    pixels(seed).save(source, "JPEG", quality=90)
    source.seek(0)
    with c2pa.Builder(manifest) as builder:
        builder.sign(sign, "image/jpeg", source, out)
    return out.getvalue()


def signed_with_chain(title: str) -> tuple[bytes, str]:
    """(a JPEG with a signed C2PA manifest declaring AI generation, the signer's PEM chain)."""
    manifest = {"claim_generator_info": [{"name": "test-generator", "version": "1.0"}],
                "title": title, "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created", "softwareAgent": {"name": "Test Diffusion"},
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                         "trainedAlgorithmicMedia"}]}}]}
    sign, chain = signer_and_chain()
    return sign_jpeg(manifest, sign, seed=3), chain.decode()


TRACKER = "127.0.0.1:9"  # a closed port: a request there is what an attacker would log


def payload(tracker: str = TRACKER) -> str:
    """One string with each trick that made metadata act: markup that fetches, Markdown links and
    images, a script URL, a bare URL, terminal escapes, a spreadsheet formula, a bidi override,
    a newline that starts a heading."""
    return " | ".join([
        f'<img src="http://{tracker}/track.png"><b>bold</b>', f"[click me](http://{tracker}/phish)",
        f"![pixel](http://{tracker}/md.png)", "[run](javascript:alert(1))",
        f"http://{tracker}/bare", "\x1b[2J\x1b[31mREAL\x1b[0m\x07\x9b31m", "\u202egpj.exe",
        "line\n# heading"])


# A certificate subject field holds at most 64 characters: markup that fetches, an escape, a
# formula start, as in contentauth/c2pa-attacks' sample/malicious_certificate.pem.
SUBJECT = '@<img src="//127.0.0.1:9/c.png">\x1b[2J[x](//127.0.0.1:9)'
FORMULA = '=HYPERLINK("http://127.0.0.1:9/x","open")'


def signed_attack(text: str) -> bytes:
    """A JPEG whose C2PA manifest (signed, untrusted) puts `text` in the claim generator, the
    software agent, the author, the signer's organisation and common name, and whose actions
    assertion carries a very long and a deeply nested value."""
    nested: dict = {"leaf": text}
    for _ in range(60):
        nested = {"n": nested}
    manifest = {
        "claim_generator_info": [{"name": text, "version": "1.0"}], "title": text,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "softwareAgent": {"name": text},
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                     "trainedAlgorithmicMedia",
                "parameters": {"description": "A" * 100_000, "nested": nested}}]}},
            {"label": "stds.schema-org.CreativeWork", "data": {
                "@context": "https://schema.org", "@type": "CreativeWork",
                "author": [{"@type": "Person", "name": text}]}}]}
    return sign_jpeg(manifest, signer(org=SUBJECT, common_name=SUBJECT))


def png_attack(text: str) -> bytes:
    """A PNG whose text chunks (A1111 parameters, NovelAI Software and Comment) carry `text`."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in (("parameters", text), ("Software", "NovelAI " + text),
                       ("Comment", text), ("Title", FORMULA)):
        info.add_itxt(key, value)
    out = io.BytesIO()
    pixels(1).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def exif_attack(text: str) -> bytes:
    """A JPEG whose EXIF Make, Model and Software and whose XMP carry `text`."""
    exif = Image.Exif()
    exif[271], exif[272], exif[305] = text, FORMULA, "Stable Diffusion " + text
    xmp = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
           f'22-rdf-syntax-ns#"><rdf:Description><dc:title>{text}</dc:title>'
           '</rdf:Description></rdf:RDF></x:xmpmeta>')
    out = io.BytesIO()
    pixels(2).save(out, "JPEG", quality=90, exif=exif, xmp=xmp.encode("utf-8", "replace"))
    return out.getvalue()


def hostile_name() -> str:
    """A file name (no slash, so any file system takes it) that is a formula, markup and an
    escape sequence at once."""
    return '=cmd|"calc"!A0 <img src=x> \x1b[2J [a](b).png'
