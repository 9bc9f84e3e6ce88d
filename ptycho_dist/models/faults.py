"""The model side of the fault switches (``[base.faults]``, docs/faults.md): pure numpy.

Each function gives what one arm's model uses when a switch reproduces the older code's behaviour,
and the default (this project's convention) when it is off:

* :func:`model_probe`: the probe of the arm's forward model (``faults.model_probe``);
* :func:`probe_energy_ratio`: its energy relative to the data's probe (the diagnostic
  ``model_probe_energy_ratio``, 1 when the arm uses the data's probe);
* :func:`effective_object_big`: whether the overlap constraint is on (``faults.object_big_off``);
* :func:`inference_scales`: the input normalization and log intensity scale inference uses
  (``faults.infer_ignores_scale``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ptycho_dist.errors import ModelError
from ptycho_dist.models.data import normalization_factor

__all__ = ["ModelProbeName", "MODEL_PROBES", "model_probe", "probe_energy_ratio", "effective_object_big",
           "inference_scales"]

ModelProbeName = Literal["data", "unnormalized", "l2"]
#: the values of ``faults.model_probe``
MODEL_PROBES: tuple[str, ...] = ("data", "unnormalized", "l2")


def model_probe(probe: np.ndarray, *, probe_factor: float, kind: str) -> np.ndarray:
    """The probe an arm's model uses, from the data's probe and the normalization factor applied to it.

    The simulation stores ``P = factor * P_raw`` (PHYSICS.md, "Probe normalization":
    ``factor = 1 / (probe_scale * mean |mask * P_raw|)``; 1 when the probe was not normalized).

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)
        The data's probe ``P`` (``SimulatedData.probe``).
    probe_factor : float
        The factor the simulation applied (``SimulatedData.probe_factor``), finite and > 0.
    kind : {"data", "unnormalized", "l2"}
        "data": ``P`` itself (this project's convention); "unnormalized": ``P / factor``, the probe
        before the normalization (the older arm that skipped it); "l2": ``P / sqrt(sum |P|**2)``,
        unit energy (the normalization computed by another formula).

    Returns
    -------
    ndarray, complex64, shape (N, N)
        A new array (float64 arithmetic).

    Raises
    ------
    ModelError
        For another ``kind``, a factor that is not finite and > 0, or a zero probe under "l2".
    """
    p = np.asarray(probe).astype(np.complex128)
    if kind == "data":
        return p.astype(np.complex64)
    if kind == "unnormalized":
        if not (math.isfinite(probe_factor) and probe_factor > 0):
            raise ModelError(f"model_probe 'unnormalized' needs a probe factor > 0, got {probe_factor!r}")
        return (p / probe_factor).astype(np.complex64)
    if kind == "l2":
        energy = float(np.sum(np.abs(p) ** 2))
        if not energy > 0:
            raise ModelError("model_probe 'l2': the probe has zero energy")
        return (p / math.sqrt(energy)).astype(np.complex64)
    raise ModelError(f"model_probe must be one of {list(MODEL_PROBES)}, got {kind!r}")


def probe_energy_ratio(model: np.ndarray, data: np.ndarray) -> float:
    """``sum |model|**2 / sum |data|**2`` (float64): 1 when the model uses the data's probe.

    Parameters
    ----------
    model, data : ndarray, complex, shape (N, N)
        The model's probe and the data's probe.

    Raises
    ------
    ModelError
        If the shapes differ or the data's probe has zero energy.
    """
    m, d = np.asarray(model), np.asarray(data)
    if m.shape != d.shape:
        raise ModelError(f"probe shapes differ: model {m.shape}, data {d.shape}")
    energy = float(np.sum(np.abs(d.astype(np.complex128)) ** 2))
    if not energy > 0:
        raise ModelError("the data's probe has zero energy")
    return float(np.sum(np.abs(m.astype(np.complex128)) ** 2)) / energy


def effective_object_big(object_big: bool, *, object_big_off: bool) -> bool:
    """The overlap constraint an arm's model applies: ``model.object_big`` unless ``faults.object_big_off``."""
    return bool(object_big) and not object_big_off


def inference_scales(*, norm_factor: float, log_scale: float, initial_log_scale: float,
                     amplitudes: np.ndarray | None, ignore_learned: bool) -> tuple[float, float]:
    """The input normalization factor and log intensity scale inference uses.

    Parameters
    ----------
    norm_factor, log_scale : float
        The bundle's: the normalization of the training split and the learned log scale.
    initial_log_scale : float
        The log scale training started from (the bundle's ``initial_log_scale``).
    amplitudes : ndarray, real, shape (..., N, N), or None
        Model-units amplitudes ``sqrt(counts) / s`` of the inference data; needed (and read) only
        when ``ignore_learned``.
    ignore_learned : bool
        False (this project's convention): the bundle's ``(norm_factor, log_scale)`` unchanged.
        True (``faults.infer_ignores_scale``): :func:`~ptycho_dist.models.data.normalization_factor`
        of the inference data and ``initial_log_scale``, as when the learned values were not carried
        from training to inference.

    Returns
    -------
    norm_factor, log_scale : float

    Raises
    ------
    ModelError
        If ``ignore_learned`` and no amplitudes are given.
    """
    if not ignore_learned:
        return float(norm_factor), float(log_scale)
    if amplitudes is None:
        raise ModelError("inference_scales: ignoring the learned scales needs the inference data's amplitudes")
    return normalization_factor(amplitudes), float(initial_log_scale)
