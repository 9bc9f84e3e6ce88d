"""Input checks shared by the physics modules (private).

Every check raises :class:`~ptycho_dist.errors.PhysicsError` with a message that says what was
expected and what was received; none of them modifies or silently clips its input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ptycho_dist.errors import PhysicsError

__all__ = [
    "as_finite_array",
    "check_power_of_two",
    "check_positive",
    "check_range",
    "check_positions",
    "to_unit_range",
]


def as_finite_array(array: object, *, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``array`` as a numeric ndarray after checking its rank and finiteness.

    Parameters
    ----------
    array : array_like
        Any numeric array.
    name : str
        Name used in error messages.
    ndim : int, optional
        Required number of dimensions.

    Returns
    -------
    numpy.ndarray
        The input as an array (not copied when already an ndarray).
    """
    arr = np.asarray(array)
    if arr.dtype.kind not in "biufc":
        raise PhysicsError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise PhysicsError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise PhysicsError(f"{name} must not be empty, got shape {arr.shape}")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise PhysicsError(
            f"{name} must be finite everywhere, got {bad} NaN/inf value(s) of {arr.size}")
    return arr


def check_power_of_two(n: int, *, name: str = "probe size N") -> int:
    """Return ``n`` if it is a power of two >= 2, else raise PhysicsError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or (n & (n - 1)):
        raise PhysicsError(f"{name} must be a power of two >= 2, got {n!r}")
    return int(n)


def check_positive(value: float, *, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as float if finite and > 0 (>= 0 with ``allow_zero``)."""
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise PhysicsError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_range(bounds: Sequence[float], *, name: str,
                minimum: float | None = None) -> tuple[float, float]:
    """Return ``(lo, hi)`` after checking ``lo <= hi``, both finite, ``lo >= minimum``."""
    if len(bounds) != 2:
        raise PhysicsError(f"{name} must be a pair (low, high), got {bounds!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise PhysicsError(f"{name} must be finite with low <= high, got ({lo}, {hi})")
    if minimum is not None and lo < minimum:
        raise PhysicsError(f"{name} must start at >= {minimum}, got ({lo}, {hi})")
    return lo, hi


def check_positions(positions: object, *, name: str = "positions") -> np.ndarray:
    """Return scan positions as float64 (n, 2) after checking shape and finiteness."""
    pos = as_finite_array(positions, name=name, ndim=2)
    if pos.shape[1] != 2 or pos.dtype.kind == "c":
        raise PhysicsError(
            f"{name} must be real with shape (n, 2) as (x, y), got {pos.dtype} {pos.shape}")
    return pos.astype(np.float64, copy=False)


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Affinely map a real image onto [0, 1] (min -> 0, max -> 1; a constant image -> 0).

    Returns float64 of the same shape.
    """
    lo, hi = float(image.min()), float(image.max())
    if hi == lo:
        return np.zeros(image.shape, dtype=np.float64)
    return (image.astype(np.float64) - lo) / (hi - lo)
