"""The learning-rate schedule and early stopping of the PINN, written once for both backends.

Plain Python (no numpy, torch or TensorFlow): the torch backend (its LightningModule) and the TF
backend (its custom loop) both call :meth:`Schedule.step` once per epoch, after the validation
pass, with the epoch's training and validation losses, so that they follow the same rules by
construction. Two sets of rules (``training.schedule``, docs/weight_layout.md section 5):

``"torch"`` (default)
    :class:`Plateau` with ``rule="torch"``, the definition of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (mode "min", relative threshold 1e-4, no
    cooldown), on the validation loss (the training loss without a validation split), and
    :class:`EarlyStop` on the same loss (Lightning's ``EarlyStopping``, min_delta 0).
``"ptychopinn"``
    The callbacks of PtychoPINN's Keras training (``ptycho/model.py``: ``ReduceLROnPlateau(
    monitor="val_loss")`` and ``EarlyStopping(monitor="loss")``): :class:`Plateau` with
    ``rule="keras"`` (Keras' definition: absolute ``min_delta`` 1e-4, cooldown 0) on the validation
    loss (the training loss without a validation split), and :class:`EarlyStop` on the
    **training** loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ptycho_dist.study.spec import ScheduleName

__all__ = ["Plateau", "EarlyStop", "Schedule", "PLATEAU_THRESHOLD"]

#: improvement threshold of both plateau rules (torch: relative, Keras: absolute ``min_delta``)
PLATEAU_THRESHOLD = 1e-4


@dataclass
class Plateau:
    """Reduce-on-plateau: :meth:`step` takes an epoch's metric, returns the next epoch's rate.

    ``rule="torch"`` (``torch.optim.lr_scheduler.ReduceLROnPlateau``, mode "min", threshold_mode
    "rel"): an improvement is ``metric < best * (1 - 1e-4)``; otherwise ``bad`` grows by one, and
    when ``bad > patience`` the rate becomes ``max(lr * factor, min_lr)`` (kept only if that lowers
    it by more than ``eps`` = 1e-8) and ``bad`` restarts at 0.

    ``rule="keras"`` (``keras.callbacks.ReduceLROnPlateau``, mode "min", cooldown 0): an improvement
    is ``metric + 1e-4 < best``; otherwise ``bad`` grows by one, and when ``bad >= patience`` and
    ``lr > min_lr`` the rate becomes ``max(lr * factor, min_lr)`` and ``bad`` restarts at 0 (at the
    floor ``bad`` keeps growing).

    Both start from ``best = inf``; an improvement sets ``best = metric`` and ``bad = 0``; NaN is
    never an improvement.
    """

    lr: float
    factor: float
    patience: int
    min_lr: float
    rule: Literal["torch", "keras"] = "torch"
    eps: float = 1e-8
    best: float = math.inf
    bad: int = 0

    def improves(self, metric: float) -> bool:
        """Whether ``metric`` improves on :attr:`best` under :attr:`rule`."""
        if self.rule == "torch":
            return metric < self.best * (1 - PLATEAU_THRESHOLD)
        return metric + PLATEAU_THRESHOLD < self.best

    def step(self, metric: float) -> float:
        """Account for one epoch's ``metric``; return the learning rate of the next epoch."""
        if self.improves(metric):
            self.best, self.bad = metric, 0
            return self.lr
        self.bad += 1
        if self.rule == "torch":
            if self.bad > self.patience:
                new_lr = max(self.lr * self.factor, self.min_lr)
                if self.lr - new_lr > self.eps:
                    self.lr = new_lr
                self.bad = 0
        elif self.bad >= self.patience and self.lr > self.min_lr:
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.bad = 0
        return self.lr


@dataclass
class EarlyStop:
    """Early stopping (Lightning's ``EarlyStopping`` and Keras', both mode "min", min_delta 0).

    :meth:`step` returns True when training should stop: a strict improvement (``metric < best``,
    ``best`` starting at inf) sets ``wait = 0`` and never stops; otherwise ``wait`` grows by one and
    training stops when ``wait >= patience``. NaN is never an improvement. (Keras also requires
    ``epoch > 0``, which holds whenever a finite metric missed an improvement.)
    """

    patience: int
    best: float = math.inf
    wait: int = 0

    def step(self, metric: float) -> bool:
        """Account for one epoch's ``metric``; True when training should stop after it."""
        if metric < self.best:
            self.best, self.wait = metric, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


@dataclass
class Schedule:
    """The per-epoch rules of one fit: the plateau rule and, optionally, early stopping.

    Build it with :meth:`create`; call :meth:`step` after every epoch that did not diverge.
    """

    name: ScheduleName
    plateau: Plateau
    early: EarlyStop | None
    has_val: bool

    @classmethod
    def create(cls, name: ScheduleName, *, lr: float, factor: float, patience: int, min_lr: float,
               early_stopping_patience: int | None, has_val: bool) -> Schedule:
        """The schedule ``name`` ("torch" or "ptychopinn") with these settings.

        Raises
        ------
        ValueError
            For another name (the spec admits only these two).
        """
        if name not in ("torch", "ptychopinn"):
            raise ValueError(f"training.schedule must be 'torch' or 'ptychopinn', got {name!r}")
        rule: Literal["torch", "keras"] = "torch" if name == "torch" else "keras"
        early = None if early_stopping_patience is None else EarlyStop(early_stopping_patience)
        return cls(name, Plateau(lr, factor, patience, min_lr, rule=rule), early, has_val)

    @property
    def lr(self) -> float:
        """The learning rate of the next epoch."""
        return self.plateau.lr

    def plateau_metric(self, train_loss: float, val_loss: float) -> float:
        """The loss the plateau rule watches: validation (training without a validation split)."""
        return val_loss if self.has_val else train_loss

    def early_metric(self, train_loss: float, val_loss: float) -> float:
        """The loss early stopping watches: the plateau's with "torch", training with "ptychopinn"."""
        return train_loss if self.name == "ptychopinn" else self.plateau_metric(train_loss, val_loss)

    def step(self, train_loss: float, val_loss: float) -> tuple[float, bool]:
        """Account for one epoch; return ``(learning rate of the next epoch, stop now)``."""
        lr = self.plateau.step(self.plateau_metric(train_loss, val_loss))
        stop = self.early is not None and self.early.step(self.early_metric(train_loss, val_loss))
        return lr, stop
