"""Drive the app in headless Chromium: upload an image, wait for the verdict, take a screenshot.

`python scripts/screenshot_app.py [IMAGE]` serves the bundled detector on a free localhost port
and writes docs/app-screenshot.png (one image) and docs/app-batch-screenshot.png (the batch tab
on a few cards drawn here, one of them a HEIC); the browser test calls `screenshot_verdict` the
same way.
The committed screenshot must not show shared-data images (they may not be redistributed), so
the default IMAGE is a test card drawn here and the app's shared-data examples are off.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def screenshot_verdict(url: str, image: str | Path, out: str | Path, chromium: str) -> str:
    """Upload `image` in the one-image tab, click Check, save a screenshot; returns the verdict."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(str(image))
            page.get_by_role("button", name="Check image").click()
            verdict = page.locator("#verdict")
            verdict.get_by_text("Probability it is AI-generated").wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # let the Grad-CAM image finish rendering
            page.screenshot(path=str(out), full_page=True)
            return verdict.inner_text()
        finally:
            browser.close()


def check_batch(page, url: str, images: list) -> object:
    """Open the batch tab at `url`, upload `images`, click Check all; returns the summary
    element once it counts them all (the browser test goes on from here to the download)."""
    page.goto(url, timeout=60_000)
    page.get_by_role("tab", name="Several images").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(i) for i in images])
    page.get_by_role("button", name="Check all").click()
    summary = page.locator("#batch-summary")
    summary.get_by_text(f"{len(images)} images").wait_for(timeout=120_000)
    return summary


def screenshot_batch(url: str, images: list[Path], out: str | Path, chromium: str) -> str:
    """The batch tab on `images`, screenshotted; returns the summary line."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            summary = check_batch(page, url, images)
            page.wait_for_timeout(1500)  # let the gallery's thumbnails load
            page.screenshot(path=str(out), full_page=True)
            return summary.inner_text()
        finally:
            browser.close()


def batch_cards(folder: Path) -> list[Path]:
    """Five pictures drawn here (gradients, noise, stripes; one saved as HEIC, one as AVIF)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:384, 0:512] / 384
    pictures = {
        "gradient.jpg": np.stack([200 * x, 90 + 100 * y, 160 - 80 * x], -1),
        "noise.png": 128 + rng.normal(0, 50, (384, 512, 3)),
        "stripes.heic": 127 + 120 * np.sin(40 * x)[..., None] * np.ones(3),
        "rings.avif": 127 + 120 * np.cos(60 * np.hypot(x - 0.6, y - 0.5))[..., None]
        * np.array([1.0, 0.6, 0.3]),
        "tiny.png": np.stack([200 * x, 90 + 100 * y, 160 - 80 * x], -1)[::4, ::4],
    }
    paths = []
    for name, pixels in pictures.items():
        path = folder / name
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=92)
        paths.append(path)
    return paths


def test_card(folder: Path) -> Path:
    """A 768x512 image made here (no third-party pixels): colour gradients with a noisy square,
    carrying an AUTOMATIC1111-style `parameters` text chunk so the Provenance panel has
    something to show; the native detector scores it on a 3x2 grid of crops."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    y, x = np.mgrid[0:512, 0:768] / 512
    img = np.stack([60 + 100 * x, 80 + 120 * y, 170 - 60 * x * y], -1)
    img[128:384, 256:512] += np.random.default_rng(3).normal(0, 40, (256, 256, 3))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a test card\nSteps: 20, Sampler: Euler a, Seed: 3 "
                  "(written by scripts/screenshot_app.py)")
    path = folder / "test_card.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, pnginfo=info)
    return path


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from deepfake_detection.interfaces.app import build_demo

    image = sys.argv[1] if len(sys.argv) > 1 else test_card(Path(tempfile.mkdtemp()))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = build_demo(show_examples=False)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    docs = Path(__file__).resolve().parents[1] / "docs"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    text = screenshot_verdict(f"http://127.0.0.1:{port}/", image, docs / "app-screenshot.png",
                              chromium)
    print(f"{docs / 'app-screenshot.png'}: {text.splitlines()[0]} ({image})")
    summary = screenshot_batch(f"http://127.0.0.1:{port}/", batch_cards(Path(tempfile.mkdtemp())),
                               docs / "app-batch-screenshot.png", chromium)
    demo.close()
    print(f"{docs / 'app-batch-screenshot.png'}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
