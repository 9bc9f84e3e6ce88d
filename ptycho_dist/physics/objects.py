"""Complex test objects (PHYSICS.md "Objects, probes, scans").

Every generator returns a new complex64 array of shape (H, W), row = y, column = x, with
``amplitude = a_lo + (a_hi - a_lo) * u`` and ``phase = p_lo + (p_hi - p_lo) * v`` where ``u, v``
are real maps scaled affinely onto [0, 1] (min -> 0, max -> 1). So the amplitude and phase span
exactly ``amplitude_range`` and ``phase_range`` (radians) unless the map is constant.
Random generators take ``rng: numpy.random.Generator | int | None``.

The exception is the PtychoPINN reference object (:func:`ptychopinn_lines_amplitude`,
:func:`normalize_by_mean_patch_max`, :func:`ptychopinn_lines_object`), whose amplitude is not
mapped onto a range but divided by the mean of its per-patch maxima, as the reference does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import (
    as_finite_array,
    check_positions,
    check_positive,
    check_range,
    to_unit_range,
)
from ptycho_dist.physics.forward import extract_patches

__all__ = [
    "lines_object",
    "gaussian_random_field_object",
    "siemens_star_object",
    "object_from_array",
    "compose_object",
    "PTYCHOPINN_LINE_SIGMAS",
    "PTYCHOPINN_LINE_WEIGHTS",
    "LINES_PHASES",
    "ptychopinn_lines_amplitude",
    "mean_patch_max",
    "normalize_by_mean_patch_max",
    "reference_tanh_phase",
    "ptychopinn_lines_object",
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


# --- The PtychoPINN reference "lines" object ------------------------------------------------------

#: Gaussian blur widths (pixels) and weights of the reference lines object: S = 1 g_1 + 2 g_5 + 5 g_10
PTYCHOPINN_LINE_SIGMAS: tuple[float, ...] = (1.0, 5.0, 10.0)
PTYCHOPINN_LINE_WEIGHTS: tuple[float, ...] = (1.0, 2.0, 5.0)
#: phase options of the reference lines object: zero, or the reference's ``set_phi`` tanh map
LINES_PHASES: tuple[str, ...] = ("zero", "tanh")


def _digital_segments(canvas: np.ndarray, ends: np.ndarray) -> None:
    """Set to 1 the pixels of each 1-px digital segment ``(r0, c0) -> (r1, c1)`` (rows of ``ends``).

    A segment visits ``max(|r1 - r0|, |c1 - c0|) + 1`` pixels, one per step of its major axis, the
    minor coordinate rounded to the nearest integer (the digital line that Bresenham's algorithm
    draws, up to ties). Pixels are set, not added: crossing segments stay at 1.
    """
    for r0, c0, r1, c1 in ends:
        steps = max(abs(r1 - r0), abs(c1 - c0))
        t = np.linspace(0.0, 1.0, steps + 1)
        canvas[np.rint(r0 + t * (r1 - r0)).astype(np.int64),
               np.rint(c0 + t * (c1 - c0)).astype(np.int64)] = 1.0


def ptychopinn_lines_amplitude(size: int, *, n_lines: int = 400,
                               sigmas: Sequence[float] = PTYCHOPINN_LINE_SIGMAS,
                               weights: Sequence[float] = PTYCHOPINN_LINE_WEIGHTS,
                               rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Un-normalized amplitude of the PtychoPINN reference ``lines`` object.

    On a canvas of side ``L = 2 * size``, ``n_lines`` segments of 1-px digital lines are drawn
    (value 1, crossings not added) between endpoints whose four integer coordinates
    ``(r0, c0, r1, c1) = floor(L * u)``, ``u ~ U[0, 1)``, are drawn per segment in that order. The
    binary canvas ``B`` is blurred at several widths and summed,

    .. math:: S = \\sum_i w_i \\, (g_{\\sigma_i} * B),

    with ``scipy.ndimage.gaussian_filter`` (mode "reflect", truncate 4), default
    ``sigma = (1, 5, 10)`` px and ``w = (1, 2, 5)``; the object is the central ``size x size`` crop
    ``S[size//2 : size//2 + size, size//2 : size//2 + size]``, so no edge of the canvas is seen.
    This is the construction of ``mk_lines_img`` and ``sim_object_image`` (``data_source =
    "lines"``, 400 lines) in ``ptycho/diffsim.py`` of the public PtychoPINN code
    (github.com/hoidn/PtychoPINN), with an explicit random source instead of numpy's global one.

    Parameters
    ----------
    size : int
        Object side H = W in pixels, >= 1.
    n_lines : int
        Number of segments, >= 1 (the reference uses 400 whatever the size).
    sigmas, weights : sequence of float
        Blur widths (pixels, > 0) and their weights (finite, >= 0), of equal length.
    rng : Generator, int or None
        Random source of the endpoints (4 uniform draws per segment).

    Returns
    -------
    ndarray, float64, shape (size, size)
        ``S`` cropped, >= 0; its scale is arbitrary until :func:`normalize_by_mean_patch_max`.
    """
    side = _check_shape((size, size))[0]
    if isinstance(n_lines, bool) or int(n_lines) != n_lines or n_lines < 1:
        raise PhysicsError(f"n_lines must be an integer >= 1, got {n_lines!r}")
    if len(sigmas) == 0 or len(sigmas) != len(weights):
        raise PhysicsError(f"sigmas and weights must be non-empty and of equal length, got "
                           f"{len(sigmas)} sigmas and {len(weights)} weights")
    blur = [check_positive(s, name="each sigma") for s in sigmas]
    mix = [check_positive(w, name="each weight", allow_zero=True) for w in weights]
    gen = np.random.default_rng(rng)
    canvas_side = 2 * side
    ends = np.floor(canvas_side * gen.uniform(size=(int(n_lines), 4))).astype(np.int64)
    canvas = np.zeros((canvas_side, canvas_side))
    _digital_segments(canvas, ends)
    total = sum(w * ndimage.gaussian_filter(canvas, s, mode="reflect", truncate=4.0)
                for s, w in zip(blur, mix))
    lo = side // 2
    return np.asarray(total)[lo:lo + side, lo:lo + side].copy()


def mean_patch_max(amplitude: np.ndarray, positions: np.ndarray, *, n: int,
                   groups: np.ndarray | None = None) -> float:
    """Mean over patches (or groups of patches) of the largest amplitude each one sees.

    .. math:: m = \\frac{1}{K} \\sum_{k=1}^{K} \\max_{i, j} A_k[i, j]

    where ``A_k`` is the N x N patch under position ``k`` (bilinear extraction, the forward model's
    :func:`~ptycho_dist.physics.forward.extract_patches`). With ``groups`` the maximum runs over all
    members of each group and the mean over the groups, which is what the reference does at
    gridsize > 1 (``preprocess_objects`` in ``ptycho/tf_helper.py`` of PtychoPINN: the maximum over
    each solution region's ``gridsize**2`` patches, then the mean over solution regions).

    Parameters
    ----------
    amplitude : ndarray, real, shape (H, W)
        Finite, non-negative amplitude map.
    positions : ndarray, float, shape (K, 2)
        Probe-centre positions (x, y) in object pixels of the patches normalized over; every patch
        must lie inside the object.
    n : int
        Patch side N (even).
    groups : ndarray, int, shape (B, C), optional
        Indices into ``positions`` of the members of each group; None: every patch on its own.

    Returns
    -------
    float
        ``m`` (> 0 unless every patch is zero).
    """
    amp = as_finite_array(amplitude, name="amplitude", ndim=2)
    if amp.dtype.kind == "c":
        raise PhysicsError(f"amplitude must be real, got dtype {amp.dtype}")
    pos = check_positions(positions)
    peaks = extract_patches(amp, pos, n).real.max(axis=(1, 2)).astype(np.float64)
    if groups is None:
        return float(peaks.mean())
    idx = np.asarray(groups)
    if idx.ndim != 2 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise PhysicsError(f"groups must be a non-empty integer array (B, C), got {idx.dtype} {idx.shape}")
    if idx.min() < 0 or idx.max() >= len(pos):
        raise PhysicsError(f"groups index positions 0..{len(pos) - 1}, got indices "
                           f"{int(idx.min())}..{int(idx.max())}")
    return float(peaks[idx].max(axis=1).mean())


def normalize_by_mean_patch_max(amplitude: np.ndarray, positions: np.ndarray, *, n: int,
                                groups: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Divide an amplitude map by :func:`mean_patch_max` (the reference's ``norm_Y_I``).

    Parameters
    ----------
    amplitude, positions, n, groups
        As in :func:`mean_patch_max`.

    Returns
    -------
    amplitude : ndarray, float64, shape (H, W)
        ``A / m`` (a new array): its patches at ``positions`` then have mean maximum 1.
    norm : float
        ``m``.

    Raises
    ------
    PhysicsError
        ``m`` is zero (every patch is zero).
    """
    norm = mean_patch_max(amplitude, positions, n=n, groups=groups)
    if not norm > 0:
        raise PhysicsError(f"mean patch maximum is {norm}; an all-zero amplitude cannot be normalized")
    return np.asarray(amplitude, dtype=np.float64) / norm, norm


def reference_tanh_phase(amplitude: np.ndarray) -> np.ndarray:
    """The reference's optional phase of the lines object (``set_phi``, ``dummy_phi``).

    .. math:: \\varphi = \\pi \\tanh\\left(\\frac{A - \\max A / 2}{3 \\, \\overline{A}}\\right)

    with the maximum and mean over the whole map; the map is scale-invariant in ``A``, so it is
    the same before and after normalization.

    Parameters
    ----------
    amplitude : ndarray, real, shape (H, W)
        Finite amplitude with a positive mean.

    Returns
    -------
    ndarray, float64, shape (H, W)
        Phase in radians, in (-pi, pi).
    """
    amp = as_finite_array(amplitude, name="amplitude", ndim=2).astype(np.float64)
    mean = float(amp.mean())
    if not mean > 0:
        raise PhysicsError(f"amplitude must have a positive mean for the tanh phase, got {mean}")
    return np.pi * np.tanh((amp - amp.max() / 2.0) / (3.0 * mean))


def ptychopinn_lines_object(size: int, *, positions: np.ndarray, n: int, n_lines: int = 400,
                            phase: str = "zero", groups: np.ndarray | None = None,
                            rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The PtychoPINN reference lines object, normalized as the reference does.

    ``O = (S / m) * exp(i * phi)``: ``S`` from :func:`ptychopinn_lines_amplitude`, ``m`` the mean
    per-patch maximum of ``S`` over the patches at ``positions`` (:func:`mean_patch_max`), and
    ``phi = 0`` (``phase = "zero"``, the reference default: amplitude only) or
    :func:`reference_tanh_phase` (``phase = "tanh"``).

    Parameters
    ----------
    size : int
        Object side in pixels.
    positions : ndarray, float, shape (K, 2)
        Scan positions (x, y) whose patches fix the normalization (the patches the data is
        simulated from, as in the reference).
    n : int
        Patch side N.
    n_lines : int
        Number of segments.
    phase : {"zero", "tanh"}
        Phase map.
    groups : ndarray, int, shape (B, C), optional
        See :func:`mean_patch_max`.
    rng : Generator, int or None
        Random source of the segments.

    Returns
    -------
    ndarray, complex64, shape (size, size)
    """
    if phase not in LINES_PHASES:
        raise PhysicsError(f"phase must be one of {LINES_PHASES}, got {phase!r}")
    raw = ptychopinn_lines_amplitude(size, n_lines=n_lines, rng=rng)
    amplitude, _ = normalize_by_mean_patch_max(raw, positions, n=n, groups=groups)
    if phase == "zero":
        return amplitude.astype(np.complex64)
    return (amplitude * np.exp(1j * reference_tanh_phase(amplitude))).astype(np.complex64)
