"""The phased training recipe: data -> model -> phases -> threshold on validation -> bundle."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from deepfake_detection import bundle, data
from deepfake_detection.config import PhaseConfig, TrainConfig
from deepfake_detection.imaging import ImageSpec
from deepfake_detection.metrics import best_f1_threshold, classification_metrics, ranking_metrics
from deepfake_detection.models import build_model, set_base_trainable

log = logging.getLogger(__name__)


def image_spec(config: TrainConfig) -> ImageSpec:
    return ImageSpec(size=config.image_size, resize_method=config.resize_method, fit=config.fit)


def _compile(model: keras.Model, phase: PhaseConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(phase.learning_rate),
        loss=keras.losses.BinaryCrossentropy(
            from_logits=True, label_smoothing=phase.label_smoothing
        ),
        # The model outputs logits, so accuracy thresholds at logit 0 (probability 0.5).
        metrics=[
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.AUC(from_logits=True, name="auc"),
        ],
    )


def _callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=config.min_lr,
        ),
    ]


def run_phase(model, phase: PhaseConfig, config: TrainConfig, train_ds, val_ds, weights) -> dict:
    """Train one phase and return its per-epoch history (empty when the phase is skipped)."""
    if phase.epochs <= 0:
        log.info("phase %s: 0 epochs, skipped", phase.name)
        return {}
    if phase.adversarial:
        log.warning(
            "phase %s skipped: adversarial training is not implemented yet (the robustness "
            "issue adds it); the saved model is NOT adversarially trained", phase.name
        )
        return {}
    freeze = phase.freeze_base and config.weights != "none"
    if phase.freeze_base and not freeze:
        log.info("phase %s: base has random weights (--weights none), so it trains the whole "
                 "network instead of freezing the base", phase.name)
    set_base_trainable(model, not freeze)
    _compile(model, phase)
    log.info("phase %s: up to %d epochs, Adam %.0e, label smoothing %.2f, base %s",
             phase.name, phase.epochs, phase.learning_rate, phase.label_smoothing,
             "frozen" if freeze else "trainable")
    # With bad files dropped on the fly the epoch length is unknown until the first one ends;
    # Keras then warns that the input "ran out of data", which is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=phase.epochs,
        class_weight=weights,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        callbacks=_callbacks(config),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def predict_probs(model: keras.Model, dataset) -> np.ndarray:
    """Sigmoid of the logits over an images-only dataset, in inference mode."""
    logits = [np.asarray(model(batch, training=False)).reshape(-1) for batch in dataset]
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def _resolve_splits(config: TrainConfig) -> tuple[data.FileList, data.FileList, list]:
    train_dir = Path(config.data_dir) / "train"
    files = data.load_split(train_dir, config.max_images_per_class, config.seed)
    train_files, val_files = data.stratified_split(files, config.val_fraction, config.seed)
    return train_files, val_files, files.rejected


def train(config: TrainConfig) -> Path:
    """Run the whole recipe and save a bundle into `config.output_dir`; returns that folder."""
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = image_spec(config)

    train_files, val_files, rejected = _resolve_splits(config)
    log.info("train %s, validation %s, rejected %d file(s)",
             train_files.counts(), val_files.counts(), len(rejected))
    n_images = len(train_files.paths) + len(val_files.paths)
    cache_mb = n_images * spec.size * spec.size * 3 * 4 / 2**20
    cache = config.cache == "auto" and cache_mb <= config.cache_limit_mb
    log.info("decoded-image cache: %s (%.0f MB needed, limit %d MB)",
             "memory" if cache else "off", cache_mb, config.cache_limit_mb)
    weights = data.class_weights(train_files.labels) if config.class_balance == "weights" else None
    log.info("class balance: %s %s", config.class_balance, weights or "")

    train_ds = data.make_dataset(train_files.paths, train_files.labels, spec, config.batch_size,
                                 training=True, seed=config.seed, cache=cache,
                                 flip=config.augment_flip)
    val_ds = data.make_dataset(val_files.paths, val_files.labels, spec, config.batch_size,
                               cache=cache)

    model = build_model(config.arch, image_size=config.image_size, weights=config.weights)
    history: dict[str, Any] = {}
    for phase in config.phases:
        history[phase.name] = run_phase(model, phase, config, train_ds, val_ds, weights)
    train_seconds = time.time() - started

    val_images = val_ds.map(lambda x, y: x)
    val_probs = predict_probs(model, val_images)
    threshold = best_f1_threshold(val_files.labels, val_probs)
    log.info("threshold %.4f (%s)", threshold["value"], threshold["rule"])
    check_batch = next(iter(val_images)).numpy()[:32]

    metadata = {
        "architecture": config.arch,
        "image_spec": spec.to_dict(),
        "class_names": list(data.CLASS_NAMES),
        "threshold": threshold,
        "calibration": {"method": "none", "temperature": 1.0},
        "config": config.to_dict(),
        "data": {
            "train": train_files.counts(),
            "validation": val_files.counts(),
            "rejected_files": [{"path": p, "reason": r} for p, r in rejected],
            "class_weights": weights,
            "cache": "memory" if cache else "off",
        },
        "validation_metrics": {
            "at_threshold": classification_metrics(val_files.labels, val_probs,
                                                   threshold["value"]),
            "at_0.5": classification_metrics(val_files.labels, val_probs, 0.5),
            **ranking_metrics(val_files.labels, val_probs),
        },
        "training": {"wall_seconds": train_seconds,
                     "epochs": {k: len(v.get("loss", [])) for k, v in history.items()}},
        "versions": bundle.library_versions(),
        "git_commit": bundle.git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    bundle.save_bundle(model, out, metadata, check_batch)
    config.save(out / bundle.CONFIG_FILE)
    (out / bundle.HISTORY_FILE).write_text(json.dumps(history, indent=2))
    if config.export_stem:
        for path in bundle.export_model(model, config.export_stem, check_batch):
            log.info("exported %s", path)
    log.info("saved bundle to %s after %.0f s of training", out, train_seconds)
    return out
