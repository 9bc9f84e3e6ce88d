"""Training and inference entry points of the TensorFlow PINN (no I/O, no Ray).

The same semantics as ``ptycho_dist/models/torch/train.py`` (and its LightningModule), with a
custom loop (``tf.function`` + ``GradientTape``) instead of Lightning:

* split, normalization factor and inputs from :func:`~ptycho_dist.models.data.prepare_arrays`;
  initial ``log_scale`` from :func:`~ptycho_dist.models.data.starting_log_scale`;
* Adam (lr ``config.lr``, betas 0.9/0.999, epsilon 1e-8; Keras adds epsilon to the uncorrected
  ``sqrt(v)``, PyTorch to the bias-corrected ``sqrt(v_hat)``: the updates differ only where
  ``sqrt(v) ~ 1e-8``); batches of ``config.batch_size`` drawn from a fresh permutation of the
  training split every epoch (``np.random.default_rng(seed)``);
* the epoch loss is the pattern-weighted mean over batches; the validation loss is computed after
  every training epoch, also in an epoch that diverged (as Lightning does);
* the learning-rate schedule and early stopping are :class:`ptycho_dist.models.schedule.Schedule`,
  the same code the torch backend runs (``config.schedule``: PyTorch's or PtychoPINN's Keras
  rules), stepped after every epoch's validation pass;
* the first step with a non-finite loss is skipped (no update), the epoch is finished there
  (validation still runs), ``diverged_epoch`` is set and training stops; a non-finite validation
  loss also stops training. Never an exception.

Seeding: ``keras.utils.set_random_seed(seed mod 2**32)``, the initializers seeded from ``seed``
(:class:`~ptycho_dist.models.tf.net.PinnModel`) and, on CPU,
``tf.config.experimental.enable_op_determinism()`` for the fit (the previous state is restored
afterwards): on CPU the same seed gives bit-identical weights. On GPU the run is seeded but not
forced deterministic (as in the torch backend).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig
from ptycho_dist.models.data import (
    InferResult,
    PreparedArrays,
    TrainData,
    TrainResult,
    prepare_arrays,
    prepare_inference,
    starting_log_scale,
)
from ptycho_dist.models.schedule import Schedule
from ptycho_dist.models.tf.losses import loss_function
from ptycho_dist.models.tf.net import PinnModel, export_weights, import_weights

__all__ = [
    "train_pinn",
    "infer_pinn",
    "resolve_accelerator",
    "resolve_device",
    "Fit",
    "make_fit",
]

StepFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def _has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_accelerator(accelerator: str) -> str:
    """"auto" -> "gpu" when TensorFlow sees a GPU else "cpu"; "cpu"/"gpu" unchanged.

    Raises
    ------
    ModelError
        For any other value, or "gpu" without a GPU.
    """
    if accelerator not in ("auto", "cpu", "gpu"):
        raise ModelError(f"accelerator must be 'auto', 'cpu' or 'gpu', got {accelerator!r}")
    if accelerator == "auto":
        return "gpu" if _has_gpu() else "cpu"
    if accelerator == "gpu" and not _has_gpu():
        raise ModelError("accelerator='gpu' was asked for but TensorFlow sees no GPU")
    return accelerator


def resolve_device(device: str | None) -> str:
    """TensorFlow device name for ``device``: None -> "/GPU:0" when a GPU is seen, else "/CPU:0".

    Accepts "cpu", "gpu", "cuda", "gpu:k", "cuda:k" and TF names such as "/GPU:1".

    Raises
    ------
    ModelError
        For any other string.
    """
    if device is None:
        return "/GPU:0" if _has_gpu() else "/CPU:0"
    if device.startswith("/"):
        return device
    kind, _, index = device.lower().partition(":")
    if kind in ("cpu", "gpu", "cuda") and (index == "" or index.isdigit()):
        return f"/{'CPU' if kind == 'cpu' else 'GPU'}:{index or 0}"
    raise ModelError(f"device must be None, 'cpu', 'gpu[:k]', 'cuda[:k]' or a TF name, got {device!r}")


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """``enable_op_determinism`` for the block when ``enabled``; the previous state is restored.

    TensorFlow has no public switch back; the private one is used when present, otherwise
    determinism stays on (harmless on CPU).
    """
    try:
        from tensorflow.python.framework import config as tf_config
    except ImportError:  # pragma: no cover - private module moved
        tf_config = None
    previous = bool(getattr(tf_config, "is_op_determinism_enabled", lambda: True)())
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        disable = getattr(tf_config, "disable_op_determinism", None)
        if enabled and not previous and disable is not None:
            disable()


@dataclass
class Fit:
    """The state of one fit: model, optimizer, compiled steps, history and divergence."""

    model: PinnModel
    config: PinnConfig
    optimizer: keras.optimizers.Optimizer
    train_step: StepFn
    eval_step: StepFn
    lr: float
    history: list[dict[str, Any]] = field(default_factory=list)
    diverged_epoch: int | None = None


def _signature(config: PinnConfig) -> list[tf.TensorSpec]:
    c, n = config.channels, config.n
    return [tf.TensorSpec((None, c, n, n), tf.float32), tf.TensorSpec((None, c, 2), tf.float32),
            tf.TensorSpec((None, c, n, n), tf.float32)]


def make_fit(model: PinnModel, config: PinnConfig) -> Fit:
    """Adam on the trainable variables and the two compiled steps.

    ``train_step(x, relative, counts)`` returns the batch loss and applies one Adam update unless
    the loss is non-finite; ``eval_step`` returns the loss only. Inputs channels-first, float32.
    """
    loss_fn = loss_function(config.loss)   # eager: a bad name is a ModelError, not a StagingError
    variables = model.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=0.9, beta_2=0.999,
                                      epsilon=1e-8)
    optimizer.build(variables)

    @tf.function(input_signature=_signature(config))
    def train_step(x: tf.Tensor, rel: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            _, amp = model(x, rel, training=True)
            loss = loss_fn(amp, counts)
        grads = tape.gradient(loss, variables)
        if tf.math.is_finite(loss):
            optimizer.apply(grads, variables)
        return loss

    @tf.function(input_signature=_signature(config))
    def eval_step(x: tf.Tensor, rel: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
        _, amp = model(x, rel, training=False)
        return loss_fn(amp, counts)

    return Fit(model, config, optimizer, train_step, eval_step, lr=config.lr)


def _batches(arrays: PreparedArrays, idx: np.ndarray, batch_size: int
             ) -> Iterator[tuple[int, tuple[tf.Tensor, tf.Tensor, tf.Tensor]]]:
    """``(size, (x, relative, counts))`` for consecutive slices of the group indices ``idx``."""
    for start in range(0, len(idx), batch_size):
        sel = idx[start: start + batch_size]
        yield len(sel), (tf.constant(arrays.inputs[sel]), tf.constant(arrays.relative[sel]),
                         tf.constant(arrays.counts[sel]))


def _mean_loss(step: StepFn, arrays: PreparedArrays, idx: np.ndarray, batch_size: int,
               stop_on_nonfinite: bool) -> float:
    """Pattern-weighted mean of ``step`` over batches (stops after a non-finite one if asked)."""
    total, count = 0.0, 0
    for size, batch in _batches(arrays, idx, batch_size):
        value = float(step(*batch))
        total, count = total + value * size, count + size
        if stop_on_nonfinite and not math.isfinite(value):
            break
    return total / count if count else math.nan


def _run_epoch(fit: Fit, arrays: PreparedArrays, epoch: int, order: np.ndarray) -> None:
    """One training epoch and its validation; appends the history row."""
    cfg, t0 = fit.config, time.perf_counter()
    train_loss = _mean_loss(fit.train_step, arrays, order, cfg.batch_size, True)
    has_val = len(arrays.val_idx) > 0
    val_loss = (_mean_loss(fit.eval_step, arrays, arrays.val_idx, cfg.batch_size, False)
                if has_val else math.nan)
    monitored = val_loss if has_val else train_loss
    nonfinite = not (math.isfinite(train_loss) and math.isfinite(monitored))
    if nonfinite and fit.diverged_epoch is None:
        fit.diverged_epoch = epoch
    fit.history.append({
        "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": fit.lr,
        "intensity_scale": float(tf.exp(fit.model.log_scale)), "nonfinite": nonfinite,
        "seconds": time.perf_counter() - t0,
    })


def _fit(fit: Fit, arrays: PreparedArrays, *, seed: int, progress: bool) -> None:
    """The epoch loop: shuffle, train, validate, schedule the rate, stop early or on divergence."""
    cfg = fit.config
    gen = np.random.default_rng(seed)
    schedule = Schedule.create(cfg.schedule, lr=cfg.lr, factor=cfg.plateau_factor,
                               patience=cfg.plateau_patience, min_lr=cfg.min_lr,
                               early_stopping_patience=cfg.early_stopping_patience,
                               has_val=len(arrays.val_idx) > 0)
    bar = keras.utils.Progbar(cfg.epochs) if progress else None
    for epoch in range(cfg.epochs):
        order = arrays.train_idx[gen.permutation(len(arrays.train_idx))]
        _run_epoch(fit, arrays, epoch, order)
        if bar is not None:
            row = fit.history[-1]
            bar.update(epoch + 1, [("train_loss", row["train_loss"]), ("val_loss", row["val_loss"])])
        if fit.diverged_epoch is not None:
            break
        fit.lr, stop = schedule.step(fit.history[-1]["train_loss"], fit.history[-1]["val_loss"])
        fit.optimizer.learning_rate = fit.lr
        if stop:
            break


def train_pinn(data: TrainData, config: PinnConfig, *, seed: int, accelerator: str = "auto",
               devices: int = 1, progress: bool = False) -> TrainResult:
    """Train the PINN on one device (custom Keras/TF loop) and return weights, scales and history.

    Parameters
    ----------
    data : TrainData
        Counts (B, C, N, N), dose scale s, probe (N, N), relative coordinates (B, C, 2), nphotons.
    config : PinnConfig
    seed : int
        Seeds the split, the weight initialization and the shuffling. On CPU the run is
        deterministic (same seed -> identical weights).
    accelerator : {"auto", "cpu", "gpu"}
        "auto" picks the GPU when TensorFlow sees one.
    devices : int
        Must be 1 (multi-device training goes through the Ray Train path).
    progress : bool
        Show a Keras progress bar over the epochs.

    Returns
    -------
    TrainResult
        A non-finite loss never raises: training stops and ``diverged_epoch`` is set.

    Raises
    ------
    ModelError
        If the data do not match the config, the split leaves no training group, or the
        accelerator / device count is not available.
    """
    acc = resolve_accelerator(accelerator)
    if devices != 1:
        raise ModelError(f"the single-process TF trainer uses devices=1, got {devices!r}; "
                        "use the Ray Train path for several devices")
    arrays = prepare_arrays(data, config, seed=seed)
    log_scale = starting_log_scale(config, nphotons=data.nphotons, scale=data.scale)
    t0 = time.perf_counter()
    with deterministic(acc == "cpu"), tf.device("/GPU:0" if acc == "gpu" else "/CPU:0"):
        keras.utils.set_random_seed(seed % 2**32)  # numpy's global seed must fit 32 bits
        model = PinnModel(config, data.probe, log_scale=log_scale, seed=seed)
        fit = make_fit(model, config)
        _fit(fit, arrays, seed=seed, progress=progress)
        weights, final_scale = export_weights(model), float(model.log_scale.numpy())
    return TrainResult(
        weights=weights, norm_factor=arrays.norm_factor, log_scale=final_scale,
        history=list(fit.history), diverged_epoch=fit.diverged_epoch,
        seconds=time.perf_counter() - t0, n_train=len(arrays.train_idx), n_val=len(arrays.val_idx))


def infer_pinn(weights: dict[str, np.ndarray], config: PinnConfig, *, counts: np.ndarray,
               scale: float, probe: np.ndarray, relative: np.ndarray, norm_factor: float,
               log_scale: float, batch_size: int = 64, device: str | None = None) -> InferResult:
    """Predict object patches and amplitudes with a trained model.

    The inputs are ``normalized_inputs(counts, scale=scale, norm_factor=norm_factor)`` and the
    intensity scale is ``exp(log_scale)``: both come from the bundle and are used unchanged.

    Parameters
    ----------
    weights : dict of str to ndarray
        Canonical weights (:func:`ptycho_dist.models.weights.weight_layout`), from either backend.
    config : PinnConfig
    counts : ndarray, shape (B, C, N, N)
    scale : float
        Dose scale s of these counts.
    probe : ndarray, complex64, shape (N, N)
    relative : ndarray, shape (B, C, 2)
    norm_factor, log_scale : float
        From the training result / bundle.
    batch_size : int
    device : str or None
        See :func:`resolve_device`; None means the GPU when TensorFlow sees one, else the CPU.

    Returns
    -------
    InferResult
        ``object_patches`` complex64 (B, C, N, N), ``pred_amplitude`` float32 (B, C, N, N).

    Raises
    ------
    ModelError
        Inputs that do not fit (:func:`~ptycho_dist.models.data.prepare_inference`), weights that
        do not match the config, or an unknown device.
    """
    x, rel = prepare_inference(config, counts=counts, scale=scale, probe=probe, relative=relative,
                               norm_factor=norm_factor, log_scale=log_scale, batch_size=batch_size)
    if x.shape[0] == 0:
        return InferResult.empty(config)
    with tf.device(resolve_device(device)):
        model = PinnModel(config, probe, log_scale=log_scale, seed=0)
        import_weights(model, weights)
        forward = tf.function(lambda a, r: model(a, r, training=False),
                              input_signature=_signature(config)[:2])
        parts = [forward(tf.constant(x[s: s + batch_size]), tf.constant(rel[s: s + batch_size]))
                 for s in range(0, x.shape[0], batch_size)]
    return InferResult(np.concatenate([p[0].numpy() for p in parts]).astype(np.complex64),
                       np.concatenate([p[1].numpy() for p in parts]).astype(np.float32))
