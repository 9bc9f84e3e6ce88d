"""Alignment of a reconstruction to the truth: frame, translation, complex scale, phase ramp.

Every alignment step is a *reported* figure (bias table), never a silent correction:

* :func:`to_object_frame` puts a stitched canvas on the truth's pixel grid (bilinear resampling
  only when the canvas origin is fractional, as in the ``"centered"`` frame).
* :func:`register_shift` estimates the translation with scikit-image's
  :func:`~skimage.registration.phase_cross_correlation` (``upsample_factor=50``: 1/50 px,
  windowed and refined iteratively),
  and :func:`shift_image` applies it with a Fourier shift (:func:`scipy.ndimage.fourier_shift`).
* :func:`ls_scalar` is the complex least-squares scalar ``c = <rec, gt> / <rec, rec>``
  (``<a, b> = sum conj(a) b`` over the region) minimising ``||c rec - gt||^2``: ``|c|`` is the
  amplitude scale, ``arg c`` the global phase.
* :func:`fit_phase_ramp` fits ``a0 + ax x + ay y`` to the wrapped phase difference
  ``arg(gt conj(rec))`` by least squares over the region.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage
from scipy.signal.windows import hann
from skimage.registration import phase_cross_correlation

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.region import bounding_box
from ptycho_dist.stitching import StitchResult

__all__ = ["to_object_frame", "register_shift", "shift_image", "shift_mask", "ls_scalar",
           "fit_phase_ramp", "phase_plane"]

_INT_ATOL = 1e-9


def to_object_frame(stitched: StitchResult, shape: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Resample a stitched canvas onto the object grid ``shape = (H, W)``.

    Canvas pixel ``(r, c)`` is object point ``(x, y) = origin + (c, r)``. For an integer origin
    the canvas is pasted; for a fractional one it is first shifted by the fractional part with
    bilinear interpolation (a pixel is kept only where all contributing canvas pixels were
    covered).

    Returns
    -------
    rec : numpy.ndarray, complex128 (H, W)
        Reconstruction on the object grid, NaN where not covered.
    coverage : numpy.ndarray, float64 (H, W)
        Coverage on the object grid (0 where not covered).
    outside : int
        Covered canvas pixels that fall outside the object grid (dropped from evaluation; a
        canvas larger than or misplaced against the object shows here).
    """
    canvas = np.asarray(stitched.canvas, dtype=np.complex128)
    coverage = np.asarray(stitched.coverage, dtype=np.float64)
    covered = np.isfinite(canvas) & (coverage > 0)
    base = np.floor(stitched.origin + _INT_ATOL)
    frac = stitched.origin - base
    if np.any(np.abs(frac) > _INT_ATOL):
        canvas, coverage, covered = _resample(canvas, coverage, covered, frac)
    rec = np.full(shape, np.nan + 1j * np.nan, dtype=np.complex128)
    cov = np.zeros(shape, dtype=np.float64)
    dst, src = _overlap(int(base[0]), int(base[1]), canvas.shape, shape)
    inside = covered[src]
    rec[dst] = np.where(inside, canvas[src], np.nan + 1j * np.nan)
    cov[dst] = np.where(inside, coverage[src], 0.0)
    return rec, cov, int(covered.sum() - inside.sum())


def _resample(canvas: np.ndarray, coverage: np.ndarray, covered: np.ndarray, frac: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift a canvas by the fractional origin (x, y) (bilinear), growing it by one pixel."""
    pad = ((0, 1), (0, 1))
    shift = (float(frac[1]), float(frac[0]))
    filled = np.pad(np.where(covered, canvas, 0), pad)
    out = ndimage.shift(filled, shift, order=1, mode="constant", cval=0.0)
    cov = ndimage.shift(np.pad(np.where(covered, coverage, 0.0), pad), shift, order=1)
    valid = ndimage.shift(np.pad(covered.astype(np.float64), pad), shift, order=1) > 1 - 1e-6
    return out, cov, valid


def _overlap(x0: int, y0: int, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]
             ) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Destination and source slices where a source placed at (x0, y0) overlaps the target."""
    r0, r1 = max(y0, 0), min(y0 + src_shape[0], dst_shape[0])
    c0, c1 = max(x0, 0), min(x0 + src_shape[1], dst_shape[1])
    r1, c1 = max(r1, r0), max(c1, c0)
    return ((slice(r0, r1), slice(c0, c1)),
            (slice(r0 - y0, r1 - y0), slice(c0 - x0, c1 - x0)))


def register_shift(reference: np.ndarray, moving: np.ndarray, region: np.ndarray, *,
                   upsample_factor: int = 50, max_iterations: int = 8) -> tuple[float, float]:
    """Sub-pixel shift ``(dy, dx)`` that, applied to ``moving``, registers it to ``reference``.

    Both images are cut to the region's bounding box; pixels outside the region (and NaN in
    ``moving``) are set to the region mean, the mean is subtracted and a Hann window applied;
    :func:`skimage.registration.phase_cross_correlation` (``upsample_factor``,
    ``normalization=None``: plain cross-correlation, which is robust for the smooth objects of
    these studies) then gives a shift. A fixed window and a cut-out region bias a single estimate
    toward zero, so the estimate is refined: ``moving`` is Fourier-shifted by the running total
    and registered again until the correction is below ``1 / upsample_factor`` px (at most
    ``max_iterations`` rounds; two or three in practice). A constant image gives ``(0, 0)``.
    The correlation is complex, so it works for phase-only objects; a strong phase ramp in the
    reconstruction biases it (remove the ramp first if that is the question asked).

    Parameters
    ----------
    reference, moving : numpy.ndarray, complex or float (H, W)
        Truth and reconstruction on the same grid (NaN allowed outside ``region``).
    region : numpy.ndarray, bool (H, W)

    Returns
    -------
    tuple of float
        ``(dy, dx)`` in pixels; :func:`shift_image` with it moves ``moving`` onto ``reference``.
    """
    box = bounding_box(region)
    mask = region[box]
    if min(mask.shape) < 4:
        raise EvaluationError(f"region too small to register: bounding box {mask.shape}")
    window = np.outer(hann(mask.shape[0]), hann(mask.shape[1]))
    ref = _centred(np.asarray(reference)[box], mask) * window
    mov = np.asarray(moving, dtype=np.complex128)
    filled = np.where(np.isfinite(mov), mov, mov[region].mean())
    if not (np.any(ref) and np.any(_centred(filled[box], mask))):
        return 0.0, 0.0  # a constant image has no translation to find
    total = np.zeros(2)
    for _ in range(max_iterations):
        moved = shift_image(filled, (total[0], total[1])) if total.any() else filled
        step = _correlate(ref, _centred(moved[box], mask) * window, upsample_factor)
        total += step
        if np.max(np.abs(step)) < 1.0 / upsample_factor:
            break
    return float(total[0]), float(total[1])


def _correlate(ref: np.ndarray, mov: np.ndarray, upsample_factor: int) -> np.ndarray:
    """One phase_cross_correlation step (its RMS-error warning is irrelevant: not used)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Could not determine RMS error",
                                category=UserWarning)
        shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=upsample_factor,
                                              normalization=None)
    return np.asarray(shift, dtype=np.float64)


def _centred(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Region-mean-subtracted copy with zeros outside the mask."""
    out = np.where(mask, image, 0).astype(np.complex128)
    out[mask] -= out[mask].mean()
    out[~mask] = 0
    return out


def shift_image(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Fourier shift of a (NaN-free) 2-D image by ``(dy, dx)`` pixels (periodic), complex128.

    ``out(y, x) = image(y - dy, x - dx)`` for band-limited periodic images.
    """
    spectrum = ndimage.fourier_shift(np.fft.fft2(np.asarray(image, dtype=np.complex128)), shift)
    return np.fft.ifft2(spectrum)


def shift_mask(mask: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Where a shifted image is trustworthy: the mask moved by ``shift`` (non-periodic),
    keeping only pixels whose whole bilinear neighbourhood was in ``mask``, minus one more pixel
    for the Fourier shift's ringing at the edges."""
    mask = np.asarray(mask, dtype=bool)
    if shift[0] == 0 and shift[1] == 0:
        return mask.copy()
    moved = ndimage.shift(mask.astype(np.float64), shift, order=1, mode="constant", cval=0.0)
    return ndimage.binary_erosion(moved > 1 - 1e-6, structure=np.ones((3, 3), bool),
                                  border_value=0)


def ls_scalar(rec: np.ndarray, truth: np.ndarray, region: np.ndarray) -> complex:
    """Complex least-squares scalar ``c = <rec, gt> / <rec, rec>`` over the region.

    Returns ``nan + nan j`` when the reconstruction is zero over the whole region.
    """
    r = np.asarray(rec)[region]
    g = np.asarray(truth)[region]
    power = float(np.vdot(r, r).real)
    if not power > 0:
        return complex(np.nan, np.nan)
    return complex(np.vdot(r, g) / power)


def fit_phase_ramp(rec: np.ndarray, truth: np.ndarray, region: np.ndarray
                   ) -> tuple[float, float, float]:
    """Least-squares plane ``(a0, ax, ay)`` (rad, rad/px) fitted to ``arg(gt conj(rec))``.

    The phase difference is wrapped to ``(-pi, pi]`` before fitting, so ramps of more than about
    pi across the region cannot be recovered. Multiply ``rec`` by ``exp(1j * phase_plane(...))``
    to remove the fitted plane.
    """
    rows, cols = np.nonzero(region)
    diff = np.angle(np.asarray(truth)[region] * np.conj(np.asarray(rec)[region]))
    design = np.column_stack([np.ones(rows.size), cols, rows]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, diff, rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def phase_plane(shape: tuple[int, int], coef: tuple[float, float, float]) -> np.ndarray:
    """The plane ``a0 + ax x + ay y`` on a (H, W) grid, float64."""
    rows, cols = np.indices(shape, dtype=np.float64)
    return coef[0] + coef[1] * cols + coef[2] * rows
