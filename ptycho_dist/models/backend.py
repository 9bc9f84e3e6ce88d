"""The interface of a PINN backend and how to get one by name.

A backend is a module ``ptycho_dist.models.<name>.train`` with two functions, :func:`train_pinn`
and :func:`infer_pinn` (the :class:`Backend` protocol). :func:`load_backend` imports it on demand,
so that a process imports only the framework it uses: torch and TensorFlow are never imported
together, and never outside :mod:`ptycho_dist.models`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig
from ptycho_dist.models.data import InferResult, TrainData, TrainResult
from ptycho_dist.study.spec import PINN_BACKENDS

__all__ = ["Backend", "load_backend", "PINN_BACKENDS"]


class Backend(Protocol):
    """What the pipeline needs from a PINN backend (both backends: the same semantics, the same
    canonical weights, the same exceptions: :class:`~ptycho_dist.errors.ModelError` for data and
    runtime conditions)."""

    def train_pinn(self, data: TrainData, config: PinnConfig, *, seed: int) -> TrainResult:
        """Train on ``data`` (split, normalization, fit) and return weights, scales and history.

        Parameters
        ----------
        data : TrainData
            Counts (B, C, N, N), dose scale, probe (N, N), relative coordinates (B, C, 2).
        config : PinnConfig
        seed : int
            Seeds the split, the initial weights and the shuffling.

        Returns
        -------
        TrainResult
            A non-finite loss never raises: training stops and ``diverged_epoch`` is set.
        """
        ...

    def infer_pinn(self, weights: dict[str, np.ndarray], config: PinnConfig, *, counts: np.ndarray,
                   scale: float, probe: np.ndarray, relative: np.ndarray, norm_factor: float,
                   log_scale: float) -> InferResult:
        """Predict object patches (B, C, N, N) complex64 and amplitudes (B, C, N, N) float32, with
        the bundle's ``norm_factor`` and ``log_scale`` used unchanged."""
        ...


def load_backend(name: str) -> Backend:
    """The backend module ``ptycho_dist.models.<name>.train``, imported on demand.

    Parameters
    ----------
    name : {"torch", "tf"}

    Raises
    ------
    ModelError
        For any other name (the oracle arm has no backend).
    ImportError
        When the framework is not installed (with an install hint).
    """
    if name not in PINN_BACKENDS:
        raise ModelError(f"no PINN backend {name!r}: expected one of {list(PINN_BACKENDS)}")
    return cast(Backend, importlib.import_module(f"ptycho_dist.models.{name}.train"))


if TYPE_CHECKING:  # static proof (mypy only) that both backend modules satisfy the protocol
    from ptycho_dist.models.tf import train as _tf_train
    from ptycho_dist.models.torch import train as _torch_train

    _CONFORMING: tuple[Backend, ...] = (_torch_train, _tf_train)
