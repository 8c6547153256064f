"""The generator-family head: its open-set rule on features made here, its place in every record,
and the shipped native detector's head on mixed-256 test crops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepfake_detection.families import FAMILIES, family_of
from deepfake_detection.inference.attribution import UNKNOWN, FamilyHead, open_set
from deepfake_detection.training import attribution as attr

from .conftest import shared_dataset


def _clusters(rng, families: list[int], n: int = 60, dims: int = 8, spread: float = 1.0):
    """Gaussian clusters, one per family index, far apart (centres 8 apart on the axes)."""
    centres = {f: np.eye(dims)[f % dims] * 8 + (f // dims) * 3 for f in families}
    x = np.concatenate([centres[f] + rng.normal(0, spread, (n, dims)) for f in families])
    return x, np.repeat(families, n)


def test_open_set_probabilities_keep_room_for_an_unseen_generator():
    scores = np.array([[4.0, 0.0, 0.0], [0.5, 0.4, 0.3]])
    probs = open_set(scores, 1.0, 2.0)
    assert np.allclose(probs.sum(1), 1) and probs.shape == (2, 4)
    assert probs[0, 0] > 0.5 and probs[1, :-1].max() < 0.5  # a flat row goes to "unknown"
    assert np.allclose(open_set(scores, 1.0, -np.inf)[:, -1], 0)


def test_a_family_is_named_from_50_percent_and_the_runner_up_is_the_next_answer():
    head = FamilyHead(("sd1", "flux", "gpt"), ("SD", "FLUX", "GPT"), ("l",), np.zeros(1),
                      np.ones(1), np.zeros((3, 1)), np.zeros(3))
    named = head.attribute(np.array([0.1, 0.7, 0.15, 0.05]))
    assert named["generator_family"] == "FLUX" and named["generator_family_prob"] == 0.7
    assert named["generator_runner_up"] == {"family": "GPT", "prob": 0.15}
    unknown = head.attribute(np.array([0.2, 0.3, 0.1, 0.4]))
    assert unknown["generator_family"] == UNKNOWN and unknown["generator_family_prob"] == 0.4
    assert unknown["generator_runner_up"] == {"family": "FLUX", "prob": 0.3}


def test_fit_names_known_families_and_leaves_a_held_out_one_mostly_unknown(tmp_path):
    """Separable clusters: the calibrated head names its families right; the fakes of a family
    it never saw (a cluster elsewhere) are named for at most the rate asked for on validation."""
    rng = np.random.default_rng(0)
    known = [0, 1, 2, 3, 4]
    x, y = _clusters(rng, known)
    xv, yv = _clusters(rng, known, n=30)
    head = attr.fit_head(x, y, ["stage"], c=0.1)
    held = attr.held_out_scores(x, y, xv, yv, c=0.1)
    temperature, unknown = attr.calibrate(head, xv, yv, held, unknown_rate=0.2)
    head = dataclasses.replace(head, temperature=temperature, unknown_logit=unknown)
    assert attr.named_share(held, temperature, unknown) <= 0.2
    xt, yt = _clusters(rng, known, n=20)
    probs = head.probabilities(xt)
    keys = np.array([list(FAMILIES).index(k) for k in head.families])
    assert np.mean(keys[probs[:, :-1].argmax(1)] == yt) > 0.95
    head.save(tmp_path)
    again = FamilyHead.load(tmp_path)
    assert again.names == head.names and np.allclose(again.probabilities(xt), probs)


def test_families_cover_every_fake_source_of_mixed256():
    assert family_of("ddb") == "sd1" and family_of("nanobanana") == "gemini"
    assert family_of("coco") is None and len(FAMILIES) == 12


def test_records_name_a_family_only_for_an_ai_verdict(tiny_bundle, tmp_path):
    """A head in the bundle: `fake` records carry the family (table and CSV too), `real` and
    `uncertain` ones say nothing about it."""
    import csv
    import io
    import shutil

    from deepfake_detection.inference import novelty
    from deepfake_detection.inference.detector import Detector
    from deepfake_detection.interfaces import cli
    from deepfake_detection.training.trainer import novelty_features

    root, bundle_dir = tiny_bundle
    copy = tmp_path / "with_head"
    shutil.copytree(bundle_dir, copy)
    detector = Detector.load(copy)
    layers = novelty.stage_layers(detector.model)
    paths = sorted(str(p) for p in (root / "data" / "train" / "FAKE").iterdir())
    feats = novelty_features(detector.bundle, paths)
    y = np.arange(len(paths)) % 2  # two "families" (sd1, sdxl), to have something to name
    head = dataclasses.replace(attr.fit_head(feats, y, layers, c=1.0), unknown_logit=-50.0)
    head.save(copy)
    with_head = Detector.load(copy, uncertain_margin=0.0)  # its threshold is near 1
    records = list(with_head.predict_many(sorted(
        str(p) for p in (root / "data" / "test").rglob("*.png"))))
    fakes = [r for r in records if r.verdict == "fake"]
    assert fakes and all(r.generator_family in head.names for r in fakes)
    assert all(r.generator_family is None for r in records if r.verdict != "fake")
    out = tmp_path / "r.csv"
    assert cli.main(["predict", str(root / "data" / "test"), "--model", str(copy), "--csv",
                     "-o", str(out), "--uncertain-margin", "0"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["generator_family"] for r in rows if r["verdict"] == "fake"} <= set(head.names)
    assert all(r["generator_family"] == "" for r in rows if r["verdict"] != "fake")


def test_the_shipped_native_head_names_gan_faces():
    """20 StyleGAN faces of mixed-256 test: most are called AI and named GAN faces (the head
    gets 0.96 of this family right in benchmarks/attribution.md)."""
    from deepfake_detection.inference.detectors import load

    test = shared_dataset("mixed-256") / "test"
    native = load("native")
    if native.family_head is None:
        pytest.fail("the shipped native bundle has no family_head.npz")
    gan = sorted((test / "FAKE").glob("tpdne_*"))[:20]
    named = [r.generator_family for r in native.predict_many([str(p) for p in gan])]
    assert sum(f == FAMILIES["gan_faces"][0] for f in named) >= 14, named


def test_the_app_says_the_family_in_one_line_under_an_ai_verdict_only():
    from deepfake_detection.inference.detector import Prediction
    from deepfake_detection.interfaces.app import family_line

    def record(verdict, family, prob):
        return Prediction(source="x", prob_fake=0.9, verdict=verdict, generator_family=family,
                          generator_family_prob=prob,
                          generator_runner_up={"family": "SDXL", "prob": 0.1})

    named = family_line(record("fake", "FLUX", 0.8))
    assert "looks most like **FLUX** (80%; next SDXL 10%)" in named and named.count("\n") == 2
    assert "a generator it was not trained on" in family_line(record("fake", UNKNOWN, 0.6))
    assert family_line(record("uncertain", "FLUX", 0.8)) == ""
    assert family_line(record("fake", None, None)) == ""
