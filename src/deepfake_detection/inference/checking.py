"""One record per image from two kinds of evidence: the pixels (a Detector) and what the file
declares about itself (`provenance`). Neither silently overrides the other: when they disagree
the record says so first in its warnings, and only `trust_metadata` lets a C2PA AI declaration
whose signer is on a trust list in use, in a file that still matches what was signed, set the
verdict (`verdict_basis` then says so).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from deepfake_detection.imaging import ImageSource, as_sources
from deepfake_detection.inference import provenance
from deepfake_detection.inference.content_credentials import TrustSettings
from deepfake_detection.inference.detector import Detector, Prediction
from deepfake_detection.inference.detectors import AutoDetector

NO_FILE = {"summary": "not read: the image was given as pixels, not as a file", "items": [],
           "strongest": "none", "warnings": []}


def join(result: Prediction, prov: provenance.Provenance | None,
         trust_metadata: bool = False) -> Prediction:
    """Attach the file's provenance to a pixel prediction and say where they disagree."""
    result.provenance = prov.to_dict() if prov else dict(NO_FILE)
    if result.error or prov is None:
        return result
    declared = prov.declares_ai()
    strongest = prov.strongest
    notes = []
    if declared and result.verdict != "fake":
        notes.append(f"pixels say {result.verdict} ({result.prob_fake:.0%} AI); "
                     f"the file's {declared.summary}")
    elif (result.verdict == "fake" and strongest and
          strongest.strength in ("signed_capture_claim", "camera_capture_claim")):
        notes.append(f"pixels say fake ({result.prob_fake:.0%} AI); the file's "
                     f"{strongest.summary}")
    signed = prov.declares_ai(signed_only=True)
    if trust_metadata and signed and signed.details.get("trusted"):
        notes.append(f"verdict set by the file's signed C2PA AI declaration (--trust-metadata); "
                     f"the pixels alone said {result.verdict}")
        result.verdict, result.label, result.verdict_basis = "fake", "FAKE", "c2pa"
    if signed and result.generator_family:
        tool = ", ".join(signed.details.get("software_agents")
                         or signed.details.get("claim_generator") or ["unnamed software"])
        notes.append(f"the file's signed C2PA declaration names {tool}; the pixels' guess at the "
                     f"family is {result.generator_family} ({result.generator_family_prob:.0%})")
    result.warnings = notes + result.warnings
    return result


class Checker:
    """A Detector (or the automatic choice) plus the provenance reader: what `predict`, `scan`
    and the app report. `trust_metadata`: a trusted, untampered C2PA AI declaration sets the
    verdict. `trust`: the lists C2PA signers are checked against (default: the shipped C2PA
    trust list and the DFD_TRUST_ANCHORS / DFD_ALLOWED_CERTS files)."""

    def __init__(self, detector: Detector | AutoDetector, trust_metadata: bool = False,
                 trust: TrustSettings | None = None):
        self.detector, self.trust_metadata = detector, trust_metadata
        self.trust = (trust or TrustSettings.from_env()).check()

    def _read(self, source: ImageSource) -> provenance.Provenance | None:
        return (provenance.read(source, self.trust) if isinstance(source, (str, Path, bytes))
                else None)

    def check(self, source: ImageSource) -> Prediction:
        return join(self.detector.predict(source), self._read(source), self.trust_metadata)

    def check_tiles(self, source: ImageSource, grid: int) -> Prediction:
        """`check` with the detector's tiled scoring (`predict --tiles`)."""
        return join(self.detector.predict_tiles(source, grid), self._read(source),
                    self.trust_metadata)

    def check_many(self, sources: Iterable[ImageSource] | str | Path, batch_size: int = 256,
                   workers: int | None = None) -> Iterator[Prediction]:
        """`predict_many` in input order, each record joined with its file's provenance;
        `sources` may be one folder (recursive) or glob."""
        pending: deque[ImageSource] = deque()

        def remember(items: Iterable[ImageSource]) -> Iterator[ImageSource]:
            for item in as_sources(items):
                pending.append(item)
                yield item

        for result in self.detector.predict_many(remember(sources), batch_size, workers):
            yield join(result, self._read(pending.popleft()), self.trust_metadata)
