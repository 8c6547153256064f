"""The phased training recipe: data -> model -> phases -> threshold on validation -> bundle."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import keras
import numpy as np

from deepfake_detection import attacks
from deepfake_detection.calibration import Calibration
from deepfake_detection.imaging import ImageSpec, add_noise, load_prepared
from deepfake_detection.inference import bundle, novelty
from deepfake_detection.metrics import (
    best_f1_threshold,
    score,
    strict_threshold,
)
from deepfake_detection.models import build_model, set_base_trainable
from deepfake_detection.training import data, distribute
from deepfake_detection.training.config import ConfigError, PhaseConfig, TrainConfig

log = logging.getLogger(__name__)

BACKUP_DIR = "backup"


def image_spec(config: TrainConfig) -> ImageSpec:
    return ImageSpec(size=config.image_size, resize_method=config.resize_method, fit=config.fit)


def augmentation(config: TrainConfig) -> data.Augmentation:
    return data.Augmentation(flip=config.augment_flip, shift=config.augment_shift,
                             blur_jpeg_p=config.augment_blur_jpeg,
                             blur_sigma_max=config.augment_blur_sigma_max,
                             jpeg_min=config.augment_jpeg_min,
                             rescale_p=config.augment_rescale,
                             rescale_min=config.augment_rescale_min,
                             crop=config.augment_crop,
                             zoom_p=config.augment_zoom, zoom_min=config.augment_zoom_min,
                             noise_p=config.augment_noise,
                             noise_max=config.augment_noise_max,
                             rotate_p=config.augment_rotate,
                             rotate_max=config.augment_rotate_max,
                             color_p=config.augment_color,
                             color_strength=config.augment_color_strength,
                             mask_p=config.augment_mask, mask_max=config.augment_mask_max)


def learning_rate(phase: PhaseConfig, steps_per_epoch: int):
    """A float for `plateau`; for `cosine` one warm-up epoch from LR/10, then cosine to 0."""
    if phase.schedule == "plateau":
        return phase.learning_rate
    warmup = steps_per_epoch if phase.epochs > 1 else 0
    return keras.optimizers.schedules.CosineDecay(
        phase.learning_rate / 10 if warmup else phase.learning_rate,
        decay_steps=max(1, steps_per_epoch * phase.epochs - warmup),
        warmup_target=phase.learning_rate if warmup else None, warmup_steps=warmup)


def _compile(model: keras.Model, phase: PhaseConfig, steps_per_epoch: int = 1,
             config: TrainConfig | None = None) -> None:
    config = config or TrainConfig()
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate(phase, steps_per_epoch), weight_decay=config.weight_decay or None,
            use_ema=config.ema_momentum > 0, ema_momentum=config.ema_momentum or 0.99),
        loss=keras.losses.BinaryCrossentropy(
            from_logits=True, label_smoothing=phase.label_smoothing
        ),
        # The model outputs logits, so accuracy thresholds at logit 0 (probability 0.5).
        metrics=[
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.AUC(from_logits=True, name="auc"),
        ],
    )


def _callbacks(config: TrainConfig, robust: bool = False,
               plateau: bool = True) -> list[keras.callbacks.Callback]:
    """EarlyStopping and ReduceLROnPlateau on validation loss, or, in adversarial phases with
    the robustness monitor, on validation PGD accuracy: clean loss rises while a model becomes
    robust, and restoring the best clean epoch would undo the adversarial training. A scheduled
    (cosine) phase gets no plateau cuts."""
    key, mode = ("val_pgd_acc", "max") if robust else ("val_loss", "min")
    # With EMA the phase ends on the averaged weights: Keras writes them in at the end of fit,
    # just before callbacks end, so restoring the best raw epoch would silently undo them.
    stop = keras.callbacks.EarlyStopping(monitor=key, mode=mode,
                                         restore_best_weights=not config.ema_momentum,
                                         patience=config.early_stopping_patience)
    if not plateau:
        return [stop]
    return [
        stop,
        keras.callbacks.ReduceLROnPlateau(
            monitor=key,
            mode=mode,
            factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience,
            min_lr=config.min_lr,
        ),
    ]


class AdversarialModel(keras.Model):
    """Trains `inner` on batches whose first `ratio` share is replaced by adversarial examples
    made, in-graph, against the current weights (never precomputed against an older model)."""

    def __init__(self, inner: keras.Model, config: TrainConfig):
        super().__init__()
        self.inner = inner
        self.attack = config.adv_attack
        self.eps = attacks.eps_to_pixels(config.adv_eps)
        self.step = attacks.eps_to_pixels(config.adv_step_size)
        self.steps = config.adv_steps
        self.ratio = config.adv_ratio
        if self.attack not in ("fgsm_rs", "pgd"):
            raise ValueError(f"adv_attack must be 'fgsm_rs' or 'pgd', not {self.attack!r}")

    def call(self, x, training=False):
        return self.inner(x, training=training)

    def adversarial(self, x, y):
        if self.attack == "pgd":
            return attacks.pgd_tf(self.inner, x, y, self.eps, self.steps, self.step)
        return attacks.fgsm_tf(self.inner, x, y, self.eps, random_start=True)

    def train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        n_adv = tf.cast(tf.round(self.ratio * tf.cast(tf.shape(x)[0], tf.float32)), tf.int32)
        # Only the share that is replaced is attacked: half the attack's cost at ratio 0.5.
        x = tf.concat([self.adversarial(x[:n_adv], y[:n_adv]), x[n_adv:]], axis=0)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        for metric in self.metrics:  # compute_loss does not feed the loss tracker itself
            if metric.name == "loss":
                metric.update_state(loss)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


class RobustnessMonitor(keras.callbacks.Callback):
    """After each epoch, clean / FGSM / PGD balanced accuracy on a fixed validation subset.

    FGSM training can overfit catastrophically: PGD accuracy collapses while FGSM accuracy stays
    high (Wong et al. 2020). Recording both per epoch makes that visible and detectable.
    """

    def __init__(self, inner: keras.Model, x: np.ndarray, y: np.ndarray, config: TrainConfig):
        super().__init__()
        self.inner, self.x, self.y = inner, x, y.astype(np.float32)
        self.eps = attacks.eps_to_pixels(config.adv_eps)
        self.step = attacks.eps_to_pixels(config.adv_step_size)
        self.steps = max(config.adv_steps, 10)

    def _accuracy(self, x) -> float:
        """Balanced accuracy (the mean of the per-class accuracies): a model that answers one
        class for everything scores 0.5 here, never the class share, so early stopping on it
        cannot keep a collapsed first epoch."""
        logits = np.concatenate([np.asarray(self.inner(part, training=False)).reshape(-1)
                                 for part in self._chunks(x)])
        hit = (logits >= 0) == self.y.astype(bool)
        return float(np.mean([hit[self.y == c].mean() for c in (0, 1) if np.any(self.y == c)]))

    def _chunks(self, x):
        """Attack-sized slices: one PGD batch of 128 native 256x256 images held 22 GB."""
        n = attacks.attack_batch(self.x.shape[1])
        return [x[i:i + n] for i in range(0, len(x), n)]

    def on_epoch_end(self, epoch, logs=None):
        pieces = list(zip(self._chunks(self.x), self._chunks(self.y)))
        fgsm = np.concatenate([attacks.fgsm_tf(self.inner, x, y, self.eps) for x, y in pieces])
        pgd = np.concatenate([attacks.pgd_tf(self.inner, x, y, self.eps, self.steps, self.step,
                                             seed=0) for x, y in pieces])
        if logs is not None:
            logs.update(val_clean_subset_acc=self._accuracy(self.x),
                        val_fgsm_acc=self._accuracy(fgsm), val_pgd_acc=self._accuracy(pgd))
            log.info("epoch %d robustness at %g/255: clean %.3f, FGSM %.3f, PGD-%d %.3f",
                     epoch + 1, self.eps, logs["val_clean_subset_acc"], logs["val_fgsm_acc"],
                     self.steps, logs["val_pgd_acc"])


def catastrophic_overfitting(history: dict[str, dict]) -> bool:
    """PGD accuracy fell 20+ points below its best while FGSM accuracy did not fall as much."""
    pgd = [v for h in history.values() for v in h.get("val_pgd_acc", [])]
    fgsm = [v for h in history.values() for v in h.get("val_fgsm_acc", [])]
    if len(pgd) < 2:
        return False
    best = int(np.argmax(pgd))
    drop_pgd = pgd[best] - min(pgd[best:])
    last = best + int(np.argmin(pgd[best:]))
    return drop_pgd >= 0.2 and fgsm[best] - fgsm[last] < drop_pgd / 2


def threat_model(config: TrainConfig) -> str:
    """What an adversarially trained bundle was trained against, in words."""
    if config.adv_attack == "fgsm":
        return (f"L-inf, eps {config.adv_eps:g}/255, ART FGSM copies of {config.adv_ratio:.0%} "
                "of the training set added (the original design)")
    steps = (f" ({config.adv_steps} steps of {config.adv_step_size:g}/255)"
             if config.adv_attack == "pgd" else "")
    return f"L-inf, eps {config.adv_eps:g}/255, {config.adv_attack}{steps}, " \
           f"{config.adv_ratio:.0%} of batches"


def with_fgsm_copies(model, run: Run):
    """The original design's adversarial data: ART FGSM copies (eps `adv_eps`) of a seeded
    `adv_ratio` share of the training images, made once against the model as it is when the
    adversarial phase starts, added to the training set. Returns (dataset, steps per epoch)."""
    import tensorflow as tf

    config, files, spec, per_image = run.config, run.train_files, run.spec, run.per_image
    if config.strategy != "default":
        raise ConfigError("--adv-attack fgsm runs on one device (--strategy default)")
    rng = np.random.default_rng(config.seed)
    idx = np.sort(rng.choice(len(files.paths), round(config.adv_ratio * len(files.paths)),
                             replace=False))
    x = np.stack([load_prepared(files.paths[i], spec) for i in idx])
    y = files.labels[idx]
    x_adv = attacks.generate(attacks.art_classifier(model, spec.size), "fgsm", x, y,
                             config.adv_eps, seed=config.seed)
    columns = (x_adv, y.astype(np.float32), *(() if per_image is None else
                                              (per_image[idx].astype(np.float32),)))
    total = len(files.paths) + len(idx)
    log.info("added %d ART FGSM copies (eps %g/255) to the %d training images", len(idx),
             config.adv_eps, len(files.paths))
    union = run.train_ds.unbatch().concatenate(tf.data.Dataset.from_tensor_slices(columns))
    union = union.shuffle(total, seed=config.seed, reshuffle_each_iteration=True)
    return union.batch(config.batch_size).prefetch(tf.data.AUTOTUNE), -(-total //
                                                                        config.batch_size)


def run_phase(model, phase: PhaseConfig, run: Run, adversarial: bool = False) -> dict:
    """Train one phase and return its per-epoch history (empty when the phase is skipped).

    With `run.backup_dir`, a finished phase leaves its weights and history there (a restarted
    run skips it), and an unfinished one is backed up every epoch by BackupAndRestore (a
    restarted run resumes it at the last finished epoch). `run.fit_steps` fixes steps per
    epoch for distributed runs, where every replica must run the same number of steps.
    """
    config, monitor, backup_dir = run.config, run.monitor, run.backup_dir
    if phase.epochs <= 0:
        log.info("phase %s: 0 epochs, skipped", phase.name)
        return {}
    done = backup_dir / f"{phase.name}.done.weights.h5" if backup_dir else None
    if done and done.exists():
        model.load_weights(done)
        log.info("phase %s: finished before the restart, weights restored from %s", phase.name,
                 done)
        return json.loads(done.with_suffix("").with_suffix(".history.json").read_text())
    fit_model = _phase_model(model, phase, run, adversarial)
    # With bad files dropped on the fly the epoch length is unknown until the first one ends;
    # Keras then warns that the input "ran out of data", which is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    callbacks = ([monitor] if monitor and adversarial else []) + _callbacks(
        config, robust=bool(monitor and adversarial), plateau=phase.schedule == "plateau")
    if backup_dir:
        callbacks.append(_epoch_backup(fit_model, model, backup_dir / phase.name))
    history = fit_model.fit(
        run.train_ds,
        validation_data=run.val_ds,
        epochs=phase.epochs,
        class_weight=run.class_weights,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
        **(run.fit_steps or {}),
    )
    result = {k: [float(v) for v in values] for k, values in history.history.items()}
    if done:
        model.save_weights(done)
        done.with_suffix("").with_suffix(".history.json").write_text(json.dumps(result))
    return result


def _phase_model(model, phase: PhaseConfig, run: Run, adversarial: bool):
    """The model one phase fits: base frozen or not, wrapped for per-batch attacks, compiled."""
    config = run.config
    freeze = phase.freeze_base and config.weights != "none"
    if phase.freeze_base and not freeze:
        log.info("phase %s: base has random weights (--weights none), so it trains the whole "
                 "network instead of freezing the base", phase.name)
    set_base_trainable(model, not freeze, config.freeze_batchnorm)
    # The design's FGSM copies are in the data already; the other attacks are made per batch.
    in_graph = adversarial and config.adv_attack != "fgsm"
    fit_model = AdversarialModel(model, config) if in_graph else model
    _compile(fit_model, phase, run.steps_per_epoch, config)
    if config.strategy == "multiworker":
        distribute.patch_for_multiworker(fit_model)
    log.info("phase %s: up to %d epochs, Adam %.0e (%s), label smoothing %.2f, base %s, %s",
             phase.name, phase.epochs, phase.learning_rate, phase.schedule, phase.label_smoothing,
             "frozen" if freeze else "trainable",
             f"adversarial ({threat_model(config)})" if adversarial else "clean batches")
    return fit_model


def _epoch_backup(fit_model, model, phase_backup: Path):
    """BackupAndRestore into `phase_backup`: a restarted run resumes at the last epoch."""
    state = phase_backup / "training_metadata.json"
    if state.exists():
        log.info("phase %s: resuming from its backup after epoch %d", phase_backup.name,
                 json.loads(state.read_text())["epoch"])
    if not fit_model.built:  # BackupAndRestore restores into built models only
        fit_model(np.zeros((1, *model.input_shape[1:]), np.float32))
    return keras.callbacks.BackupAndRestore(str(phase_backup))


def predict_logits(model: keras.Model, dataset) -> np.ndarray:
    """Logits over an images-only dataset, in inference mode."""
    logits = [np.asarray(model(batch, training=False)).reshape(-1) for batch in dataset]
    return np.concatenate(logits).astype(np.float64)


def _robustness_monitor(model, val_files: data.FileList, spec: ImageSpec,
                        config: TrainConfig) -> RobustnessMonitor | None:
    """A seeded random validation subset for the robustness monitor (None if not needed)."""
    if not config.adv_monitor_images or not any(p.adversarial and p.epochs for p in
                                                config.phases):
        return None
    rng = np.random.default_rng(config.seed)
    n = min(config.adv_monitor_images, len(val_files.paths))
    idx = np.sort(rng.choice(len(val_files.paths), n, replace=False))
    x = np.stack([load_prepared(val_files.paths[i], spec) for i in idx])
    return RobustnessMonitor(model, x, val_files.labels[idx], config)


def _resolve_splits(config: TrainConfig) -> tuple[data.FileList, data.FileList, list]:
    train_dir = Path(config.data_dir) / "train"
    files = data.load_split(train_dir, config.max_images_per_class, config.seed)
    if config.exclude_sources:
        keep = [i for i, p in enumerate(files.paths)
                if data.group_of(p) not in config.exclude_sources]
        log.info("leaving out sources %s: %d file(s)", config.exclude_sources,
                 len(files.paths) - len(keep))
        files = data.FileList([files.paths[i] for i in keep], files.labels[keep], files.rejected)
    train_files, val_files = data.stratified_split(files, config.val_fraction, config.seed)
    return train_files, val_files, files.rejected


def _backup_dir(out: Path, config: TrainConfig) -> Path:
    """The run's backup folder; a backup left by a different configuration is discarded."""
    backup = out / BACKUP_DIR
    saved = backup / bundle.CONFIG_FILE
    if saved.exists() and json.loads(saved.read_text()) != json.loads(
            json.dumps(config.to_dict())):
        log.warning("discarding %s: it was made with a different configuration", backup)
        shutil.rmtree(backup)
    backup.mkdir(parents=True, exist_ok=True)
    config.save(saved)
    return backup


def check_outputs(config: TrainConfig, force: bool = False) -> None:
    """Refuse, before any work, a run that would train nothing, cannot save its results, or
    would replace a finished bundle or an export (such as the tracked models/final_model)."""
    if not any(phase.epochs > 0 for phase in config.phases):
        raise ConfigError("every phase has 0 epochs, so nothing would be trained; give one "
                          "some epochs (--epochs PHASE=N)")
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    stem = config.export_stem
    targets = [out] + ([Path(stem).parent] if stem else [])
    for folder in targets:
        existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
        if not os.access(existing, os.W_OK):
            raise ConfigError(f"{folder}: cannot write there ({existing} is not writable)")
    exports = [Path(f"{stem}{suffix}") for suffix in (".keras", ".h5", ".json")] if stem else []
    taken = [p for p in (out / bundle.METADATA_FILE, *exports) if p.exists()]
    if taken and not force:
        raise ConfigError(f"{', '.join(map(str, taken))} already exist(s): pass --force to "
                          "replace, or choose another --out / --export ('' skips the export)")


@dataclasses.dataclass
class Run:
    """What every phase of one training run shares: its config, data and checks."""

    config: TrainConfig
    spec: ImageSpec
    train_files: data.FileList
    val_files: data.FileList
    rejected: list
    train_ds: Any
    val_ds: Any
    val_images: Any  # the validation images once through, for calibration (never repeated)
    steps_per_epoch: int
    class_weights: dict[int, float] | None = None
    per_image: np.ndarray | None = None
    cache: bool = False
    replicas: int = 1
    fit_steps: dict[str, int] | None = None
    monitor: RobustnessMonitor | None = None
    backup_dir: Path | None = None


def train(config: TrainConfig) -> Path:
    """Run the whole recipe and save a bundle into `config.output_dir`; returns that folder.

    The steps: data -> phases -> operating point (calibration + threshold) -> bundle.
    """
    started = time.time()
    strategy = distribute.strategy_for(config.strategy)  # first: before any TensorFlow work
    commit = bundle.git_commit()  # the code that runs, not what HEAD is when training ends
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same seed, data, command: same model
    out = distribute.output_dir(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = prepare_run(config, strategy.num_replicas_in_sync)
    run.backup_dir = _backup_dir(out, config) if config.backup else None
    with strategy.scope():
        model = build_model(config.arch, image_size=config.augment_crop or config.image_size,
                            weights=config.weights)
        run.monitor = _robustness_monitor(model, run.val_files, run.spec, config)
        history, adversarial_ran = run_phases(model, run)
        if config.augment_crop:
            model = resized(model, config)
    train_seconds = time.time() - started
    point = operating_point(model, run.val_images, run.val_files.labels, config)
    metadata = bundle_metadata(run, point, history, adversarial_ran)
    metadata["training"] = {"wall_seconds": train_seconds,
                            "epochs": {k: len(v.get("loss", [])) for k, v in history.items()}}
    metadata["git_commit"] = commit
    _save(model, out, metadata, history, run, next(iter(run.val_images)).numpy()[:32])
    log.info("saved bundle to %s after %.0f s of training", out, train_seconds)
    return out


def resized(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The trained network rebuilt at `config.image_size`, the size the bundle declares:
    its weights (convolutions, pooled head) are the same at any input size."""
    target = build_model(config.arch, image_size=config.image_size, weights="none")
    for source, dest in zip(model.weights, target.weights, strict=True):
        if source.path != dest.path or source.shape != dest.shape:
            raise RuntimeError(f"weights differ after rebuilding: {source.path} {source.shape}"
                               f" vs {dest.path} {dest.shape}")
        dest.assign(source)
    return target


def prepare_run(config: TrainConfig, replicas: int = 1) -> Run:
    """Splits, cache decision, class or source balance, and the train/validation datasets."""
    spec = image_spec(config)
    global_batch = config.batch_size * replicas
    if replicas > 1 or config.strategy != "default":
        log.info("strategy %s: %d replica(s), global batch %d (%d per replica), learning rates "
                 "x%d", config.strategy, replicas, global_batch, config.batch_size,
                 replicas if config.scale_lr else 1)
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
    per_image = (data.source_weights(train_files.paths, train_files.labels)
                 if config.class_balance == "source" else None)
    train_ds = data.make_dataset(train_files.paths, train_files.labels, spec, global_batch,
                                 data.Training(config.seed, augmentation(config), per_image),
                                 cache)
    val_ds = data.make_dataset(val_files.paths, val_files.labels, spec, global_batch,
                               cache=cache)
    val_images = val_ds.map(lambda x, y: x)  # whole images, for the saved model
    if config.augment_crop:  # while training, the network takes crops
        val_ds = val_ds.map(lambda x, y: (data.center_crop(x, config.augment_crop), y))
    run = Run(config, spec, train_files, val_files, rejected, train_ds, val_ds, val_images,
              -(-len(train_files.paths) // global_batch), weights, per_image, cache, replicas)
    if config.strategy != "default":
        _distribute_datasets(run, global_batch)
    return run


def _distribute_datasets(run: Run, global_batch: int) -> None:
    """Replicas must agree on the number of steps: repeat and fix the epoch length (each epoch
    still sees every training image about once); multiworker shards by element."""
    run.steps_per_epoch = max(1, len(run.train_files.paths) // global_batch)
    run.fit_steps = {"steps_per_epoch": run.steps_per_epoch,
                     "validation_steps": max(1, len(run.val_files.paths) // global_batch)}
    run.train_ds, run.val_ds = run.train_ds.repeat(), run.val_ds.repeat()
    if run.config.strategy == "multiworker":
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        run.train_ds = run.train_ds.with_options(options)
        run.val_ds = run.val_ds.with_options(options)


def run_phases(model, run: Run) -> tuple[dict[str, Any], bool]:
    """Every phase in order; returns the per-phase history and whether adversarial training
    ran (then later phases stay adversarial with `adv_carry_through`)."""
    config = run.config
    history: dict[str, Any] = {}
    adversarial_ran = False
    with_copies = None  # the design's FGSM copies, made when the adversarial phase starts
    for phase in config.phases:
        if config.scale_lr:
            phase = dataclasses.replace(phase, learning_rate=phase.learning_rate * run.replicas)
        adversarial = phase.adversarial or (adversarial_ran and config.adv_carry_through)
        phase_run = run
        if adversarial and config.adv_attack == "fgsm" and phase.epochs > 0:
            with_copies = with_copies or with_fgsm_copies(model, run)
            phase_run = dataclasses.replace(run, train_ds=with_copies[0],
                                            steps_per_epoch=with_copies[1])
        history[phase.name] = run_phase(model, phase, phase_run, adversarial)
        adversarial_ran |= phase.adversarial and bool(history[phase.name])
    return history, adversarial_ran


def operating_point(model, val_images, labels: np.ndarray, config: TrainConfig) -> dict:
    """Temperature (calibration) and the decision threshold, both from the validation split;
    the threshold is chosen on calibrated probabilities, the scale the Detector reports."""
    val_logits = predict_logits(model, val_images)
    calibration = Calibration.fit(labels, val_logits, config.calibrate)
    val_probs = calibration.apply(val_logits)
    threshold = best_f1_threshold(labels, val_probs, config.threshold_balanced)
    log.info("temperature %.3f (validation ECE %.4f -> %.4f)", calibration.temperature,
             calibration.val_ece_before, calibration.val_ece_after)
    log.info("threshold %.4f (%s)", threshold["value"], threshold["rule"])
    strict = strict_threshold(labels, val_probs)
    log.info("strict threshold %.4f (%s)", strict["value"], strict["rule"])
    return {"calibration": calibration, "threshold": threshold, "val_probs": val_probs,
            "operating_points": {"strict": strict}}


def bundle_metadata(run: Run, point: dict, history: dict, adversarial_ran: bool) -> dict:
    """Everything a consumer of the bundle needs to reproduce and judge a prediction."""
    config, labels, probs = run.config, run.val_files.labels, point["val_probs"]
    return {
        "architecture": config.arch,
        "image_spec": run.spec.to_dict(),
        "class_names": list(data.CLASS_NAMES),
        "threshold": point["threshold"],
        "operating_points": point["operating_points"],
        "calibration": point["calibration"].to_dict(),
        "adversarial_training": {
            "applied": adversarial_ran,
            "threat_model": threat_model(config),
            "catastrophic_overfitting": catastrophic_overfitting(history),
        },
        "config": config.to_dict(),
        "distribution": {"strategy": config.strategy, "replicas": run.replicas,
                         "global_batch": config.batch_size * run.replicas},
        "data": {
            "train": run.train_files.counts(),
            "validation": run.val_files.counts(),
            "train_sources": dict(Counter(data.group_of(p) for p in run.train_files.paths)),
            "rejected_files": [{"path": p, "reason": r} for p, r in run.rejected],
            "class_weights": run.class_weights,
            "cache": "memory" if run.cache else "off",
        },
        "validation_metrics": score(labels, probs, point["threshold"]["value"],
                                    also_at_half=True),
        "versions": bundle.library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _save(model, out: Path, metadata: dict, history: dict, run: Run,
          check_batch: np.ndarray) -> None:
    """The bundle (model, metadata, config, history), then the export the config asks for."""
    config = run.config
    saved = bundle.Bundle(out, metadata, model)
    saved.save(check_batch)
    saved.write_json(bundle.CONFIG_FILE, config.to_dict())
    saved.write_json(bundle.HISTORY_FILE, history)
    if run.backup_dir:
        shutil.rmtree(run.backup_dir, ignore_errors=True)  # the bundle is complete
    if config.export_stem and distribute.is_chief():
        for path in saved.export(config.export_stem, check_batch):
            log.info("exported %s", path)


def _bundle_splits(bundle_dir: str | Path, classes: tuple[str, ...] = data.CLASS_NAMES):
    """(bundle, config, train files, validation files) of a saved bundle: the split rebuilt
    from its config (same data, seed and fraction), refused unless its validation counts of
    `classes` match the ones the bundle recorded."""
    saved = bundle.Bundle.load(bundle_dir)
    config = TrainConfig.from_dict(saved.config)
    train_files, val_files, _ = _resolve_splits(config)
    recorded = saved.metadata["data"]["validation"]
    if any(val_files.counts()[name] != recorded[name] for name in classes):
        raise data.DataError(f"validation split {val_files.counts()} differs from the one the "
                             f"bundle recorded {recorded}; data changed?")
    return saved, config, train_files, val_files


def recalibrate(bundle_dir: str | Path) -> dict[str, Any]:
    """Fit temperature scaling for an existing bundle on its own validation split.

    The split is rebuilt from the saved config (same data, seed and fraction) and must match the
    recorded counts. The threshold is mapped through the new temperature, so every decision
    stays the same; only the reported probabilities change.
    """
    saved, config, _, val_files = _bundle_splits(bundle_dir)
    logits = predict_logits(saved.model, data.make_dataset(val_files.paths, None, saved.spec,
                                                           config.batch_size))
    calibration = Calibration.fit(val_files.labels, logits)
    for threshold in [saved.metadata["threshold"],
                      *(saved.metadata.get("operating_points") or {}).values()]:
        threshold["value"] = calibration.map_threshold(threshold["value"], saved.calibration)
        threshold["rule"] += " (mapped through the fitted temperature)"
    saved.metadata["calibration"] = calibration.to_dict()
    saved.write_metadata()
    return saved.metadata


def fit_operating_points(bundle_dir: str | Path) -> dict[str, Any]:
    """Add the strict operating point to an existing bundle, from its own validation reals.

    Only the REAL side of the split is needed, and it is drawn before and apart from the FAKE
    side (`data.stratified_split`), so fakes added to the data since do not move it; it is
    refused unless its count matches the recorded one.
    """
    saved, config, _, val_files = _bundle_splits(bundle_dir, classes=("REAL",))
    recorded, found = saved.metadata["data"]["validation"], val_files.counts()
    logits = predict_logits(saved.model, data.make_dataset(val_files.paths, None, saved.spec,
                                                           config.batch_size))
    strict = strict_threshold(val_files.labels, saved.calibration.apply(logits))
    if found != recorded:
        strict["fakes_caught"] = None  # the fakes are not the ones it was validated on
        strict["note"] = (f"validation FAKE images changed since training ({recorded['FAKE']}"
                          f" -> {found['FAKE']}); set on the unchanged REAL side")
    saved.metadata["operating_points"] = {"strict": strict}
    saved.write_metadata()
    return strict


def novelty_features(saved: bundle.Bundle, paths: list[str], batch_size: int = 32) -> np.ndarray:
    """The novelty feature statistics (`novelty.feature_output` at every stage) of each image's
    centre view, as the novelty check and the family head read them."""
    layers = novelty.stage_layers(saved.model)
    model = keras.Model(saved.model.inputs, novelty.feature_output(saved.model, layers))
    dataset = data.make_dataset(paths, None, saved.spec, batch_size)
    return np.concatenate([np.asarray(model(b, training=False)) for b in dataset])


def fit_novelty(bundle_dir: str | Path, max_train: int = 4000) -> dict[str, Any]:
    """Fit the bundle's novelty model (see `inference.novelty`) on its own training split, with
    the threshold set on its validation split; writes `novelty.npz` and records it in the metadata.
    Predictions change only for images above the novelty threshold."""
    saved, config, train_files, val_files = _bundle_splits(bundle_dir)
    layers = novelty.stage_layers(saved.model)
    pick = np.random.default_rng(config.seed).permutation(len(train_files.paths))[:max_train]
    fitted = novelty.fit(
        novelty_features(saved, [train_files.paths[i] for i in pick], config.batch_size),
        novelty_features(saved, val_files.paths, config.batch_size), layers)
    fitted.save(saved.folder)
    saved.metadata["novelty"] = {
        "method": "mean squared z-score of per-channel activation mean and log RMS at "
                  f"{', '.join(layers)}",
        "threshold": fitted.threshold, "percentile": fitted.percentile,
        "train_images": len(pick), "validation_images": len(val_files.paths)}
    saved.write_metadata()
    return saved.metadata["novelty"]


def fuse_probe(bundle_dir: str | Path, out: str | Path, arch: str = "efficientnet_lite0",
               weight: float = 0.5, force: bool = False, noise: float = 0.0) -> dict[str, Any]:
    """A new bundle: `bundle_dir`'s network and a linear probe on frozen ImageNet trace
    features, their logits averaged (`probe.fuse`).

    Features never tuned to the training generators carry over to new ones better (Ojha et al.,
    CVPR 2023); the probe is fitted on the bundle's own training split (sources weighed
    equally), then temperature, threshold and novelty are fitted again on its validation split.
    With `noise` (largest sigma, /255) the probe also fits a copy of every training image with
    Gaussian noise (sigma ~ U[0, noise], seeded): frozen features never learnt to ignore the
    noise filter the network was trained to shrug off.
    """
    from deepfake_detection.training import probe

    if not 0 <= noise <= 255:
        raise ConfigError(f"--noise {noise:g}: the largest noise sigma is 0 (off) to 255 (/255)")
    out = _fused_out(out, [bundle_dir], force)
    if bundle.Bundle.open(bundle_dir).metadata["adversarial_training"]["applied"]:
        raise ConfigError(f"{bundle_dir} was trained against attacks and the probe is not: the "
                          "fused detector would not keep its threat model")
    saved, config, train_files, val_files = _bundle_splits(bundle_dir)
    spec = saved.spec
    features = probe.feature_model(arch, spec.size, stages=probe.TRACE_STAGES, top=False)
    log.info("trace probe: %s features of %d training images", arch, len(train_files.paths))
    x = probe.extract(features, train_files.paths, spec, batch_size=config.batch_size)
    labels = np.asarray(train_files.labels)
    weights = data.source_weights(train_files.paths, train_files.labels)
    if noise > 0:
        rng = np.random.default_rng(config.seed)
        noisy = probe.extract(features, train_files.paths, spec, config.batch_size,
                              lambda image: add_noise(image, rng.uniform(0.0, noise), rng))
        x, labels = np.concatenate([x, noisy]), np.concatenate([labels, labels])
        weights = np.concatenate([weights, weights])
    pipeline = probe.fit(x, labels, weights)
    model = probe.fuse(saved.model, features, pipeline, weight)
    return _save_fused(saved, config, val_files, model, out, {"trace_probe": {
        "arch": arch, "weights": "imagenet", "stages": list(probe.TRACE_STAGES),
        "features": int(x.shape[1]), "weight": weight, "train_images": len(train_files.paths),
        "noise_max": noise, "regularisation_c": float(pipeline[-1].C),
        "from": os.path.relpath(bundle_dir)}})


def fuse_networks(first_dir: str | Path, second_dir: str | Path, out: str | Path,
                  weight: float = 0.5, force: bool = False) -> dict[str, Any]:
    """A new bundle: two bundles' networks read the same pixels and their calibrated logits
    are averaged, `weight` for the second (`models.fuse_logits`).

    Detectors that fail on different generator families (the plain native network and the
    residual one) can cover each other. Both must be trained on the same data, split and
    image spec, so that the fused temperature, threshold and novelty, fitted again on the
    first's validation split, are measured on images neither network trained on.
    """
    from deepfake_detection.models import fuse_logits

    if not 0 <= weight <= 1:
        raise ConfigError(f"--weight {weight}: must be in [0, 1]")
    out = _fused_out(out, [first_dir, second_dir], force)
    saved, config, _, val_files = _bundle_splits(first_dir)
    other, other_config, _, other_val = _bundle_splits(second_dir)
    if other_val.paths != val_files.paths or other.spec != saved.spec:
        raise ConfigError(f"{first_dir} and {second_dir} differ in their validation split or "
                          "image spec: the fused threshold would be fitted on training images")
    trained = {b.metadata["adversarial_training"]["applied"] for b in (saved, other)}
    if trained != {False}:
        raise ConfigError("a bundle trained against attacks cannot be fused: the fused "
                          "detector would not keep its threat model")
    temperatures = [b.calibration.temperature for b in (saved, other)]
    model = fuse_logits(saved.model, other.model,
                        [(1 - weight) / temperatures[0], weight / temperatures[1]])
    metadata = _save_fused(saved, config, val_files, model, out, {"fused_with": {
        "architecture": other_config.arch, "weight": weight,
        "temperatures": temperatures, "from": os.path.relpath(second_dir)}})
    bundle.Bundle.open(out).write_json(bundle.SECOND_CONFIG_FILE, other_config.to_dict())
    return metadata


def _fused_out(out: str | Path, sources: list[str | Path], force: bool) -> Path:
    """The new bundle's folder, refused where it would overwrite a source or a bundle."""
    out = Path(out)
    if any(out.resolve() == Path(s).resolve() for s in sources):
        raise ConfigError(f"--out {out}: is the bundle being fused; choose a new folder")
    if (out / bundle.METADATA_FILE).exists() and not force:
        raise ConfigError(f"{out} already holds a bundle: pass --force to replace it")
    return out


def _save_fused(saved: bundle.Bundle, config: TrainConfig, val_files: data.FileList,
                model: keras.Model, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Temperature, thresholds and novelty fitted again on the validation split, then the
    fused network saved as a bundle carrying `saved`'s metadata and `record`."""
    val_images = data.make_dataset(val_files.paths, None, saved.spec, config.batch_size)
    point = operating_point(model, val_images, val_files.labels, config)
    # Novelty is fitted again below; the family head's file is not carried over.
    metadata = {key: value for key, value in saved.metadata.items()
                if key not in ("novelty", "family_head", "reload_check", "schema_version")}
    metadata.update({
        "threshold": point["threshold"], "calibration": point["calibration"].to_dict(),
        "operating_points": point["operating_points"],
        "validation_metrics": score(val_files.labels, point["val_probs"],
                                    point["threshold"]["value"], also_at_half=True),
        **record, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    new = bundle.Bundle(out, metadata, model)
    new.save(next(iter(val_images)).numpy()[:8])
    new.write_json(bundle.CONFIG_FILE, config.to_dict())
    if saved.history is not None:
        new.write_json(bundle.HISTORY_FILE, saved.history)
    fit_novelty(out)
    return new.metadata
