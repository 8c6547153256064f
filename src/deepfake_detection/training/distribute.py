"""`tf.distribute` strategies for `train --strategy`: one machine's devices, or many machines.

- `default`: one device (TensorFlow's default strategy).
- `mirrored`: `MirroredStrategy` over the GPUs of this machine, or over its logical CPU devices
  when there is no GPU (see `split_cpu`; used by the tests).
- `multiworker`: `MultiWorkerMirroredStrategy` across machines; every worker runs the same
  command with its own `TF_CONFIG` (cluster addresses and its task), and the chief writes the
  bundle.

`TrainConfig.batch_size` is per replica: the global batch is `batch_size x replicas`, and with
`scale_lr` each phase's learning rate is multiplied by the replica count (the linear scaling
rule of Goyal et al. 2017), so the same config means the same per-example step on any cluster.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from deepfake_detection.training.config import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")


def split_cpu(n: int) -> None:
    """Expose the CPU as `n` logical devices; must run before TensorFlow starts its runtime."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def strategy_for(name: str):
    """The strategy named by `train --strategy`. Create it before any other TensorFlow work:
    MultiWorkerMirroredStrategy must exist before the runtime initialises."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs TF_CONFIG (the cluster's worker "
                              "addresses and this worker's task); see the README, 'Scaling out'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def task() -> tuple[str, int]:
    """This process's (task type, index) from TF_CONFIG; ("chief", 0) without a cluster."""
    spec = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return spec.get("type", "chief"), int(spec.get("index", 0))


def is_chief() -> bool:
    """The chief writes the bundle: task `chief`, or worker 0 when the cluster names no chief."""
    kind, index = task()
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def output_dir(base: str | Path) -> Path:
    """Where this worker writes: the chief into `base`, the others beside it, so every worker
    runs the same code path (as collective training needs) without writing over the chief."""
    base = Path(base)
    if is_chief():
        return base
    kind, index = task()
    return base.parent / f"{base.name}.{kind}{index}"


def patch_for_multiworker(model) -> None:
    """Work around Keras 3's `fit` failing under MultiWorkerMirroredStrategy.

    Keras 3 (keras-team/keras#20585, tensorflow/tensorflow#72388) (1) averages a sample batch
    across replicas before tracing with a reduce that this strategy refuses for per-replica
    input, and (2) reduces each step's scalar logs with `reduce("MEAN", axis=0)`, invalid for
    scalars. Tracing needs only shapes, so (1) takes this worker's first replica's batch; for
    (2) logs are averaged over all replicas with `axis=None`, which gives every worker the same
    numbers (so EarlyStopping decides alike everywhere). Applied only for `--strategy
    multiworker`; tests/test_distribute.py fails if Keras changes under it.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    strategy = model.distribute_strategy

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = next(it)
                break
        data_batch = tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues) else v, data_batch)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    original = getattr(tf_trainer.reduce_per_replica, "__wrapped__",
                       tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction == "auto" and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None),
                                         values)
        return original(values, strategy, reduction)

    reduce_per_replica.__wrapped__ = original
    tf_trainer.reduce_per_replica = reduce_per_replica
