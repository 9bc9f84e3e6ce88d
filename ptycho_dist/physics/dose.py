"""Dose: intensity scale, Poisson counts, model amplitudes (PHYSICS.md "Dose").

``nphotons`` is the mean total count per pattern. With exit waves ``psi_k`` the scale ``s`` obeys

    s^2 = nphotons / mean_k sum_pixels |psi_k|^2          (= nphotons / mean_k sum I_k, Parseval)

and the counts are ``C_k ~ Poisson(s^2 I_k)`` (independent pixels, seeded numpy Generator). So
``sum_pixels C_k`` is Poisson with mean ``s^2 sum I_k``, and the total over a set of ``K`` patterns
is Poisson with mean exactly ``K * nphotons``: the set's mean total count per pattern has standard
deviation ``sqrt(nphotons / K)``. A noise-free run stores ``s^2 I_k``. The amplitude the model sees
is ``sqrt(C_k) / s``.

Counts are stored as float32: integers above 2**24 (~1.7e7 photons in one pixel) are rounded to
the nearest representable float32 (relative error <= 6e-8, far below the Poisson error).
"""

from __future__ import annotations

import numpy as np

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positive

__all__ = ["dose_scale", "scale_from_mean_energy", "sample_counts", "model_amplitude",
           "POISSON_LAM_MAX"]

#: largest Poisson mean numpy's sampler accepts (``Generator.poisson`` refuses larger ones)
POISSON_LAM_MAX = float(np.iinfo(np.int64).max - 10 * np.sqrt(np.iinfo(np.int64).max))


def scale_from_mean_energy(mean_energy: float, *, nphotons: float) -> float:
    """``s = sqrt(nphotons / mean_energy)``, the mean energy being ``mean_k sum |psi_k|^2``."""
    photons = check_positive(nphotons, name="nphotons")
    energy = float(mean_energy)
    if not np.isfinite(energy) or energy <= 0.0:
        raise PhysicsError(
            f"mean pattern energy must be finite and > 0 to set a dose, got {energy!r} "
            "(all exit waves are zero?)")
    return float(np.sqrt(photons / energy))


def dose_scale(data: np.ndarray, *, nphotons: float) -> float:
    """Intensity scale ``s`` that gives a mean total of ``nphotons`` counts per pattern.

    Parameters
    ----------
    data : ndarray, shape (k, N, N)
        Either complex exit waves ``psi`` (energy ``|psi|^2``) or real, non-negative far-field
        intensities ``I`` (energy ``I``). Both give the same ``s`` (Parseval).
    nphotons : float
        Mean total count per pattern, finite and > 0.

    Returns
    -------
    float
        ``s = sqrt(nphotons / mean_k sum_pixels energy_k)``.
    """
    arr = as_finite_array(data, name="exit waves or intensity")
    if arr.ndim < 2:
        raise PhysicsError(f"data must be (k, N, N) or (N, N), got shape {arr.shape}")
    if arr.dtype.kind == "c":
        energy = np.abs(arr.astype(np.complex128)) ** 2
    else:
        if (arr < 0).any():
            raise PhysicsError(f"intensity must be >= 0, got minimum {float(arr.min())!r}")
        energy = arr.astype(np.float64)
    per_pattern = energy.reshape(-1, arr.shape[-2] * arr.shape[-1]).sum(axis=1)
    return scale_from_mean_energy(float(per_pattern.mean()), nphotons=nphotons)


def _check_intensity(intensity: object) -> np.ndarray:
    arr = as_finite_array(intensity, name="intensity")
    if arr.dtype.kind == "c":
        raise PhysicsError(f"intensity must be real, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise PhysicsError(f"intensity must be >= 0, got minimum {float(arr.min())!r}")
    return arr


def sample_counts(intensity: np.ndarray, *, scale: float,
                  rng: np.random.Generator | int | None = None, noise: bool = True) -> np.ndarray:
    """Detector counts ``C ~ Poisson(s^2 I)`` (or ``s^2 I`` exactly when ``noise=False``).

    Parameters
    ----------
    intensity : ndarray, real >= 0, any shape
        Far-field intensities ``I``.
    scale : float
        ``s`` from :func:`dose_scale`, finite and > 0.
    rng : Generator, int or None
        Random source (ignored when ``noise=False``).
    noise : bool
        Draw Poisson counts (True) or return the expected counts.

    Returns
    -------
    ndarray, float32, same shape as ``intensity``
    """
    arr = _check_intensity(intensity)
    s = check_positive(scale, name="scale")
    lam = (s * s) * arr.astype(np.float64)
    if not noise:
        return lam.astype(np.float32)
    if lam.max() > POISSON_LAM_MAX:
        raise PhysicsError(
            f"expected counts up to {lam.max():.3g} exceed the Poisson sampler's limit "
            f"{POISSON_LAM_MAX:.3g}; lower nphotons")
    return np.random.default_rng(rng).poisson(lam).astype(np.float32)


def model_amplitude(counts: np.ndarray, *, scale: float) -> np.ndarray:
    """The amplitude the model sees, ``sqrt(C) / s``; float32, same shape as ``counts``."""
    arr = _check_intensity(counts)
    s = check_positive(scale, name="scale")
    return (np.sqrt(arr.astype(np.float64)) / s).astype(np.float32)
