"""Training losses of the PINN in TensorFlow (the formulas of ``models/torch/losses.py``)."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from ptycho_dist.models.config import choose

__all__ = ["POISSON_EPS", "poisson_nll", "mae_amplitude", "pinn_loss", "loss_function"]

#: added to the predicted intensity inside the logarithm of the Poisson NLL (as in torch)
POISSON_EPS = 1e-7


def poisson_nll(pred_amplitude: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """Poisson negative log-likelihood of the counts given the predicted intensity.

    ``L = mean over (b, c, y, x) of [lam - k * log(lam + eps) + lgamma(k + 1)]`` with
    ``lam = pred_amplitude**2`` (predicted intensity in counts), ``k = counts`` and ``eps`` =
    :data:`POISSON_EPS`. The ``lgamma(k + 1) = log(k!)`` term has no gradient (it depends on the
    data only); it makes the value the exact NLL (>= 0), identical to the torch backend's.
    Keras' ``Poisson`` loss omits it and uses another epsilon: it is not used here.

    Parameters
    ----------
    pred_amplitude : tf.Tensor, float32, shape (B, C, N, N)
        Predicted amplitude in count units.
    counts : tf.Tensor, float32, shape (B, C, N, N)

    Returns
    -------
    tf.Tensor, float32, shape ()
    """
    lam = tf.square(pred_amplitude)
    k = tf.cast(counts, lam.dtype)
    return tf.reduce_mean(lam - k * tf.math.log(lam + POISSON_EPS) + tf.math.lgamma(k + 1))


def mae_amplitude(pred_amplitude: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """Mean absolute error on amplitudes: ``mean |sqrt(counts) - pred_amplitude|`` (count units)."""
    k = tf.cast(counts, pred_amplitude.dtype)
    return tf.reduce_mean(tf.abs(tf.sqrt(k) - pred_amplitude))


def loss_function(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The loss ``(pred_amplitude, counts) -> scalar`` named ``name`` ("poisson" or "mae").

    A bad name is a :class:`~ptycho_dist.errors.ModelError` (:func:`~ptycho_dist.models.config.choose`).
    """
    return choose("loss", name, {"poisson": poisson_nll, "mae": mae_amplitude})


def pinn_loss(name: str, pred_amplitude: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """The loss named ``name`` ("poisson" or "mae"); another name is a :class:`ModelError`."""
    return loss_function(name)(pred_amplitude, counts)
