"""LightningModule of the PINN: Adam, per-epoch history, divergence stop, and the learning-rate
schedule and early stopping of :class:`ptycho_dist.models.schedule.Schedule` (the same code the TF
backend runs), stepped at the end of every epoch after its validation pass.

Divergence: the first step (or validation epoch) whose loss is not finite marks the current epoch
as diverged, skips that optimizer step and asks the trainer to stop; training ends normally and the
epoch is reported in :attr:`PinnLightning.diverged_epoch` (never an exception). Under DDP the
decision is reduced over ranks (any rank non-finite -> all skip), so ranks never disagree.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from ptycho_dist.models.config import PinnConfig
from ptycho_dist.models.schedule import Schedule
from ptycho_dist.models.torch.losses import loss_function
from ptycho_dist.models.torch.net import PinnNet

__all__ = ["PinnLightning"]

Batch = tuple[Tensor, Tensor, Tensor]


class PinnLightning(pl.LightningModule):
    """Trains :class:`PinnNet` on batches ``(x, relative, counts)``.

    Parameters
    ----------
    config : PinnConfig
    probe : ndarray, complex64, shape (N, N)
    log_scale : float
        Initial log intensity scale.
    has_val : bool
        Whether a validation loader is given; decides the monitored metric
        (``val_loss``, else ``train_loss``).

    Attributes
    ----------
    history : list of dict
        One row per epoch (keys :data:`ptycho_dist.models.data.HISTORY_KEYS`).
    diverged_epoch : int or None
        First 0-based epoch with a non-finite loss.
    """

    def __init__(self, config: PinnConfig, probe: np.ndarray, *, log_scale: float,
                 has_val: bool = True) -> None:
        super().__init__()
        self.config = config
        self.loss_fn = loss_function(config.loss)
        self.net = PinnNet(config, probe, log_scale=log_scale)
        self.monitor = "val_loss" if has_val else "train_loss"
        self.history: list[dict[str, Any]] = []
        self.diverged_epoch: int | None = None
        self._train_acc = [0.0, 0]
        self._val_acc = [0.0, 0]
        self._val_loss = math.nan
        self._epoch_lr = config.lr
        self._t0 = 0.0
        self.schedule = Schedule.create(
            config.schedule, lr=config.lr, factor=config.plateau_factor,
            patience=config.plateau_patience, min_lr=config.min_lr,
            early_stopping_patience=config.early_stopping_patience, has_val=has_val)

    def forward(self, x: Tensor, relative: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(x, relative)

    def _loss(self, batch: Batch) -> Tensor:
        x, relative, counts = batch
        _, pred = self.net(x, relative)
        return self.loss_fn(pred, counts)

    def _mark_diverged(self) -> None:
        if self.diverged_epoch is None:
            self.diverged_epoch = int(self.current_epoch)
        self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        self._train_acc = [0.0, 0]
        self._val_loss = math.nan
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self._t0 = time.perf_counter()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        loss = self._loss(batch)
        value = float(loss.detach())
        n = int(batch[0].shape[0])
        self._train_acc[0] += value * n
        self._train_acc[1] += n
        if self.trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            self._mark_diverged()
            return None
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_acc = [0.0, 0]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        n = int(batch[0].shape[0])
        self._val_acc[0] += float(self._loss(batch)) * n
        self._val_acc[1] += n

    def on_validation_epoch_end(self) -> None:
        self._val_loss = self._reduced_mean(self._val_acc)
        self.log("val_loss", self._val_loss, sync_dist=True)
        if not math.isfinite(self._val_loss):
            self._mark_diverged()

    def on_train_epoch_end(self) -> None:
        train_loss = self._reduced_mean(self._train_acc)
        self.log("train_loss", train_loss, sync_dist=True)
        nonfinite = not math.isfinite(train_loss) or (self.monitor == "val_loss"
                                                      and not math.isfinite(self._val_loss))
        if nonfinite:
            self._mark_diverged()
        self.history.append({
            "epoch": int(self.current_epoch),
            "train_loss": train_loss,
            "val_loss": self._val_loss,
            "lr": self._epoch_lr,
            "intensity_scale": float(torch.exp(self.net.log_scale.detach()).cpu()),
            "nonfinite": bool(nonfinite),
            "seconds": time.perf_counter() - self._t0,
        })
        if self.diverged_epoch is not None:
            return
        # every rank holds the same reduced losses, so every rank takes the same decisions
        lr, stop = self.schedule.step(train_loss, self._val_loss)
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = lr
        if stop:
            self.trainer.should_stop = True

    def _reduced_mean(self, acc: list[float | int]) -> float:
        """Pattern-weighted mean loss over all ranks (NaN when no pattern was seen)."""
        total = torch.tensor([float(acc[0]), float(acc[1])], dtype=torch.float64,
                             device=self.device)
        total = self.trainer.strategy.reduce(total, reduce_op="sum")
        s, n = (float(v) for v in total.cpu())
        return s / n if n > 0 else math.nan

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on the trainable parameters; the rate is set by :attr:`schedule` after each epoch."""
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.lr)
