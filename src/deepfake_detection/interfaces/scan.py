"""Cluster-scale scanning on Ray Data, with the same Detector (and so the same verdicts) as
`predict`.

Why Ray Data rather than Apache Beam's RunInference: the unit of work here is the Detector
(decode, resize, model, temperature, threshold), not a bare TensorFlow model. Ray's
`map_batches` with a callable class keeps one loaded Detector per worker process (an actor
pool), feeds it numpy batches, streams with backpressure, and runs unchanged from a laptop
(`ray.init()`) to a cluster (`ray.init(address=...)`). Beam would need a custom ModelHandler
around the Detector anyway, and its local DirectRunner is a test harness rather than a fast
engine. Install with `pip install ".[scale]"`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_detection.errors import DetectionError
from deepfake_detection.interfaces.prediction_io import (
    VERDICTS,
    count_verdicts,
    iter_inputs,
    open_output,
    write_stream,
)


class ScanError(DetectionError, RuntimeError):
    """The cluster runner cannot start (Ray missing, cluster unreachable)."""


class DetectorActor:
    """One Detector per Ray worker; scores a batch of paths like `Detector.predict_many`."""

    def __init__(self, model: str | None, options: dict[str, Any], batch_size: int):
        from deepfake_detection.inference.checking import Checker
        from deepfake_detection.inference.detectors import load

        self.checker = Checker(load(model, **options))
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        # Rows travel as JSON text: Arrow would turn the None of a column into NaN.
        return {"row": [json.dumps(p.to_dict()) for p in self.checker.check_many(
            [str(p) for p in batch["path"]], batch_size=self.batch_size, workers=2)]}


def scan(paths: Sequence[str], output: str | Path, model: str | None = None,
         batch_size: int = 256, concurrency: int = 1, address: str | None = None,
         options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every image under `paths` on Ray and write JSON Lines like `predict --jsonl`.

    Args:
        paths: files, folders or globs (as for `predict`).
        output: JSONL file, written as results stream back to the driver.
        model: bundle folder (None: the bundled detector).
        batch_size: images per Ray batch (and per model call).
        concurrency: Detector actors (each holds one model; about one per 1-2 cores).
        address: Ray cluster address (`auto`, `ray://host:10001`); None starts a local Ray.
        options: the Detector's options (`uncertain_margin`, `operating_point`).

    (Seven parameters: the `deepfake-detection scan` options; the Detector's travel together
    in `options`.)

    Returns:
        Counts per verdict, errors, images/s, seconds, and the `unmatched` inputs (named
        paths or globs that matched nothing).
    """
    try:
        import ray
    except ImportError as error:
        raise ScanError('the cluster runner needs Ray: pip install ".[scale]"') from error
    unmatched: list[str] = []
    # paths only: ~100 bytes each, images stay on disk
    files = list(iter_inputs([str(p) for p in paths], unmatched))
    if not files:
        raise ScanError("no images to scan: " + ", ".join(map(str, paths)))
    try:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except ConnectionError as error:
        raise ScanError(f"could not reach the Ray cluster at {address!r}: {error}") from error
    started = time.perf_counter()
    ds = ray.data.from_items([{"path": f} for f in files]).map_batches(
        DetectorActor, fn_constructor_kwargs={"model": model, "batch_size": batch_size,
                                              "options": options or {}},
        batch_size=batch_size, concurrency=concurrency, batch_format="numpy")
    counts = dict.fromkeys(VERDICTS, 0)
    rows = (json.loads(line) for batch in ds.iter_batches(batch_size=batch_size,
                                                           batch_format="numpy")
            for line in batch["row"])
    with open_output(str(output)) as out:
        write_stream(count_verdicts(rows, counts), out, csv_format=False)
    seconds = time.perf_counter() - started
    return {**counts, "images": len(files), "seconds": seconds,
            "images_per_s": len(files) / seconds, "unmatched": unmatched}
