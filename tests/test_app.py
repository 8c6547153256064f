"""The Gradio app as a real localhost server: gradio_client calls, Spaces' app.py, a browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deepfake_detection.inference.detector import Detector
from deepfake_detection.interfaces.app import launch, model_card

from .conftest import REPO

gradio_client = pytest.importorskip("gradio_client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


@pytest.fixture(scope="module")
def served(tiny_bundle):
    port = free_port()
    demo = launch(str(tiny_bundle[1]), host="127.0.0.1", port=port, block=False)
    detector = Detector.load(tiny_bundle[1])
    url = f"http://127.0.0.1:{port}/"
    wait_for(url)
    yield url, detector, tiny_bundle[0]
    demo.close()


def _images(root, cls="FAKE", n=2):
    return sorted(str(p) for p in (root / "data" / "test" / cls).iterdir())[:n]


def test_client_analyze_matches_the_detector(served):
    url, detector, root = served
    client = gradio_client.Client(url, verbose=False)
    path = _images(root)[0]
    text, cam, warnings, details, panel = client.predict(
        gradio_client.handle_file(path), api_name="/analyze")
    expected = detector.predict(path)
    assert details["prob_fake"] == pytest.approx(expected.prob_fake, abs=1e-5)
    assert details["verdict"] == expected.verdict and f"{expected.prob_fake:.1%}" in text
    assert os.path.isfile(cam) and warnings
    assert "no provenance found" in panel and details["provenance"]["strongest"] == "none"


def test_client_predict_matches_the_cli_records(served):
    url, detector, root = served
    client = gradio_client.Client(url, verbose=False)
    paths = _images(root, "REAL", 3)
    rows = client.predict([gradio_client.handle_file(p) for p in paths], api_name="/predict")
    expected = [detector.predict(p) for p in paths]
    assert [r["prob_fake"] for r in rows] == pytest.approx([e.prob_fake for e in expected],
                                                           abs=1e-5)


def test_corrupt_upload_gives_a_message_not_a_crash(served, tmp_path):
    url, _, root = served
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    client = gradio_client.Client(url, verbose=False)
    rows = client.predict([gradio_client.handle_file(str(bad)),
                           gradio_client.handle_file(_images(root)[0])], api_name="/predict")
    assert rows[0]["error"] == "not an image file PIL can read" and rows[1]["error"] is None
    assert rows[0]["source"] == "corrupt.jpg"  # no server path in what users see


def test_oversized_upload_is_refused(served, tmp_path):
    url, _, _ = served
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (26 * 2**20))
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(Exception, match="(?i)size|large"):
        client.predict([gradio_client.handle_file(str(big))], api_name="/predict")


def test_model_card_summarises_the_bundle(tiny_bundle):
    card = model_card(Detector.load(tiny_bundle[1]))
    assert "resnet_small" in card and "threshold" in card.lower()


def test_spaces_app_py_serves_the_bundled_detector(tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", 180)
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        image = tmp_path / "x.png"
        from PIL import Image

        Image.new("RGB", (32, 32), (120, 130, 140)).save(image)
        rows = client.predict([gradio_client.handle_file(str(image))], api_name="/predict")
        assert rows[0]["verdict"] == Detector.load().predict(image).verdict
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("DFD_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is missing but DFD_REQUIRE_BROWSER=1 (see scripts/test.sh)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    pytest.importorskip("playwright")
    return path


def test_browser_upload_shows_the_verdict(served, tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from screenshot_app import screenshot_verdict

    url, detector, root = served
    path = _images(root)[0]
    text = screenshot_verdict(url, path, tmp_path / "shot.png", chromium_path())
    assert "Probability it is AI-generated" in text
    assert f"{detector.predict(path).prob_fake:.1%}" in text
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_the_visitor_picks_the_detector_through_the_api(served):
    """The app's own detector first, the shipped ones beside it; the record names the one that
    answered."""
    url, detector, root = served
    client = gradio_client.Client(url, verbose=False)
    path = _images(root)[0]
    *_, details, _ = client.predict(gradio_client.handle_file(path), "cifake",
                                    api_name="/analyze")
    expected = Detector.load().predict(path)
    assert details["detector"] == "cifake" and details["operating_point"] == "balanced"
    assert details["prob_fake"] == pytest.approx(expected.prob_fake, abs=1e-5)
    text, *_, details, _ = client.predict(gradio_client.handle_file(path), "cifake", "strict",
                                          api_name="/analyze")
    assert details["operating_point"] == "strict" and "strict operating point" in text
    assert details["threshold"] == pytest.approx(Detector.load().at("strict").threshold)
    assert details["prob_fake"] == pytest.approx(expected.prob_fake, abs=1e-5)


def test_uploads_are_cleaned_and_work_is_queued(tiny_bundle):
    from deepfake_detection.interfaces import app

    demo = app.build_demo(Detector.load(tiny_bundle[1]), show_examples=False)
    assert demo.delete_cache == app.DELETE_CACHE  # Gradio deletes old uploads, all at shutdown
    assert demo._queue.max_size == app.QUEUE_SIZE
    assert demo._queue.default_concurrency_limit == app.CONCURRENCY
    pick = app.Choices(Detector.load(tiny_bundle[1]))
    assert pick.names[1:] == [n for n in ("cifake", "native", "robust")
                              if (app.detectors.BUNDLES.get(n) or REPO).exists()
                              and n in app.detectors.BUNDLES]
    with pytest.raises(ValueError, match="unknown detector"):
        pick("nope")


def test_app_py_listens_on_localhost_unless_on_spaces():
    from deepfake_detection.interfaces.app import default_host

    assert default_host({}) == "127.0.0.1"
    assert default_host({"SPACE_ID": "user/space"}) == "0.0.0.0"
    assert default_host({"SPACE_ID": "u/s", "GRADIO_SERVER_NAME": "10.0.0.2"}) == "10.0.0.2"


def _upload_in_browser(url: str, image, chromium: str) -> dict:
    """Upload `image` in the one-image tab; what the page then shows and what it fetched."""
    sys.path.insert(0, str(REPO / "scripts"))
    from playwright.sync_api import sync_playwright
    from screenshot_app import CHROMIUM_FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(str(image))
            page.get_by_role("button", name="Check image").click()
            page.locator("#verdict").get_by_text("Probability it is AI-generated").wait_for(
                timeout=60_000)
            page.wait_for_timeout(1500)  # let every panel render (and any image load)
            panels = "#verdict, #warnings, #provenance"
            return {"verdict": page.locator("#verdict").inner_text(),
                    "page": page.locator("body").inner_text(),
                    "provenance": page.locator("#provenance").inner_text(),
                    "elements": page.locator(f":is({panels}) :is(img, a, iframe, script, b)"
                                             ).count(),
                    "requests": requests}
        finally:
            browser.close()


def test_browser_uncertain_shows_one_verdict_and_no_class(tiny_bundle, tmp_path):
    """With the whole band uncertain, the page says so and names no class anywhere."""
    from deepfake_detection.interfaces.app import MAX_FILE_SIZE, build_demo

    chromium = chromium_path()
    port = free_port()
    detector = Detector.load(tiny_bundle[1], uncertain_margin=0.49)
    image = next(p for p in _images(tiny_bundle[0], "REAL", 12) + _images(tiny_bundle[0], n=12)
                 if detector.predict(p).verdict == "uncertain")
    demo = build_demo(detector, show_examples=False)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                max_file_size=MAX_FILE_SIZE)
    try:
        shown = _upload_in_browser(f"http://127.0.0.1:{port}/", image, chromium)
    finally:
        demo.close()
    assert shown["verdict"].startswith("Uncertain")
    for verdict in ("Likely AI-generated", "No sign of AI generation found", "(REAL)", "(FAKE)"):
        assert verdict not in shown["page"]


def test_browser_shows_crafted_metadata_as_text_and_fetches_nothing(served, tmp_path):
    from . import crafted

    chromium = chromium_path()
    url, _, _ = served
    hostile = tmp_path / "signed.jpg"
    hostile.write_bytes(crafted.signed_attack(crafted.payload()))
    shown = _upload_in_browser(url, hostile, chromium)
    assert shown["elements"] == 0
    assert not [u for u in shown["requests"] if crafted.TRACKER in u or "javascript:" in u]
    assert '<img src="http://127.0.0.1:9/track.png">' in shown["provenance"]  # shown, as text
    assert "[click me](http://127.0.0.1:9/phish)" in shown["provenance"]


def test_sigterm_removes_the_uploads_and_user_errors_leave_no_traceback(tiny_bundle, tmp_path):
    """`deepfake-detection app` as served: a good upload, the expected user errors (not an
    image, too large, no file), then SIGTERM (what `kill`, systemd and docker send). The upload
    folder is empty afterwards, as after Ctrl-C, and the server log holds one line per refused
    upload and no traceback."""
    import signal

    from PIL import Image

    uploads = tmp_path / "uploads"
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(uploads), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "deepfake_detection", "app", "--model",
                             str(tiny_bundle[1]), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, 180)
        client = gradio_client.Client(url, verbose=False)
        good = tmp_path / "good.png"
        Image.new("RGB", (32, 32), (120, 130, 140)).save(good)
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"\xff\xd8\xff not really")
        big = tmp_path / "big.png"
        big.write_bytes(b"\0" * (26 * 2**20))
        client.predict(gradio_client.handle_file(str(good)), api_name="/analyze")
        assert [p for p in uploads.rglob("*") if p.is_file()], "the upload should be stored"
        for path in (bad, big):
            with pytest.raises(Exception):  # noqa: B017 - the message is checked elsewhere
                client.predict(gradio_client.handle_file(str(path)), api_name="/analyze")
        with pytest.raises(Exception):  # noqa: B017
            client.predict(None, api_name="/analyze")
        rows = client.predict([gradio_client.handle_file(str(bad))], api_name="/predict")
        assert rows[0]["error"]
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert [p for p in uploads.rglob("*") if p.is_file()] == []
    assert "Traceback" not in log, log
    assert log.count("upload refused") == 1 and "batch of 1: 1 unreadable" in log


def test_browser_batch_of_50_downloads_the_clis_csv(served, tiny_bundle, tmp_path,
                                                    monkeypatch):
    """The batch tab in a browser: 50 images (one unreadable, one named like a spreadsheet
    formula) answered, a summary in the one-image tab's words, and a results.csv byte for byte
    what `predict --csv` writes for the same files and detector."""
    import numpy as np
    from PIL import Image

    from deepfake_detection.interfaces import cli

    sys.path.insert(0, str(REPO / "scripts"))
    from playwright.sync_api import sync_playwright
    from screenshot_app import CHROMIUM_FLAGS, check_batch

    chromium = chromium_path()
    url, detector, root = served
    folder = tmp_path / "fifty"
    folder.mkdir()
    rng = np.random.default_rng(5)
    names = [f"img_{i:02d}.png" for i in range(48)] + ["=SUM(A1).png", "broken.jpg"]
    for name in names[:-1]:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    (folder / names[-1]).write_bytes(b"\xff\xd8\xff broken")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            summary = check_batch(page, url, [folder / n for n in names])
            with page.expect_download(timeout=60_000) as download:
                page.locator("#batch-csv a").first.click()
            downloaded = Path(download.value.path()).read_bytes()
            table = page.locator("#batch-table").inner_text()
            text = summary.inner_text()
        finally:
            browser.close()
    monkeypatch.chdir(folder)
    assert cli.main(["predict", *names, "--model", str(tiny_bundle[1]), "--csv",
                     "-o", str(tmp_path / "cli.csv")]) == 1  # one unreadable file
    assert downloaded == (tmp_path / "cli.csv").read_bytes()
    assert "1 unreadable" in text and "likely AI-generated" in text
    first = detector.predict(folder / "img_00.png")
    words = {"fake": "Likely AI-generated", "real": "No sign of AI generation found",
             "uncertain": "Uncertain"}[first.verdict]
    assert f"img_00.png\n{words}\n{first.prob_fake:.1%}" in table  # tab 1's words and units


def test_plain_http_with_curl_as_the_readme_shows(served):
    """scripts/check_http.sh (the README's curl example: upload, call, read the event
    stream) against a served app gives the detector's records; a bad detector name fails."""
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    url, detector, root = served
    paths = _images(root, "FAKE", 2)
    script = str(REPO / "scripts" / "check_http.sh")
    done = subprocess.run(["bash", script, url, *paths], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DETECTOR": detector.name})
    assert done.returncode == 0, done.stderr
    import json

    rows = json.loads(done.stdout)
    assert [r["prob_fake"] for r in rows] == pytest.approx(
        [detector.predict(p).prob_fake for p in paths], abs=1e-5)
    assert [r["source"] for r in rows] == [os.path.basename(p) for p in paths]
    refused = subprocess.run(["bash", script, url, paths[0]], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "DETECTOR": "nope"})
    assert refused.returncode != 0 and "nope" in refused.stdout
