"""Drive the app in headless Chromium: upload an image, wait for the verdict, take a screenshot.

`python scripts/screenshot_app.py [IMAGE]` serves the bundled detector on a free localhost port
and writes docs/app-screenshot.png; the browser test calls `screenshot_verdict` the same way.
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
    out = Path(__file__).resolve().parents[1] / "docs" / "app-screenshot.png"
    text = screenshot_verdict(f"http://127.0.0.1:{port}/", image, out,
                              shutil.which("chromium") or "/usr/bin/chromium")
    demo.close()
    print(f"{out}: {text.splitlines()[0]} ({image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
