"""Adversarial attacks in the pixels the model really consumes, with their sanity checks.

Threat model everywhere: L-inf, untargeted, true labels always passed, eps given in 1/255 of the
input range (models take 0..255, so eps 8/255 moves each pixel by at most 8 grey levels).

Evaluation uses the Adversarial Robustness Toolbox (ART). ART's classifiers expect one score per
class, and with a single sigmoid output its FGSM labels every image FAKE when no labels are
given (ART issue #306); so the detector is shown to ART as two logits `[0, z]`, whose softmax is
exactly `[1 - sigmoid(z), sigmoid(z)]`. Training uses in-graph TensorFlow versions of the same
attacks (`fgsm_tf`, `pgd_tf`), which a test proves equal to ART's on the same batch.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from deepfake_detection.imaging import PIXEL_RANGE


def parse_eps(value: str | float) -> float:
    """An eps in 1/255 units from `8/255` (a fraction written out), `8` (a number of 1/255
    steps: 1 or more) or `0.05` (below 1: a fraction of the pixel range, the original design's
    `--eps 0.05`, which is 12.75/255). `describe_eps` says which reading was taken."""
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            eps = float(Fraction(num.strip()) / Fraction(den.strip()) * 255)
        else:
            number = float(text)
            eps = number * 255 if number < 1 else number
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"eps {text!r}: write 8/255, 8 (in 1/255 steps) or 0.03 (a fraction "
                         "of the pixel range)") from None
    if not 0 < eps <= 255:
        raise ValueError(f"eps {text!r} is {eps:g}/255: it must be above 0 and at most 255/255")
    return eps


def describe_eps(value: str | float) -> str:
    """How `parse_eps` read `value`, for reports: e.g. `12.75/255 (given as 0.05, a fraction
    of the 0..255 pixel range)`."""
    text = str(value).strip()
    eps = parse_eps(text)
    if "/" in text:
        how = "a fraction written out"
    elif float(text) < 1:
        how = "a fraction of the 0..255 pixel range"
    else:
        how = "a number of 1/255 steps"
    return f"{eps:g}/255 (given as {text}, {how})"


def eps_to_pixels(eps255: float) -> float:
    """Convert eps in /255 units to the model's input scale."""
    return eps255 * (PIXEL_RANGE[1] - PIXEL_RANGE[0]) / 255.0


class TwoLogits:
    """Callable showing a one-logit model as logits `[offset, z]`, always in inference mode.

    With `offset` at the detector's decision logit, ART's argmax is the detector's own verdict
    (threshold and temperature included), so an attack succeeds exactly when the verdict flips.
    """

    def __init__(self, model, offset: float = 0.0):
        self.model = model
        self.offset = float(offset)

    def __call__(self, x, training: bool = False):
        import tensorflow as tf

        z = self.model(x, training=False)  # attacks never run the model in training mode
        return tf.concat([tf.fill(tf.shape(z), tf.cast(self.offset, z.dtype)), z], axis=1)


class MarginLoss:
    """Carlini-Wagner margin of two logits, `z_wrong - z_true`: APGD's second loss here, since
    AutoAttack's DLR loss needs three classes (its denominator is `z_1 - z_3`). ART sets
    `reduction` to Keras' NONE / SUM / SUM_OVER_BATCH_SIZE per call."""

    reduction = "sum_over_batch_size"

    def __call__(self, y_true, y_pred):
        import tensorflow as tf

        onehot = tf.cast(y_true, y_pred.dtype)
        margin = tf.reduce_sum(y_pred * (1 - onehot), 1) - tf.reduce_sum(y_pred * onehot, 1)
        reduction = str(getattr(self.reduction, "value", self.reduction)).lower()
        if reduction == "none":
            return margin
        return tf.reduce_sum(margin) if reduction == "sum" else tf.reduce_mean(margin)


def art_classifier(model, input_size: int,
                   offset: float = 0.0, loss: str = "ce"):
    """An ART TensorFlowV2Classifier over `TwoLogits(model, offset)` with the real clip values
    and a cross-entropy (`ce`) or margin (`margin`) loss."""
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(
        model=TwoLogits(model, offset),
        nb_classes=2,
        input_shape=(input_size, input_size, 3),
        loss_object=(MarginLoss() if loss == "margin" else
                     tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
        clip_values=PIXEL_RANGE,
    )


def art_attack(classifier, kind: str, eps255: float, steps: int = 10,
               step_size255: float | None = None, random_start: bool = True,
               batch_size: int | None = None):
    """An ART FGSM or PGD (L-inf, untargeted). PGD's default step is 2.5 * eps / steps; the
    default batch follows the classifier's input size (`attack_batch`). (Seven parameters: the
    classifier and ART's own independent knobs of one attack.)"""
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    eps = eps_to_pixels(eps255)
    batch_size = batch_size or attack_batch(classifier.input_shape[0])
    if kind == "fgsm":
        return FastGradientMethod(classifier, norm=np.inf, eps=eps, eps_step=eps,
                                  batch_size=batch_size)
    if kind == "pgd":
        step = eps_to_pixels(step_size255) if step_size255 else 2.5 * eps / steps
        return ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
            num_random_init=1 if random_start else 0, batch_size=batch_size, verbose=False)
    raise ValueError(f"unknown attack {kind!r}; use 'fgsm' or 'pgd'")


# The strongest standard check, in the spirit of AutoAttack (Croce & Hein 2020) for a two-logit
# model: APGD on cross-entropy and on the margin (for DLR, which needs three classes), PGD-50
# with restarts, and the gradient-free Square attack, which gradient masking cannot fool.
STRONG_ATTACKS = ("apgd_ce", "apgd_margin", "pgd50", "square")


def strong_attack(classifier, margin_classifier, kind: str, eps255: float,
                  restarts: int = 1, square_queries: int = 1000, batch_size: int | None = None):
    """One attack of STRONG_ATTACKS (L-inf, untargeted, 100 APGD iterations); the default
    batch follows the classifier's input size (`attack_batch`). (Seven parameters: two views
    of the classifier and ART's own independent knobs of one attack.)"""
    from art.attacks.evasion import (
        AutoProjectedGradientDescent,
        ProjectedGradientDescent,
        SquareAttack,
    )

    eps = eps_to_pixels(eps255)
    batch_size = batch_size or attack_batch(classifier.input_shape[0])
    if kind in ("apgd_ce", "apgd_margin"):
        return AutoProjectedGradientDescent(
            margin_classifier if kind == "apgd_margin" else classifier, norm=np.inf, eps=eps,
            eps_step=2 * eps, max_iter=100, nb_random_init=restarts, batch_size=batch_size,
            loss_type=None, verbose=False)
    if kind == "pgd50":
        return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=eps / 10,
                                        max_iter=50, num_random_init=max(restarts, 3),
                                        batch_size=batch_size, verbose=False)
    if kind == "square":
        return SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=square_queries,
                            p_init=0.8, nb_restarts=restarts, batch_size=batch_size,
                            verbose=False)
    raise ValueError(f"unknown attack {kind!r}; use one of {STRONG_ATTACKS}")


def generate(classifier, kind: str, x: np.ndarray, y: np.ndarray, eps255: float,
             seed: int = 0, **kwargs) -> np.ndarray:
    """Adversarial images for `x` with true labels `y` (0 = REAL, 1 = FAKE), seeded; `kwargs`
    are `art_attack`'s."""
    return run_attack(art_attack(classifier, kind, eps255, **kwargs), x, y, seed)


def run_attack(attack, x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Run any ART evasion attack on `x` with the true labels `y`, seeded."""
    np.random.seed(seed)  # ART draws random starts from NumPy's global generator
    labels = np.eye(2, dtype=np.float32)[np.asarray(y, dtype=int)]
    return attack.generate(x=np.asarray(x, np.float32), y=labels).astype(np.float32)


def _bce_grad_sign(model, x, y):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)[:, 0]
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.sign(tape.gradient(loss, x))


def fgsm_tf(model, x, y, eps: float, random_start: bool = False, seed=None):
    """In-graph FGSM (optionally from a random start: 'fast is better than free').

    `eps` is in the model's input units; `y` holds 0/1 labels as floats.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.cast(tf.reshape(y, [-1]), tf.float32)
    start = x
    if random_start:
        start = x + tf.random.uniform(tf.shape(x), -eps, eps, seed=seed)
        start = tf.clip_by_value(start, *PIXEL_RANGE)
        step = 1.25 * eps  # Wong et al. 2020's step for FGSM with a random start
    else:
        step = eps
    adv = start + step * _bce_grad_sign(model, start, y)
    adv = tf.clip_by_value(adv, x - eps, x + eps)
    return tf.stop_gradient(tf.clip_by_value(adv, *PIXEL_RANGE))


def pgd_tf(model, x, y, eps: float, steps: int, step_size: float, seed=None):
    """In-graph L-inf PGD from a uniform random start (Madry et al. 2018). (Seven parameters:
    the model, the batch and the attack's definition: eps, steps, step size, seed.)"""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.cast(tf.reshape(y, [-1]), tf.float32)
    adv = tf.clip_by_value(x + tf.random.uniform(tf.shape(x), -eps, eps, seed=seed),
                           *PIXEL_RANGE)
    for _ in range(steps):
        adv = adv + step_size * _bce_grad_sign(model, adv, y)
        adv = tf.clip_by_value(tf.clip_by_value(adv, x - eps, x + eps), *PIXEL_RANGE)
    return tf.stop_gradient(adv)


def attack_batch(image_size: int) -> int:
    """Images per attack batch: 128 at 32-64 px, fewer for larger inputs (8 at 256 px), so the
    gradients of an EfficientNet-Lite at 256x256 stay within a few GB (128 took 23 GB)."""
    return int(np.clip(128 * (64 / image_size) ** 2, 8, 128))


def input_gradient_norm(model, x: np.ndarray, y: np.ndarray, chunk: int = 32) -> float:
    """Mean |d loss / d x|: zero means attacks see a flat (masked) gradient and prove nothing."""
    import tensorflow as tf

    total = 0.0
    for i in range(0, len(x), chunk):
        batch = tf.constant(x[i:i + chunk], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(batch)
            logits = model(batch, training=False)[:, 0]
            loss = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.constant(y[i:i + chunk], tf.float32), logits=logits)
        total += float(tf.reduce_sum(tf.reduce_mean(tf.abs(tape.gradient(loss, batch)),
                                                    axis=(1, 2, 3))))
    return total / max(1, len(x))


def perturbation_check(x: np.ndarray, x_adv: np.ndarray, eps255: float) -> dict[str, Any]:
    """`0 < ||x_adv - x||_inf <= eps` and inside the pixel range, in /255 units."""
    scale = 255.0 / (PIXEL_RANGE[1] - PIXEL_RANGE[0])
    linf = float(np.max(np.abs(x_adv.astype(np.float64) - x)) * scale)
    return {
        "linf_255": linf,
        "within_eps": linf <= eps255 + 1e-3,
        "nonzero": linf > 0,
        "in_range": bool(x_adv.min() >= PIXEL_RANGE[0] - 1e-3
                         and x_adv.max() <= PIXEL_RANGE[1] + 1e-3),
    }


def quantize(x_adv: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels, as saving the adversarial image to PNG would."""
    return np.clip(np.round(x_adv), 0, 255).astype(np.float32)
