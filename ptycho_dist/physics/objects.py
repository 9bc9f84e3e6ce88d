"""Complex test objects (PHYSICS.md "Objects, probes, scans").

Every generator returns a new complex64 array of shape (H, W), row = y, column = x, with
``amplitude = a_lo + (a_hi - a_lo) * u`` and ``phase = p_lo + (p_hi - p_lo) * v`` where ``u, v``
are real maps scaled affinely onto [0, 1] (min -> 0, max -> 1). So the amplitude and phase span
exactly ``amplitude_range`` and ``phase_range`` (radians) unless the map is constant.
Random generators take ``rng: numpy.random.Generator | int | None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positive, check_range, to_unit_range

__all__ = [
    "lines_object",
    "gaussian_random_field_object",
    "siemens_star_object",
    "object_from_array",
    "compose_object",
]

RangeLike = tuple[float, float] | Sequence[float]


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or any(isinstance(s, bool) or int(s) != s or s < 1 for s in shape):
        raise PhysicsError(f"object shape must be two positive integers (H, W), got {shape!r}")
    return int(shape[0]), int(shape[1])


def compose_object(amplitude_unit: np.ndarray, phase_unit: np.ndarray, *,
                   amplitude_range: RangeLike, phase_range: RangeLike) -> np.ndarray:
    """Build ``A * exp(i * phi)`` from two maps in [0, 1].

    Parameters
    ----------
    amplitude_unit, phase_unit : ndarray, float, shape (H, W)
        Maps in [0, 1].
    amplitude_range : (float, float)
        Amplitude at 0 and at 1; low >= 0.
    phase_range : (float, float)
        Phase in radians at 0 and at 1.

    Returns
    -------
    ndarray, complex64, shape (H, W)
    """
    a_lo, a_hi = check_range(amplitude_range, name="amplitude_range", minimum=0.0)
    p_lo, p_hi = check_range(phase_range, name="phase_range")
    amplitude = a_lo + (a_hi - a_lo) * amplitude_unit
    phase = p_lo + (p_hi - p_lo) * phase_unit
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def _line_image(gen: np.random.Generator, n_lines: int, shape: tuple[int, int]) -> np.ndarray:
    """Rasterize ``n_lines`` random segments (unit weight per pixel of length), float64 (H, W)."""
    h, w = shape
    if n_lines == 0:
        return np.zeros(shape)
    centre = gen.uniform((0.0, 0.0), (w, h), size=(n_lines, 2))
    angle = gen.uniform(0.0, np.pi, size=n_lines)
    length = gen.uniform(0.05, 0.5, size=n_lines) * min(h, w)
    n_samples = int(np.ceil(2.0 * length.max())) + 2
    t = np.linspace(-0.5, 0.5, n_samples)
    x = centre[:, :1] + t * length[:, None] * np.cos(angle)[:, None]
    y = centre[:, 1:] + t * length[:, None] * np.sin(angle)[:, None]
    col, row = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    weight = np.broadcast_to((length / (n_samples - 1))[:, None], col.shape)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = row[inside] * w + col[inside]
    return np.bincount(flat, weights=weight[inside], minlength=h * w).reshape(h, w)


def lines_object(shape: Sequence[int], *, n_lines: int = 400,
                 widths: Sequence[float] = (0.5, 1.0, 2.0),
                 amplitude_range: RangeLike = (0.5, 1.0), phase_range: RangeLike = (0.0, 0.5),
                 rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Random line segments blurred at several widths (the PtychoPINN-style ``lines`` object).

    The ``n_lines`` segments (uniform centres, uniform angles, lengths uniform in
    [0.05, 0.5] * min(H, W)) are split evenly among ``widths``; each share is rasterized (one unit
    of weight per pixel of length) and blurred with a Gaussian of standard deviation ``width``
    pixels (``scipy.ndimage.gaussian_filter``). The sum ``S`` scaled onto [0, 1] drives both
    amplitude and phase; the default ranges make it amplitude-dominant (amplitude 0.5..1,
    phase 0..0.5 rad).

    Parameters
    ----------
    shape : (int, int)
        Object shape (H, W).
    n_lines : int
        Number of segments, >= 1.
    widths : sequence of float
        Gaussian blur widths in pixels, each > 0.
    amplitude_range, phase_range : (float, float)
        See :func:`compose_object`.
    rng : Generator, int or None
        Random source.

    Returns
    -------
    ndarray, complex64, shape (H, W)
    """
    h, w = _check_shape(shape)
    if isinstance(n_lines, bool) or int(n_lines) != n_lines or n_lines < 1:
        raise PhysicsError(f"n_lines must be an integer >= 1, got {n_lines!r}")
    if len(widths) == 0:
        raise PhysicsError("widths must hold at least one blur width, got an empty sequence")
    sigmas = [check_positive(s, name="each line width") for s in widths]
    gen = np.random.default_rng(rng)
    image = np.zeros((h, w))
    for sigma, share in zip(sigmas, np.array_split(np.arange(int(n_lines)), len(sigmas))):
        image += ndimage.gaussian_filter(_line_image(gen, share.size, (h, w)), sigma)
    unit = to_unit_range(image)
    return compose_object(unit, unit, amplitude_range=amplitude_range, phase_range=phase_range)


def gaussian_random_field_object(shape: Sequence[int], *, correlation_length: float = 8.0,
                                 amplitude_range: RangeLike = (0.5, 1.0),
                                 phase_range: RangeLike = (0.0, 0.5),
                                 rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Object whose amplitude and phase are two independent Gaussian random fields.

    Each field is white Gaussian noise convolved with a periodic Gaussian kernel of standard
    deviation ``correlation_length`` pixels (so its autocorrelation is Gaussian with standard
    deviation ``sqrt(2) * correlation_length``), then scaled onto [0, 1].

    Parameters
    ----------
    shape : (int, int)
        Object shape (H, W).
    correlation_length : float
        Kernel width in pixels, > 0.
    amplitude_range, phase_range : (float, float)
        See :func:`compose_object`.
    rng : Generator, int or None
        Random source.

    Returns
    -------
    ndarray, complex64, shape (H, W)
    """
    h, w = _check_shape(shape)
    sigma = check_positive(correlation_length, name="correlation_length")
    gen = np.random.default_rng(rng)
    fields = [to_unit_range(ndimage.gaussian_filter(gen.standard_normal((h, w)), sigma,
                                                    mode="wrap")) for _ in range(2)]
    return compose_object(fields[0], fields[1], amplitude_range=amplitude_range,
                          phase_range=phase_range)


def siemens_star_object(shape: Sequence[int], *, n_spokes: int = 32,
                        amplitude_range: RangeLike = (0.5, 1.0),
                        phase_range: RangeLike = (0.0, 0.5)) -> np.ndarray:
    """Deterministic Siemens star: ``n_spokes`` bright wedges inside a centred disk.

    The map is 1 where ``cos(n_spokes * theta) > 0`` and the radius from pixel (H//2, W//2) is at
    most ``0.45 * min(H, W)``, else 0; theta = atan2(y - H//2, x - W//2).

    Parameters
    ----------
    shape : (int, int)
        Object shape (H, W).
    n_spokes : int
        Number of bright wedges, >= 1.
    amplitude_range, phase_range : (float, float)
        See :func:`compose_object`.

    Returns
    -------
    ndarray, complex64, shape (H, W)
    """
    h, w = _check_shape(shape)
    if isinstance(n_spokes, bool) or int(n_spokes) != n_spokes or n_spokes < 1:
        raise PhysicsError(f"n_spokes must be an integer >= 1, got {n_spokes!r}")
    y, x = np.mgrid[0:h, 0:w]
    dy, dx = y - h // 2, x - w // 2
    inside = np.hypot(dx, dy) <= 0.45 * min(h, w)
    unit = ((np.cos(n_spokes * np.arctan2(dy, dx)) > 0) & inside).astype(np.float64)
    return compose_object(unit, unit, amplitude_range=amplitude_range, phase_range=phase_range)


def object_from_array(array: object, *, amplitude_range: RangeLike | None = None,
                      phase_range: RangeLike | None = None) -> np.ndarray:
    """Validate a user-supplied object (e.g. read from npy/npz/tiff by ``storage``).

    Parameters
    ----------
    array : array_like, real or complex, shape (H, W)
        Must be finite. A real array is taken as a complex object with that (signed) real part.
    amplitude_range : (float, float), optional
        If given, |array| is rescaled affinely onto this range (min -> low, max -> high).
    phase_range : (float, float), optional
        If given, angle(array) is rescaled affinely onto this range (radians).

    Returns
    -------
    ndarray, complex64, shape (H, W)
        A new array; the input is never modified.

    Raises
    ------
    PhysicsError
        Not 2-D, empty, not numeric, or containing NaN/inf (the message gives the count).
    """
    arr = as_finite_array(array, name="object array", ndim=2)
    obj = arr.astype(np.complex64)  # always a copy
    if amplitude_range is None and phase_range is None:
        return obj
    amplitude, phase = np.abs(obj).astype(np.float64), np.angle(obj).astype(np.float64)
    if amplitude_range is not None:
        lo, hi = check_range(amplitude_range, name="amplitude_range", minimum=0.0)
        amplitude = lo + (hi - lo) * to_unit_range(amplitude)
    if phase_range is not None:
        lo, hi = check_range(phase_range, name="phase_range")
        phase = lo + (hi - lo) * to_unit_range(phase)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)
