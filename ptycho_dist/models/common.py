"""Framework-free parts of the PINN shared by the PyTorch and TensorFlow backends.

Everything here is numpy only, so that both backends compute the same preprocessing, the same
train/validation split and the same weight layout bit for bit. The exact definitions of every
layer are written down in ``docs/weight_layout.md``.

Contents
--------
:class:`PinnConfig`
    Frozen model and training configuration, with ``to_dict``/``from_dict``.
:class:`TrainData`, :class:`TrainResult`, :class:`InferResult`
    What training consumes and returns, and what inference returns.
:func:`normalization_factor`, :func:`normalized_inputs`, :func:`initial_log_scale`
    Input normalization and the initial intensity scale (PHYSICS.md, "The PINN").
:func:`train_val_split`
    The seeded split of groups into training and validation sets.
:func:`weight_layout`, :func:`check_weights`
    The canonical named-array weight layout (conv kernels HWIO, float32).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from ptycho_dist.errors import SpecError

__all__ = [
    "PinnConfig",
    "TrainData",
    "TrainResult",
    "InferResult",
    "HISTORY_KEYS",
    "default_filters",
    "encoder_blocks",
    "decoder_filters",
    "normalization_factor",
    "normalized_inputs",
    "initial_log_scale",
    "starting_log_scale",
    "train_val_split",
    "PreparedArrays",
    "prepare_arrays",
    "central_window",
    "weight_layout",
    "check_weights",
    "check_arrays",
]

Loss = Literal["poisson", "mae"]
Activation = Literal["sigmoid", "softplus", "swish"]
ScaleInit = Literal["nphotons", "dose"]

#: keys of one row of the per-epoch training history (``TrainResult.history``)
HISTORY_KEYS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "lr", "intensity_scale", "nonfinite", "seconds",
)

_SIZES = (32, 64, 128)
_LOSSES = ("poisson", "mae")
_ACTIVATIONS = ("sigmoid", "softplus", "swish")
_SCALE_INITS = ("nphotons", "dose")


def encoder_blocks(n: int) -> int:
    """Number of encoder blocks for patch size ``n``: ``log2(n) - 3`` (bottleneck 8 x 8).

    N = 32 -> 2 blocks, N = 64 -> 3 blocks (bottleneck N/8), N = 128 -> 4 blocks.
    """
    return int(round(math.log2(n))) - 3


def default_filters(n: int) -> tuple[int, ...]:
    """Default encoder filters for patch size ``n``: ``64 * 2**i`` for each encoder block ``i``.

    N = 32 -> (64, 128); N = 64 -> (64, 128, 256); N = 128 -> (64, 128, 256, 512).
    """
    return tuple(64 * 2**i for i in range(encoder_blocks(n)))


def decoder_filters(filters: tuple[int, ...]) -> tuple[int, ...]:
    """Filters of the decoder blocks, given the encoder filters ``filters`` (length E).

    The decoder has ``E - 1`` blocks (each doubles the resolution, 8 -> N/2); block ``j`` uses
    ``filters[max(E - 2 - j, 0)]``: (64, 128, 256) -> (128, 64); (a, b) -> (a,);
    (a, b, c, d) -> (c, b, a).
    """
    e = len(filters)
    return tuple(filters[max(e - 2 - j, 0)] for j in range(e - 1))


@dataclass(frozen=True)
class PinnConfig:
    """Model and training configuration of the PINN (PHYSICS.md, "The PINN").

    Parameters
    ----------
    n : int
        Patch size N (32, 64 or 128).
    gridsize : int
        Group side; C = gridsize**2 channels per group (1..3).
    filters : tuple of int or None
        Encoder filters, one per encoder block; its length must be ``log2(n) - 3``.
        None means :func:`default_filters` (64, 128, 256 at N = 64) and is resolved to that tuple
        at construction. Small values are for CPU tests.
    loss : {"poisson", "mae"}
        Poisson negative log-likelihood of the counts (default) or MAE on amplitudes.
    amp_activation : {"sigmoid", "softplus", "swish"}
        Activation of the amplitude decoder's output (sigmoid by default).
    object_big : bool
        For gridsize > 1, apply the overlap constraint (average of the group's patches on a shared
        canvas). Ignored when gridsize == 1.
    trainable_scale : bool
        Whether ``log_scale`` (the intensity scale) is trained.
    log_scale_init : {"nphotons", "dose"}
        Initial ``log_scale``: ``log(s)``, the dose scale of the training data (default), with which
        the object amplitude is learned in the data's own units, or ``"nphotons"``:
        ``log(sqrt(nphotons) / (N/2))``, the PtychoPINN convention of PHYSICS.md, kept as a named
        compatibility option. With the PHYSICS.md probe normalization that value is ``s / f``
        (f the input normalization factor, 4.5-9 at N = 64): the sigmoid-capped amplitude then has
        to reach ``f`` times the true amplitude, which it cannot; measured at N = 32, 200 groups,
        12 epochs: validation loss 136 and amplitude saturated at 1 with "nphotons", 4.85 and no
        saturation with "dose" (see :func:`starting_log_scale`).
    lr, batch_size, epochs : float, int, int
        Adam learning rate, batch size, maximum number of epochs.
    plateau_factor, plateau_patience, min_lr : float, int, float
        ReduceLROnPlateau on the validation loss (training loss without a validation set).
    early_stopping_patience : int or None
        Epochs without improvement of the monitored loss before stopping; None disables it.
    val_fraction : float
        Share of groups held out for validation, in [0, 0.9].
    """

    n: int = 64
    gridsize: int = 1
    filters: tuple[int, ...] | None = None
    loss: Loss = "poisson"
    amp_activation: Activation = "sigmoid"
    object_big: bool = True
    trainable_scale: bool = True
    log_scale_init: ScaleInit = "dose"
    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 50
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-4
    early_stopping_patience: int | None = None
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_choice("n", self.n, _SIZES)
        _check_choice("gridsize", self.gridsize, (1, 2, 3))
        _check_choice("loss", self.loss, _LOSSES)
        _check_choice("amp_activation", self.amp_activation, _ACTIVATIONS)
        _check_choice("log_scale_init", self.log_scale_init, _SCALE_INITS)
        filters = default_filters(self.n) if self.filters is None else tuple(self.filters)
        _check_filters(filters, self.n)
        object.__setattr__(self, "filters", filters)
        _check_training(self)

    @property
    def channels(self) -> int:
        """C = gridsize**2, the number of patterns per group."""
        return self.gridsize**2

    @property
    def resolved_filters(self) -> tuple[int, ...]:
        """The encoder filters as a tuple (``filters`` is always resolved after construction)."""
        assert self.filters is not None
        return self.filters

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); inverse of :meth:`from_dict`."""
        out = asdict(self)
        out["filters"] = list(self.resolved_filters)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PinnConfig:
        """Build from a dict as written by :meth:`to_dict`; unknown keys are a :class:`SpecError`."""
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise SpecError(f"model config: unknown key {key!r}{extra}")
        kwargs = dict(data)
        if kwargs.get("filters") is not None:
            kwargs["filters"] = tuple(kwargs["filters"])
        return cls(**kwargs)


def _check_choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise SpecError(f"model config: {name} must be one of {list(allowed)}, got {value!r}")


def _check_filters(filters: tuple[int, ...], n: int) -> None:
    want = encoder_blocks(n)
    if len(filters) != want:
        raise SpecError(
            f"model config: filters must have {want} entries for n={n} (log2(n) - 3 encoder "
            f"blocks), got {len(filters)}: {list(filters)}")
    if any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters):
        raise SpecError(f"model config: filters must be positive integers, got {list(filters)}")


def _check_training(cfg: PinnConfig) -> None:
    checks = [
        ("lr", cfg.lr > 0, "> 0"),
        ("batch_size", cfg.batch_size >= 1, ">= 1"),
        ("epochs", cfg.epochs >= 0, ">= 0 (0: the untrained, initialized model)"),
        ("plateau_factor", 0 < cfg.plateau_factor < 1, "in (0, 1)"),
        ("plateau_patience", cfg.plateau_patience >= 0, ">= 0"),
        ("min_lr", 0 <= cfg.min_lr <= cfg.lr, "in [0, lr]"),
        ("val_fraction", 0 <= cfg.val_fraction <= 0.9, "in [0, 0.9]"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise SpecError(f"model config: {name} must be {expected}, got {getattr(cfg, name)!r}")
    esp = cfg.early_stopping_patience
    if esp is not None and (isinstance(esp, bool) or esp < 0):
        raise SpecError(f"model config: early_stopping_patience must be None or >= 0, got {esp!r}")


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
        Mean total counts per pattern; sets the initial intensity scale.
    """

    counts: np.ndarray
    scale: float
    probe: np.ndarray
    relative: np.ndarray
    nphotons: float

    def __post_init__(self) -> None:
        check_arrays(self.counts, self.probe, self.relative)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise SpecError(f"training data: scale must be finite and > 0, got {self.scale!r}")
        if not (math.isfinite(self.nphotons) and self.nphotons > 0):
            raise SpecError(f"training data: nphotons must be finite and > 0, got {self.nphotons!r}")


def check_arrays(counts: np.ndarray, probe: np.ndarray, relative: np.ndarray) -> None:
    """Check the shapes of counts (B, C, N, N), probe (N, N) and relative (B, C, 2).

    Raises
    ------
    SpecError
        On any mismatch, naming the expected and received shapes.
    """
    if counts.ndim != 4 or counts.shape[-1] != counts.shape[-2]:
        raise SpecError(f"counts must have shape (B, C, N, N), got {counts.shape}")
    b, c, n, _ = counts.shape
    if probe.shape != (n, n):
        raise SpecError(f"probe must have shape ({n}, {n}) to match counts, got {probe.shape}")
    if relative.shape != (b, c, 2):
        raise SpecError(f"relative must have shape ({b}, {c}, 2) to match counts, got {relative.shape}")
    if not np.iscomplexobj(probe):
        raise SpecError(f"probe must be complex, got dtype {probe.dtype}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise SpecError("counts must be finite and >= 0")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of one training run (what goes into a model bundle).

    Attributes
    ----------
    weights : dict of str to ndarray (float32)
        Canonical named arrays (:func:`weight_layout`).
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
    SpecError
        If the array is empty, not square in its last two axes, or has zero/non-finite energy.
    """
    a = np.asarray(amplitudes, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.size == 0:
        raise SpecError(f"amplitudes must have shape (..., N, N) and be non-empty, got {a.shape}")
    n = a.shape[-1]
    energy = float(np.mean(np.sum(a**2, axis=(-2, -1))))
    if not (math.isfinite(energy) and energy > 0):
        raise SpecError(f"amplitudes must have finite, positive mean energy, got {energy!r}")
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
    SpecError
        If ``nphotons`` is not finite and positive or ``n`` < 2.
    """
    if not (math.isfinite(nphotons) and nphotons > 0) or n < 2:
        raise SpecError(f"initial_log_scale needs nphotons > 0 and n >= 2, got {nphotons!r}, {n!r}")
    return math.log(math.sqrt(nphotons) / (n / 2))


def starting_log_scale(config: PinnConfig, *, nphotons: float, scale: float) -> float:
    """Initial ``log_scale`` of a training run, by ``config.log_scale_init``.

    "nphotons": :func:`initial_log_scale` ``(nphotons, N)``. Since ``exp`` of it equals ``s / f``
    (s the dose scale, f the :func:`normalization_factor` of noise-free data), the object is then
    learned with its amplitude multiplied by f (PtychoPINN's convention). "dose": ``log(scale)``,
    so that an exact object reproduces the counts with no amplitude factor.

    Raises
    ------
    SpecError
        If the chosen quantity is not finite and positive.
    """
    if config.log_scale_init == "nphotons":
        return initial_log_scale(nphotons, config.n)
    if not (math.isfinite(scale) and scale > 0):
        raise SpecError(f"log_scale_init='dose' needs a finite scale > 0, got {scale!r}")
    return math.log(scale)


def train_val_split(n_groups: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of group indices into (train, validation), each sorted ascending.

    ``n_val = round(val_fraction * n_groups)``, at least 1 when ``val_fraction > 0``; the
    validation indices are the first ``n_val`` of ``default_rng(seed).permutation(n_groups)``.

    Raises
    ------
    SpecError
        If the training split would be empty.
    """
    n_val = int(round(val_fraction * n_groups))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_groups - n_val < 1:
        raise SpecError(
            f"need at least one training group: {n_groups} groups with val_fraction={val_fraction}")
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


def prepare_arrays(data: TrainData, config: PinnConfig, *, seed: int) -> PreparedArrays:
    """Split the groups (seeded), compute the normalization on the training split, normalize all.

    Raises
    ------
    SpecError
        If the data's N or C differ from the config, or the training split would be empty.
    """
    b, c, n, _ = data.counts.shape
    if (n, c) != (config.n, config.channels):
        raise SpecError(f"data has N={n}, C={c} but the config expects N={config.n}, "
                        f"C={config.channels} (gridsize {config.gridsize})")
    train_idx, val_idx = train_val_split(b, val_fraction=config.val_fraction, seed=seed)
    norm = normalization_factor(np.sqrt(data.counts[train_idx].astype(np.float64)) / data.scale)
    return PreparedArrays(
        inputs=normalized_inputs(data.counts, scale=data.scale, norm_factor=norm),
        relative=np.asarray(data.relative, dtype=np.float32),
        counts=np.asarray(data.counts, dtype=np.float32),
        train_idx=train_idx, val_idx=val_idx, norm_factor=norm)


def central_window(n: int) -> np.ndarray:
    """Mask of the central N/2 x N/2 window: ones on rows and columns N/4 .. 3N/4 - 1.

    Returns
    -------
    ndarray, float32, shape (N, N)
    """
    m = np.zeros((n, n), dtype=np.float32)
    m[n // 4: n // 4 + n // 2, n // 4: n // 4 + n // 2] = 1.0
    return m


def weight_layout(config: PinnConfig) -> dict[str, tuple[int, ...]]:
    """Canonical weight names and shapes (conv kernels HWIO = (3, 3, in, out), biases (out,)).

    Names, in network order::

        encoder.{i}.conv{0,1}.{kernel,bias}             i = 0 .. E-1
        decoder_{amp,phase}.{j}.conv{0,1}.{kernel,bias} j = 0 .. E-2
        decoder_{amp,phase}.final.{kernel,bias}         (3, 3, filters[0], C), (C,)

    The intensity scale ``log_scale`` is not in this dict; it is a separate scalar.
    """
    c, f = config.channels, config.resolved_filters
    layout: dict[str, tuple[int, ...]] = {}
    cin = c
    for i, cout in enumerate(f):
        _add_block(layout, f"encoder.{i}", cin, cout)
        cin = cout
    for head in ("decoder_amp", "decoder_phase"):
        cin = f[-1]
        for j, cout in enumerate(decoder_filters(f)):
            _add_block(layout, f"{head}.{j}", cin, cout)
            cin = cout
        layout[f"{head}.final.kernel"] = (3, 3, cin, c)
        layout[f"{head}.final.bias"] = (c,)
    return layout


def _add_block(layout: dict[str, tuple[int, ...]], prefix: str, cin: int, cout: int) -> None:
    layout[f"{prefix}.conv0.kernel"] = (3, 3, cin, cout)
    layout[f"{prefix}.conv0.bias"] = (cout,)
    layout[f"{prefix}.conv1.kernel"] = (3, 3, cout, cout)
    layout[f"{prefix}.conv1.bias"] = (cout,)


def check_weights(weights: dict[str, np.ndarray], config: PinnConfig) -> None:
    """Check that ``weights`` has exactly the names and shapes of :func:`weight_layout`.

    Raises
    ------
    SpecError
        Naming missing or unexpected keys, or the first shape mismatch.
    """
    layout = weight_layout(config)
    missing = sorted(set(layout) - set(weights))
    extra = sorted(set(weights) - set(layout))
    if missing or extra:
        raise SpecError(f"weights do not match the config: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, shape in layout.items():
        got = tuple(np.shape(weights[name]))
        if got != shape:
            raise SpecError(f"weight {name!r}: expected shape {shape}, got {got}")
