"""What the PINN backends consume and return, and the numpy preprocessing both of them use.

Both backends call these functions, so they compute the same normalization, the same seeded
train/validation split and the same input checks bit for bit (PHYSICS.md, "The PINN").

Contents
--------
:class:`TrainData`, :class:`TrainResult`, :class:`InferResult`
    What training consumes and returns, and what inference returns.
:func:`normalization_factor`, :func:`normalized_inputs`, :func:`initial_log_scale`,
:func:`starting_log_scale`
    Input normalization and the initial intensity scale.
:func:`object_in_data_units`
    The predicted object in the data's units (the learned intensity scale applied).
:func:`train_val_split`, :func:`prepare_arrays`
    The seeded split and the model-ready arrays of a training run.
:func:`check_arrays`, :func:`prepare_inference`
    The input checks of training data and of inference (one function for both backends).

Every data condition raises :class:`~ptycho_dist.errors.ModelError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig
from ptycho_dist.study.spec import validation_groups

__all__ = [
    "HISTORY_KEYS",
    "TrainData",
    "TrainResult",
    "InferResult",
    "check_arrays",
    "normalization_factor",
    "normalized_inputs",
    "initial_log_scale",
    "starting_log_scale",
    "object_in_data_units",
    "train_val_split",
    "PreparedArrays",
    "prepare_arrays",
    "prepare_inference",
]

#: keys of one row of the per-epoch training history (``TrainResult.history``)
HISTORY_KEYS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "lr", "intensity_scale", "nonfinite", "seconds",
)


def _positive(value: float) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0


@dataclass(frozen=True, eq=False)
class TrainData:
    """Arrays one training run consumes (all groups; the split is made by the trainer).

    Parameters
    ----------
    counts : ndarray, float32, shape (B, C, N, N)
        Photon counts of every member of every group.
    scale : float
        Dose scale s: the model-units amplitude is ``sqrt(counts) / s`` (PHYSICS.md, "Dose").
    probe : ndarray, complex64, shape (N, N)
        The (normalized) probe P.
    relative : ndarray, float64, shape (B, C, 2)
        Relative coordinates ``member - group centre`` in pixels, (x, y) order.
    nphotons : float
        Mean total counts per pattern; sets the "nphotons" initial intensity scale.

    Raises
    ------
    ModelError
        On mismatched shapes (:func:`check_arrays`) or a scale / nphotons that is not finite > 0.
    """

    counts: np.ndarray
    scale: float
    probe: np.ndarray
    relative: np.ndarray
    nphotons: float

    def __post_init__(self) -> None:
        check_arrays(self.counts, self.probe, self.relative)
        if not _positive(self.scale):
            raise ModelError(f"training data: scale must be finite and > 0, got {self.scale!r}")
        if not _positive(self.nphotons):
            raise ModelError(f"training data: nphotons must be finite and > 0, got {self.nphotons!r}")


def check_arrays(counts: np.ndarray, probe: np.ndarray, relative: np.ndarray) -> None:
    """Check counts (B, C, N, N) real, finite, >= 0; probe (N, N) complex; relative (B, C, 2) finite.

    Raises
    ------
    ModelError
        On any mismatch, naming the expected and received shapes or dtypes.
    """
    counts, probe, relative = np.asarray(counts), np.asarray(probe), np.asarray(relative)
    if counts.ndim != 4 or counts.shape[-1] != counts.shape[-2]:
        raise ModelError(f"counts must have shape (B, C, N, N), got {counts.shape}")
    b, c, n, _ = counts.shape
    if probe.shape != (n, n):
        raise ModelError(f"probe must have shape ({n}, {n}) to match counts, got {probe.shape}")
    if relative.shape != (b, c, 2):
        raise ModelError(f"relative must have shape ({b}, {c}, 2) to match counts, got {relative.shape}")
    if not np.iscomplexobj(probe):
        raise ModelError(f"probe must be complex, got dtype {probe.dtype}")
    for name, arr in (("counts", counts), ("relative", relative)):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ModelError(f"{name} must be real numbers, got dtype {arr.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(counts) | (counts < 0)))
    if bad:
        raise ModelError(f"counts must be finite and >= 0, got {bad} of {counts.size} values "
                         "that are negative, NaN or inf")
    if not np.all(np.isfinite(relative)):
        raise ModelError("relative coordinates must be finite, got NaN or inf")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of one training run (what goes into a model bundle).

    Attributes
    ----------
    weights : dict of str to ndarray (float32)
        Canonical named arrays (:func:`ptycho_dist.models.weights.weight_layout`).
    norm_factor : float
        Input normalization factor computed on the training split; reuse it at inference.
    log_scale : float
        Final log intensity scale; inference must use this value.
    history : list of dict
        One row per epoch with the keys :data:`HISTORY_KEYS` (epoch is 0-based).
    diverged_epoch : int or None
        First (0-based) epoch with a non-finite loss; training stopped there. None if none.
    seconds : float
        Wall-clock seconds of the fit.
    n_train, n_val : int
        Number of groups in the training and validation splits.
    """

    weights: dict[str, np.ndarray]
    norm_factor: float
    log_scale: float
    history: list[dict[str, Any]]
    diverged_epoch: int | None
    seconds: float
    n_train: int = 0
    n_val: int = 0


@dataclass(frozen=True, eq=False)
class InferResult:
    """Output of inference.

    Attributes
    ----------
    object_patches : ndarray, complex64, shape (B, C, N, N)
        Predicted object patches (after the overlap constraint when it applies).
    pred_amplitude : ndarray, float32, shape (B, C, N, N)
        Predicted far-field amplitude in count units (compare with ``sqrt(counts)``).
    """

    object_patches: np.ndarray
    pred_amplitude: np.ndarray

    @classmethod
    def empty(cls, config: PinnConfig) -> InferResult:
        """The result for zero groups: arrays of shape (0, C, N, N)."""
        shape = (0, config.channels, config.n, config.n)
        return cls(np.zeros(shape, np.complex64), np.zeros(shape, np.float32))


def normalization_factor(amplitudes: np.ndarray) -> float:
    """Factor f such that the inputs ``X = f * A`` have mean per-pattern energy (N/2)**2.

    With one pattern = one N x N array, ``mean_k sum_ij (f A_k[i, j])**2 = (N/2)**2``, i.e.
    ``f = (N/2) / sqrt(mean_k sum_ij A_k[i, j]**2)``, the mean taken over every pattern of every
    group of the *training* split.

    Parameters
    ----------
    amplitudes : ndarray, real, shape (..., N, N)
        Model-units amplitudes ``sqrt(counts) / s`` (any leading shape).

    Returns
    -------
    float
        The factor f (float64 arithmetic).

    Raises
    ------
    ModelError
        If the array is empty, not square in its last two axes, or has zero/non-finite energy.
    """
    a = np.asarray(amplitudes, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.size == 0:
        raise ModelError(f"amplitudes must have shape (..., N, N) and be non-empty, got {a.shape}")
    n = a.shape[-1]
    energy = float(np.mean(np.sum(a**2, axis=(-2, -1))))
    if not (math.isfinite(energy) and energy > 0):
        raise ModelError(f"amplitudes must have finite, positive mean energy, got {energy!r}")
    return (n / 2) / math.sqrt(energy)


def normalized_inputs(counts: np.ndarray, *, scale: float, norm_factor: float) -> np.ndarray:
    """Network inputs ``X = sqrt(counts) / scale * norm_factor`` as float32 (float64 arithmetic).

    Parameters
    ----------
    counts : ndarray, shape (B, C, N, N)
    scale : float
        Dose scale s.
    norm_factor : float
        From :func:`normalization_factor` on the training split (stored in the bundle).

    Returns
    -------
    ndarray, float32, shape (B, C, N, N)
    """
    x = np.sqrt(np.asarray(counts, dtype=np.float64)) / float(scale) * float(norm_factor)
    return x.astype(np.float32)


def initial_log_scale(nphotons: float, n: int) -> float:
    """Initial log intensity scale ``log(sqrt(nphotons) / (n / 2))`` (PHYSICS.md).

    Raises
    ------
    ModelError
        If ``nphotons`` is not finite and positive or ``n`` < 2.
    """
    if not _positive(nphotons) or n < 2:
        raise ModelError(f"initial_log_scale needs nphotons > 0 and n >= 2, got {nphotons!r}, {n!r}")
    return math.log(math.sqrt(nphotons) / (n / 2))


def starting_log_scale(config: PinnConfig, *, nphotons: float, scale: float) -> float:
    """Initial ``log_scale`` of a training run, by ``config.log_scale_init``.

    "nphotons": :func:`initial_log_scale` ``(nphotons, N)``. Since ``exp`` of it equals ``s / f``
    (s the dose scale, f the :func:`normalization_factor` of noise-free data), the object is then
    learned with its amplitude multiplied by f (PtychoPINN's convention). "dose": ``log(scale)``,
    so that an exact object reproduces the counts with no amplitude factor.

    Raises
    ------
    ModelError
        If the chosen quantity is not finite and positive.
    """
    if config.log_scale_init == "nphotons":
        return initial_log_scale(nphotons, config.n)
    if not _positive(scale):
        raise ModelError(f"log_scale_init='dose' needs a finite scale > 0, got {scale!r}")
    return math.log(scale)


def object_in_data_units(patches: np.ndarray, *, log_scale: float, dose_scale: float) -> np.ndarray:
    """Predicted object patches in the units of the true object: ``O_net * exp(log_scale) / s``.

    The physics layer fits ``exp(log_scale) |F(P O_net)| / N`` to ``sqrt(counts) = s |F(P O)| / N``
    (PHYSICS.md, "Dose"), so only the product ``exp(log_scale) O_net`` is fixed by the data: the
    network's own output ``O_net`` is the object up to the factor ``exp(log_scale) / s`` that
    training moved the scale by. ``s`` is the dose scale of the *training* data (the network's
    inputs are in model units ``sqrt(counts) / s`` for any data set, so the factor is a property of
    the bundle). With ``log_scale_init = "dose"`` the scale starts at ``log(s)`` (factor 1).

    Parameters
    ----------
    patches : ndarray, complex, shape (B, C, N, N)
        The network's object patches.
    log_scale : float
        The log intensity scale inference used (the bundle's learned one by default).
    dose_scale : float
        Dose scale s of the training data, finite and > 0.

    Returns
    -------
    ndarray, complex64, shape (B, C, N, N)
        A new array (the factor is applied in float64 and rounded once).

    Raises
    ------
    ModelError
        If ``dose_scale`` is not finite and > 0, ``log_scale`` is not finite, or the factor overflows.
    """
    if not _positive(dose_scale) or not math.isfinite(log_scale):
        raise ModelError(f"object_in_data_units needs a finite log_scale and a dose scale > 0, "
                         f"got {log_scale!r}, {dose_scale!r}")
    try:
        factor = math.exp(log_scale - math.log(dose_scale))
    except OverflowError:
        raise ModelError(f"object_in_data_units: exp(log_scale) / s overflows (log_scale {log_scale!r})") from None
    return (np.asarray(patches).astype(np.complex128) * factor).astype(np.complex64)


def train_val_split(n_groups: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of group indices into (train, validation), each sorted ascending.

    ``n_val`` is :func:`ptycho_dist.study.spec.validation_groups` (``round(val_fraction *
    n_groups)``, at least 1 when ``val_fraction > 0``); the validation indices are the first
    ``n_val`` of ``default_rng(seed).permutation(n_groups)``.

    Returns
    -------
    train, val : ndarray, int64, shapes (n_groups - n_val,) and (n_val,)

    Raises
    ------
    ModelError
        If the training split would be empty (too few groups in the data).
    """
    n_val = validation_groups(n_groups, val_fraction)
    if n_groups - n_val < 1:
        raise ModelError(f"need at least one training group: {n_groups} groups with "
                         f"val_fraction={val_fraction} leave {n_val} for validation and none for training")
    perm = np.random.default_rng(seed).permutation(n_groups)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass(frozen=True, eq=False)
class PreparedArrays:
    """Model-ready arrays of one training run, shared by both backends.

    Attributes
    ----------
    inputs : ndarray, float32, shape (B, C, N, N)
        ``normalized_inputs(counts, scale=s, norm_factor=norm_factor)`` for every group.
    relative : ndarray, float32, shape (B, C, 2)
    counts : ndarray, float32, shape (B, C, N, N)
    train_idx, val_idx : ndarray, int
        The seeded split (:func:`train_val_split`).
    norm_factor : float
        :func:`normalization_factor` of the training split's amplitudes ``sqrt(counts) / s``.
    """

    inputs: np.ndarray
    relative: np.ndarray
    counts: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    norm_factor: float


def _check_fits(counts: np.ndarray, config: PinnConfig) -> None:
    c, n = counts.shape[1], counts.shape[-1]
    if (n, c) != (config.n, config.channels):
        raise ModelError(f"data have N={n}, C={c} but the config expects N={config.n}, "
                         f"C={config.channels} (gridsize {config.gridsize}); counts shape {counts.shape}")


def prepare_arrays(data: TrainData, config: PinnConfig, *, seed: int) -> PreparedArrays:
    """Split the groups (seeded), compute the normalization on the training split, normalize all.

    Raises
    ------
    ModelError
        If the data's N or C differ from the config, or the training split would be empty.
    """
    _check_fits(data.counts, config)
    train_idx, val_idx = train_val_split(data.counts.shape[0], val_fraction=config.val_fraction,
                                         seed=seed)
    norm = normalization_factor(np.sqrt(data.counts[train_idx].astype(np.float64)) / data.scale)
    return PreparedArrays(
        inputs=normalized_inputs(data.counts, scale=data.scale, norm_factor=norm),
        relative=np.asarray(data.relative, dtype=np.float32),
        counts=np.asarray(data.counts, dtype=np.float32),
        train_idx=train_idx, val_idx=val_idx, norm_factor=norm)


def prepare_inference(config: PinnConfig, *, counts: np.ndarray, scale: float, probe: np.ndarray,
                      relative: np.ndarray, norm_factor: float, log_scale: float,
                      batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Check the inputs of inference (both backends call this) and return the network's inputs.

    Parameters
    ----------
    config : PinnConfig
    counts : ndarray, shape (B, C, N, N)
        Must match the config's C and N; finite, >= 0.
    scale : float
        Dose scale s of these counts, finite > 0.
    probe : ndarray, complex, shape (N, N)
    relative : ndarray, shape (B, C, 2)
    norm_factor, log_scale : float
        From the bundle: ``norm_factor`` finite > 0, ``log_scale`` finite.
    batch_size : int
        >= 1.

    Returns
    -------
    x : ndarray, float32, shape (B, C, N, N)
        ``normalized_inputs(counts, scale=scale, norm_factor=norm_factor)``.
    relative : ndarray, float32, shape (B, C, 2)

    Raises
    ------
    ModelError
        Naming the first input that does not fit.
    """
    check_arrays(counts, probe, relative)
    _check_fits(np.asarray(counts), config)
    if not (_positive(norm_factor) and isinstance(log_scale, (int, float, np.number))
            and math.isfinite(log_scale)):
        raise ModelError(f"norm_factor must be > 0 and log_scale finite, got {norm_factor}, {log_scale}")
    if not _positive(scale):
        raise ModelError(f"scale must be finite and > 0, got {scale!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ModelError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    x = normalized_inputs(counts, scale=scale, norm_factor=norm_factor)
    return x, np.asarray(relative, dtype=np.float32)
