"""The app under load: N users at once, each uploading a 12-megapixel JPEG and a 4096x4096 PNG
through the public API (`gradio_client`), against `deepfake-detection app` on localhost.

Reports every request's outcome (answered, or refused and with what message), the server's peak
resident memory (VmHWM of its process), and the files left in its upload folder while it runs
and after it stops. The images are made here (gradients with camera-like noise).

    python benchmarks/app_load.py --users 20 --out benchmarks/results/app_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image


def _image(path: Path, height: int, width: int, seed: int, noise: float) -> Path:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    pixels = 60 + 120 * x * np.array([1, 0.6, 0.3]) + 70 * y * np.array([0.2, 0.7, 1.0])
    pixels = pixels + rng.normal(0, noise, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.save(path, quality=92) if path.suffix == ".jpg" else image.save(path, optimize=False)
    return path


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _wait(url: str, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


def _user(url: str, images: list[Path], outcomes: list[dict]) -> None:
    """One visitor: both images in turn, then the connection closed (as a browser tab is)."""
    from gradio_client import Client, handle_file

    client = None
    for image in images:
        start = time.perf_counter()
        try:
            client = client or Client(url, verbose=False)
            details = client.predict(handle_file(str(image)), api_name="/analyze")[3]
            outcome = {"image": image.name, "answered": True, "verdict": details["verdict"]}
        except Exception as error:  # noqa: BLE001 - the message is the measurement
            outcome = {"image": image.name, "answered": False,
                       "message": f"{type(error).__name__}: {str(error)[:200]}"}
        outcome["seconds"] = round(time.perf_counter() - start, 1)
        outcomes.append(outcome)
    if client is not None:
        client.close()  # its heartbeat stream would otherwise hold the server's shutdown


def visit(users: int, url: str, images: list[Path]) -> None:
    """`users` visitors at once; prints their outcomes as JSON (the child process's job)."""
    outcomes: list[dict] = []
    threads = [threading.Thread(target=_user, args=(url, images, outcomes))
               for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--out", help="write the figures here as JSON")
    parser.add_argument("--visitors", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("images", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.visitors:
        visit(args.visitors, args.url, args.images)
        return
    work = Path(tempfile.mkdtemp(prefix="dfd-load-"))
    uploads = work / "uploads"
    uploads.mkdir()
    # Noise kept low enough that the PNG (about 23 MB) passes the 25 MB upload limit and is
    # decoded: the memory of a 4096x4096 verdict is what is measured.
    images = [_image(work / "photo_12mp.jpg", 3000, 4000, 0, 6.0),
              _image(work / "big_4096.png", 4096, 4096, 1, 1.5)]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GRADIO_TEMP_DIR": str(uploads), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (work / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "deepfake_detection", "app", "--port",
                               str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(url)
        idle_mb = _peak_mb(server.pid)
        start = time.perf_counter()
        # The visitors run in a child process that exits before the server is stopped, as
        # browsers close: connections a client library keeps open would hold the shutdown.
        visitors = subprocess.run([sys.executable, __file__, "--visitors", str(args.users),
                                   "--url", url, *map(str, images)], capture_output=True,
                                  text=True, check=True)
        outcomes = json.loads(visitors.stdout)
        wall = time.perf_counter() - start
        peak_mb, left_running = _peak_mb(server.pid), _files(uploads)
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: Gradio closes and deletes its uploads
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    refused = sorted({o["message"] for o in outcomes if not o["answered"]})
    result = {
        "users": args.users, "requests": len(outcomes),
        "answered": sum(o["answered"] for o in outcomes),
        "refused": sum(not o["answered"] for o in outcomes), "refusal_messages": refused,
        "server_exit_code": server.returncode, "wall_s": round(wall, 1),
        "image_bytes": {p.name: p.stat().st_size for p in images},
        "server_rss_idle_mb": round(idle_mb), "server_peak_rss_mb": round(peak_mb),
        "upload_files_while_running": left_running, "upload_files_after_stop": _files(uploads),
        "outcomes": outcomes,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "outcomes"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
