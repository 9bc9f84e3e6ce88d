"""Training and inference entry points of the PyTorch PINN (no I/O, no Ray).

:func:`train_pinn` splits the groups (seeded), computes the normalization factor on the training
split, trains with Lightning and returns a :class:`~ptycho_dist.models.data.TrainResult`;
:func:`infer_pinn` runs a trained model with the bundle's normalization factor and intensity scale
unchanged. The pieces (:func:`prepare_data`, :func:`make_module`, :func:`make_trainer`,
:func:`fit`) are reused by the Ray Train path.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig
from ptycho_dist.models.data import (
    InferResult,
    TrainData,
    TrainResult,
    prepare_arrays,
    prepare_inference,
    starting_log_scale,
)
from ptycho_dist.models.torch.lightning import PinnLightning
from ptycho_dist.models.torch.net import PinnNet, export_weights, import_weights

__all__ = [
    "train_pinn",
    "infer_pinn",
    "PreparedData",
    "prepare_data",
    "make_module",
    "make_loader",
    "make_trainer",
    "fit",
    "resolve_accelerator",
]

#: Lightning warnings that are expected here (in-memory data, tiny test runs) and carry no signal
_QUIET_MESSAGES = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*GPU available but not used.*",
    r".*`training_step` returned `None`.*",  # on purpose: the step of a non-finite loss is skipped
    r".*defined a `validation_step` but have no `val_dataloader`.*",  # val_fraction = 0
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning 2.6 on torch 2.13
    r".*The `srun` command is available on your system but is not used.*",  # a SLURM client installed
)


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Tensor datasets of both splits and the normalization factor of the training split."""

    train: TensorDataset
    val: TensorDataset | None
    norm_factor: float


def resolve_accelerator(accelerator: str) -> str:
    """"auto" -> "gpu" when CUDA is available else "cpu"; "cpu"/"gpu" unchanged.

    Raises
    ------
    ModelError
        For any other value, or "gpu" without CUDA.
    """
    if accelerator not in ("auto", "cpu", "gpu"):
        raise ModelError(f"accelerator must be 'auto', 'cpu' or 'gpu', got {accelerator!r}")
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ModelError("accelerator='gpu' was asked for but torch sees no CUDA device")
    return accelerator


def prepare_data(data: TrainData, config: PinnConfig, *, seed: int) -> PreparedData:
    """Tensor datasets of :func:`~ptycho_dist.models.data.prepare_arrays` (split + normalization).

    Raises
    ------
    ModelError
        If the data's N or C do not match the config, or the training split is empty.
    """
    arrays = prepare_arrays(data, config, seed=seed)

    def subset(idx: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(arrays.inputs[idx]),
                             torch.from_numpy(arrays.relative[idx]),
                             torch.from_numpy(arrays.counts[idx]))

    val = subset(arrays.val_idx) if len(arrays.val_idx) else None
    return PreparedData(subset(arrays.train_idx), val, arrays.norm_factor)


def make_module(data: TrainData, config: PinnConfig, *, seed: int, has_val: bool) -> PinnLightning:
    """The LightningModule with weights drawn from ``torch.manual_seed(seed)`` (global RNG restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = PinnLightning(config, data.probe, has_val=has_val,
                               log_scale=starting_log_scale(config, nphotons=data.nphotons,
                                                                 scale=data.scale))
    return module.to(memory_format=torch.channels_last) if config.channels_last else module


def make_loader(dataset: TensorDataset, config: PinnConfig, *, seed: int, shuffle: bool,
                sampler: Sampler[int] | None = None) -> DataLoader:
    """In-process DataLoader (no workers); shuffling uses its own generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, generator=generator, num_workers=0)


def make_trainer(config: PinnConfig, *, accelerator: str, devices: int | str = 1,
                 progress: bool = False, strategy: str | pl.strategies.Strategy = "auto",
                 plugins: list[Any] | None = None,
                 use_distributed_sampler: bool = True) -> pl.Trainer:
    """A Lightning Trainer without loggers, checkpoints or callbacks (nothing is written to disk;
    the schedule and early stopping live in the module, :class:`~ptycho_dist.models.schedule.Schedule`).

    ``strategy``, ``plugins`` and ``use_distributed_sampler`` are for the Ray Train path
    (``RayDDPStrategy``, ``RayLightningEnvironment``, our own ``DistributedSampler``).
    """
    with quiet_lightning():
        return pl.Trainer(
            max_epochs=config.epochs, accelerator=accelerator, devices=devices, logger=False,
            enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
            num_sanity_val_steps=0, strategy=strategy, plugins=plugins,
            use_distributed_sampler=use_distributed_sampler,
            precision="bf16-mixed" if config.precision == "bf16-mixed" else "32-true")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info banners and its expected, signal-free warnings (restored after)."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _QUIET_MESSAGES:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Turn on ``torch.use_deterministic_algorithms`` for the block (previous state restored)."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or previous)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def fit(trainer: pl.Trainer, module: PinnLightning, train: DataLoader,
        val: DataLoader | None, *, cpu: bool) -> float:
    """Run ``trainer.fit`` quietly (deterministic algorithms on CPU); return wall seconds."""
    t0 = time.perf_counter()
    with quiet_lightning(), deterministic(cpu):
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    return time.perf_counter() - t0


def result_of(module: PinnLightning, prepared: PreparedData, seconds: float) -> TrainResult:
    """Package a fitted module as a :class:`TrainResult`."""
    return TrainResult(
        weights=export_weights(module.net), norm_factor=prepared.norm_factor,
        log_scale=float(module.net.log_scale.detach().cpu()), history=list(module.history),
        diverged_epoch=module.diverged_epoch, seconds=seconds, n_train=len(prepared.train),
        n_val=0 if prepared.val is None else len(prepared.val))


def _device(device: str | None) -> torch.device:
    """Torch device for ``device``: None -> "cuda" when available, else "cpu".

    Raises
    ------
    ModelError
        For a string torch does not parse as a device.
    """
    try:
        return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"device must be None or a torch device name ('cpu', 'cuda[:k]'), "
                         f"got {device!r}") from exc


def train_pinn(data: TrainData, config: PinnConfig, *, seed: int, accelerator: str = "auto",
               devices: int = 1, progress: bool = False) -> TrainResult:
    """Train the PINN on one device (Lightning) and return weights, scales and history.

    Parameters
    ----------
    data : TrainData
        Counts (B, C, N, N), dose scale s, probe (N, N), relative coordinates (B, C, 2), nphotons.
    config : PinnConfig
    seed : int
        Seeds the split, the weight initialization and the shuffling. On CPU the run is
        deterministic (same seed -> identical weights).
    accelerator : {"auto", "cpu", "gpu"}
    devices : int
        Number of devices (1 for this single-process path; use the Ray Train path for more).
    progress : bool
        Show Lightning's progress bar.

    Returns
    -------
    TrainResult
        A non-finite loss never raises: training stops and ``diverged_epoch`` is set.

    Raises
    ------
    ModelError
        If the data do not match the config, the split leaves no training group, or the
        accelerator is not available.
    """
    acc = resolve_accelerator(accelerator)
    prepared = prepare_data(data, config, seed=seed)
    module = make_module(data, config, seed=seed, has_val=prepared.val is not None)
    train = make_loader(prepared.train, config, seed=seed, shuffle=True)
    val = None if prepared.val is None else make_loader(prepared.val, config, seed=seed,
                                                        shuffle=False)
    trainer = make_trainer(config, accelerator=acc, devices=devices, progress=progress)
    seconds = fit(trainer, module, train, val, cpu=acc == "cpu")
    return result_of(module, prepared, seconds)


def infer_pinn(weights: dict[str, np.ndarray], config: PinnConfig, *, counts: np.ndarray,
               scale: float, probe: np.ndarray, relative: np.ndarray, norm_factor: float,
               log_scale: float, batch_size: int = 64, device: str | None = None) -> InferResult:
    """Predict object patches and amplitudes with a trained model.

    The inputs are ``normalized_inputs(counts, scale=scale, norm_factor=norm_factor)`` and the
    intensity scale is ``exp(log_scale)``: both come from the bundle and are used unchanged.

    Parameters
    ----------
    weights : dict of str to ndarray
        Canonical weights (:func:`ptycho_dist.models.weights.weight_layout`).
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
        Torch device; None means "cuda" when available else "cpu".

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
    dev = _device(device)
    net = PinnNet(config, probe, log_scale=log_scale)
    import_weights(net, weights)
    net = net.to(dev).eval()
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    objs, amps = [], []
    bf16 = config.precision == "bf16-mixed"
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            obj, amp = net(torch.from_numpy(x[sl]).to(dev), torch.from_numpy(rel[sl]).to(dev))
            objs.append(obj.cpu().numpy())
            amps.append(amp.cpu().numpy())
    return InferResult(np.concatenate(objs).astype(np.complex64),
                       np.concatenate(amps).astype(np.float32))
