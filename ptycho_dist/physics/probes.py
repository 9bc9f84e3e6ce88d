"""Illumination probes, their normalization and statistics (PHYSICS.md "Objects, probes, scans").

A probe is complex64 (N, N), N a power of two, centred on pixel (N//2, N//2): every radius below is
measured from that pixel, ``r = hypot(row - N//2, col - N//2)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positive, check_power_of_two

__all__ = [
    "radius_map",
    "probe_mask",
    "disk_probe",
    "gaussian_probe",
    "zone_plate_probe",
    "probe_from_array",
    "normalize_probe",
    "probe_statistics",
    "DEFAULT_PROBE_SCALE",
]

#: default ``probe_scale`` of the normalization (PHYSICS.md)
DEFAULT_PROBE_SCALE = 4.0


def radius_map(n: int) -> np.ndarray:
    """Distance of every pixel from the probe centre (N//2, N//2); float64 (N, N)."""
    offsets = np.arange(n) - n // 2
    return np.hypot(offsets[:, None], offsets[None, :])


def probe_mask(n: int) -> np.ndarray:
    """Disk of radius N/4 centred at (N//2, N//2): bool (N, N), True where ``r <= N/4``."""
    check_power_of_two(n)
    return radius_map(n) <= n / 4


def _soft_aperture(n: int, outer: float, inner: float, blur: float) -> np.ndarray:
    """Annulus ``inner <= r <= outer`` blurred by a Gaussian of std ``blur``; float64, peak 1."""
    r = radius_map(n)
    support = ((r <= outer) & (r >= inner)).astype(np.float64)
    if not support.any():
        raise PhysicsError(
            f"aperture inner={inner}, outer={outer} covers no pixel of a {n}x{n} probe")
    if blur > 0:
        support = ndimage.gaussian_filter(support, blur, mode="constant")
    return support / support.max()


def disk_probe(n: int = 64, *, radius: float | None = None, blur: float = 1.0) -> np.ndarray:
    """Default soft disk probe with flat phase.

    A Gaussian window ``exp(-r^2 / (2 radius^2))`` thresholded at its ``exp(-1/2)`` level (i.e. the
    disk ``r <= radius``), blurred by a Gaussian of std ``blur`` pixels and scaled to peak 1.

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    radius : float, optional
        Disk radius in pixels, > 0. Default ``0.2 * N`` (12.8 px for N = 64): the blurred edge
        (about 2 * blur wide) then stays close to the N/4 normalization mask and inside the
        central N/2 window where the model's object is non-zero.
    blur : float
        Edge blur in pixels, >= 0.

    Returns
    -------
    ndarray, complex64, shape (N, N)
        Real, non-negative values; peak amplitude 1.
    """
    check_power_of_two(n)
    rad = check_positive(0.2 * n if radius is None else radius, name="radius")
    sigma = check_positive(blur, name="blur", allow_zero=True)
    return _soft_aperture(n, rad, 0.0, sigma).astype(np.complex64)


def gaussian_probe(n: int = 64, *, sigma: float) -> np.ndarray:
    """Gaussian probe ``P = exp(-r^2 / (2 sigma^2))`` with flat phase (amplitude std ``sigma``).

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    sigma : float
        Standard deviation of the amplitude in pixels, > 0 (the intensity's is sigma / sqrt 2).

    Returns
    -------
    ndarray, complex64, shape (N, N)
    """
    check_power_of_two(n)
    s = check_positive(sigma, name="sigma")
    return np.exp(-radius_map(n) ** 2 / (2.0 * s * s)).astype(np.complex64)


def zone_plate_probe(n: int = 64, *, radius: float | None = None, defocus: float = 0.0,
                     central_stop: float = 0.0, blur: float = 1.0) -> np.ndarray:
    """Zone-plate-like probe: soft annular aperture with quadratic (defocus) phase.

    ``P(r) = a(r) * exp(i * defocus * (r / radius)^2)``, where ``a`` is the annulus
    ``central_stop * radius <= r <= radius`` blurred by ``blur`` pixels (peak 1). The quadratic
    phase is the paraxial wavefront of a beam observed out of focus (Goodman, *Introduction to
    Fourier Optics*, ch. 5); ``defocus`` is the phase at the aperture rim in radians, its sign
    telling converging (< 0) from diverging (> 0). ``defocus = 0`` is the in-focus stand-in.

    Parameters
    ----------
    n : int
        Probe side N, a power of two.
    radius : float, optional
        Outer aperture radius in pixels; default ``0.2 * N``.
    defocus : float
        Rim phase in radians (finite).
    central_stop : float
        Inner radius as a fraction of ``radius``, in [0, 1).
    blur : float
        Edge blur in pixels, >= 0.

    Returns
    -------
    ndarray, complex64, shape (N, N)
    """
    check_power_of_two(n)
    rad = check_positive(0.2 * n if radius is None else radius, name="radius")
    if not np.isfinite(defocus):
        raise PhysicsError(f"defocus must be finite (radians at the rim), got {defocus!r}")
    if not 0.0 <= central_stop < 1.0:
        raise PhysicsError(f"central_stop must be in [0, 1), got {central_stop!r}")
    amplitude = _soft_aperture(n, rad, central_stop * rad,
                               check_positive(blur, name="blur", allow_zero=True))
    phase = defocus * (radius_map(n) / rad) ** 2
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def probe_from_array(array: object, *, n: int) -> np.ndarray:
    """Validate a user-supplied probe (e.g. read from a file by ``storage``).

    Parameters
    ----------
    array : array_like, real or complex, shape (N, N)
        Finite values.
    n : int
        Expected side N, a power of two.

    Returns
    -------
    ndarray, complex64, shape (N, N)
        A new array.
    """
    check_power_of_two(n)
    arr = as_finite_array(array, name="probe array", ndim=2)
    if arr.shape != (n, n):
        raise PhysicsError(f"probe array must have shape ({n}, {n}), got {arr.shape}")
    return arr.astype(np.complex64)


def normalize_probe(probe: np.ndarray, *,
                    probe_scale: float = DEFAULT_PROBE_SCALE) -> tuple[np.ndarray, float]:
    """Scale a probe so that ``mean(|mask * P|) = 1 / probe_scale``.

    ``P <- P * factor`` with ``factor = 1 / (probe_scale * mean(|mask * P|))``, where the mean runs
    over **all N x N pixels** (pixels outside the mask contribute 0, i.e. the mean equals
    ``sum_{r <= N/4} |P| / N^2``) and ``mask`` is :func:`probe_mask` (disk of radius N/4 centred at
    (N//2, N//2)).

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)
        Finite probe, N a power of two.
    probe_scale : float
        Default 4 (PHYSICS.md), > 0.

    Returns
    -------
    probe : ndarray, complex64, shape (N, N)
        The normalized probe (a new array).
    factor : float
        The multiplier applied (report it as a diagnostic).
    """
    arr = as_finite_array(probe, name="probe", ndim=2)
    n = arr.shape[0]
    if arr.shape != (n, n):
        raise PhysicsError(f"probe must be square (N, N), got shape {arr.shape}")
    check_power_of_two(n)
    scale = check_positive(probe_scale, name="probe_scale")
    mean_abs = float(np.abs(arr[probe_mask(n)].astype(np.complex128)).sum() / (n * n))
    if mean_abs == 0.0:
        raise PhysicsError("probe is zero inside the N/4 mask; it cannot be normalized")
    factor = 1.0 / (scale * mean_abs)
    return (arr * factor).astype(np.complex64), factor


def probe_statistics(probe: np.ndarray) -> dict[str, float]:
    """Summary numbers of a probe (rows of the ``diagnostics`` table).

    Parameters
    ----------
    probe : ndarray, complex, shape (N, N)

    Returns
    -------
    dict
        ``probe_size`` (N), ``probe_power`` (sum |P|^2), ``probe_peak_amplitude`` (max |P|),
        ``probe_mean_abs_in_mask`` (sum over r <= N/4 of |P| / N^2, the quantity fixed by
        :func:`normalize_probe`), ``probe_centroid_dx`` / ``probe_centroid_dy`` (|P|^2-weighted
        centroid minus (N//2, N//2), pixels, x = column), ``probe_centroid_offset`` (their norm),
        ``probe_rms_radius`` (sqrt of the |P|^2-weighted mean r^2 about (N//2, N//2)),
        ``probe_power_fraction_in_mask`` (share of sum |P|^2 with r <= N/4).
    """
    arr = as_finite_array(probe, name="probe", ndim=2).astype(np.complex128)
    n = arr.shape[0]
    if arr.shape != (n, n):
        raise PhysicsError(f"probe must be square (N, N), got shape {arr.shape}")
    intensity = np.abs(arr) ** 2
    power = float(intensity.sum())
    if power == 0.0:
        raise PhysicsError("probe is zero everywhere; it has no statistics")
    offsets = np.arange(n) - n // 2
    dy = float((intensity.sum(axis=1) * offsets).sum() / power)
    dx = float((intensity.sum(axis=0) * offsets).sum() / power)
    mask = radius_map(n) <= n / 4
    return {
        "probe_size": float(n),
        "probe_power": power,
        "probe_peak_amplitude": float(np.sqrt(intensity.max())),
        "probe_mean_abs_in_mask": float(np.abs(arr[mask]).sum() / (n * n)),
        "probe_centroid_dx": dx,
        "probe_centroid_dy": dy,
        "probe_centroid_offset": float(np.hypot(dx, dy)),
        "probe_rms_radius": float(np.sqrt((intensity * radius_map(n) ** 2).sum() / power)),
        "probe_power_fraction_in_mask": float(intensity[mask].sum() / power),
    }
