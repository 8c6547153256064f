"""Distributed training without GPUs: two logical CPU devices, two workers on loopback, and a
run killed mid-phase that resumes from its backup. Each training runs in its own process:
logical devices and MultiWorkerMirroredStrategy must be set up before TensorFlow starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np

from .conftest import REPO

TRAIN = [sys.executable, "-m", "deepfake_detection", "train", "--arch", "resnet_small",
         "--weights", "none", "--export", "", "--epochs", "adversarial=0",
         "--epochs", "fine_tune=0", "--set", "augment_flip=false"]


def _env(**extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "", **extra}


def _run(args: list[str], timeout: int = 300, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(TRAIN + args, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _history(bundle) -> list[float]:
    return json.loads((bundle / "history.json").read_text())["frozen_base"]["loss"]


def test_mirrored_on_two_cpu_devices_follows_the_default_loss_curve(tiny_dataset, tmp_path):
    """Same global batch (16 = 2 replicas x 8) and learning rate: the gradient is the same
    average, so the loss curves agree up to BatchNorm statistics taken per replica (8 images
    instead of 16) and different dropout masks; on 16 steps of a tiny set that leaves a few
    hundredths per epoch (0.08 at most seen), well inside a wrong LR or batch."""
    common = ["--data", str(tiny_dataset), "--epochs", "frozen_base=4"]
    _run([*common, "--out", str(tmp_path / "one"), "--batch-size", "16"])
    done = _run([*common, "--out", str(tmp_path / "two"), "--batch-size", "8",
                 "--strategy", "mirrored", "--cpu-replicas", "2", "--set", "scale_lr=false"])
    meta = json.loads((tmp_path / "two" / "metadata.json").read_text())
    assert meta["distribution"] == {"strategy": "mirrored", "replicas": 2, "global_batch": 16}
    assert "2 replica(s)" in done.stderr
    one, two = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert len(one) == len(two) == 4
    np.testing.assert_allclose(two, one, rtol=0, atol=0.12)
    assert two[-1] < two[0]  # and it learns


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_train_the_same_weights(tiny_dataset, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "mw"
    args = TRAIN + ["--data", str(tiny_dataset), "--out", str(out), "--batch-size", "8",
                    "--epochs", "frozen_base=2", "--strategy", "multiworker"]
    workers = [subprocess.Popen(args, env=_env(TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        logs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], "\n".join(log[-2000:] for log in logs)
    chief, other = out, tmp_path / "mw.worker1"  # worker 0 is the chief: it owns --out
    meta = json.loads((chief / "metadata.json").read_text())
    assert meta["distribution"]["replicas"] == 2 and meta["distribution"]["global_batch"] == 16
    a, b = (keras.models.load_model(d / "model.keras", compile=False) for d in (chief, other))
    assert len(a.trainable_weights) == len(b.trainable_weights) > 10
    for x, y in zip(a.trainable_weights, b.trainable_weights):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, err_msg=x.path)


def test_a_killed_run_resumes_from_its_backup(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["--data", str(tiny_dataset), "--out", str(out), "--batch-size", "8",
            "--epochs", "frozen_base=12", "--patience", "100"]
    state = out / "backup" / "frozen_base" / "training_metadata.json"
    first = subprocess.Popen(TRAIN + args, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and first.poll() is None:
            if state.exists() and json.loads(state.read_text() or "{}").get("epoch", 0) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # like a preempted machine: no clean-up
        first.wait()
    assert first.returncode == -signal.SIGKILL, "the first run ended before it was killed"
    assert not (out / "metadata.json").exists()
    resumed_at = json.loads(state.read_text())["epoch"]
    done = _run(args)
    assert f"resuming from its backup after epoch {resumed_at}" in done.stderr
    assert len(_history(out)) == 12 - resumed_at  # only the epochs left were trained
    assert (out / "model.keras").exists() and not (out / "backup").exists()
