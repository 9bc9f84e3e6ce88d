"""Training losses of the PINN (exact definitions; the TF backend uses the same formulas)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ptycho_dist.models.config import choose

__all__ = ["POISSON_EPS", "poisson_nll", "mae_amplitude", "pinn_loss", "loss_function"]

#: added to the predicted intensity inside the logarithm of the Poisson NLL
POISSON_EPS = 1e-7


def poisson_nll(pred_amplitude: Tensor, counts: Tensor) -> Tensor:
    """Poisson negative log-likelihood of the counts given the predicted intensity.

    ``L = mean over (b, c, y, x) of [lam - k * log(lam + eps) + lgamma(k + 1)]`` with
    ``lam = pred_amplitude**2`` (predicted intensity in counts), ``k = counts`` and ``eps`` =
    :data:`POISSON_EPS`. The ``lgamma(k + 1) = log(k!)`` term has no gradient; it makes the value
    the exact NLL, which is >= 0 (up to eps and rounding), so that relative thresholds
    (reduce-on-plateau) and logged values are meaningful. Keras' ``Poisson`` loss omits it.

    Parameters
    ----------
    pred_amplitude : Tensor, float32, shape (B, C, N, N)
        Predicted amplitude in count units.
    counts : Tensor, float32, shape (B, C, N, N)

    Returns
    -------
    Tensor, float32, shape ()
    """
    lam = pred_amplitude**2
    return torch.mean(lam - counts * torch.log(lam + POISSON_EPS) + torch.lgamma(counts + 1))


def mae_amplitude(pred_amplitude: Tensor, counts: Tensor) -> Tensor:
    """Mean absolute error on amplitudes: ``mean |sqrt(counts) - pred_amplitude|`` (count units)."""
    return torch.mean(torch.abs(torch.sqrt(counts) - pred_amplitude))


def loss_function(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``(pred_amplitude, counts) -> scalar`` named ``name`` ("poisson" or "mae").

    A bad name is a :class:`~ptycho_dist.errors.ModelError` (:func:`~ptycho_dist.models.config.choose`).
    """
    return choose("loss", name, {"poisson": poisson_nll, "mae": mae_amplitude})


def pinn_loss(name: str, pred_amplitude: Tensor, counts: Tensor) -> Tensor:
    """The loss named ``name`` ("poisson" or "mae"); another name is a :class:`ModelError`."""
    return loss_function(name)(pred_amplitude, counts)
