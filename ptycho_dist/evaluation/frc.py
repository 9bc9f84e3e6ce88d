"""Fourier ring correlation (FRC) with the 0.5 and 1/2-bit threshold crossings.

For two images ``f1, f2`` with 2-D DFTs ``F1, F2`` the FRC of ring ``k`` is

    FRC(k) = Re sum_k F1 conj(F2) / sqrt(sum_k |F1|^2 * sum_k |F2|^2)   (sums over ring k)

(Saxton & Baumeister 1982; van Heel 1987). Rings are one frequency bin ``1/L`` wide with
``L = min(H, W)``: pixel frequency ``|q| = hypot(fy, fx)`` (cycles/px, from ``numpy.fft.fftfreq``)
goes to ring ``round(|q| L)``; rings ``0 ... L//2`` are kept and ring ``k`` is reported at
``2 k / L`` as a **fraction of Nyquist** (0.5 cycles/px = 1). Stacks of images (k, H, W) are pooled:
sums run over every image (used for patch-level FRC).

The 1/2-bit threshold (van Heel & Schatz, J. Struct. Biol. 151:250, 2005, eq. 17) for a ring of
``n`` pixels is

    T(n) = (0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n)).

A crossing is the first ring ``k >= 1`` where the FRC falls below the threshold, linearly
interpolated between rings ``k - 1`` and ``k`` (from ring 1 onwards; ring 0 holds only the
mean). No crossing up to Nyquist reports 1.0.

In the evaluation procedure each image first has its region mean subtracted and is multiplied by
a soft-edged window of the region (:func:`prepare_frc_image`), so that the region's edges do not
produce a spurious correlation at high frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import EvaluationError

__all__ = ["FRCCurve", "frc_curve", "halfbit_threshold", "crossing", "prepare_frc_image",
           "region_window"]

MIN_FRC_SIDE = 8


@dataclass(frozen=True, eq=False)
class FRCCurve:
    """An FRC curve: ``frequency`` (fraction of Nyquist), ``frc``, ``n_pixels`` per ring
    (pooled over images), and the 1/2-bit ``halfbit`` threshold per ring; all shape (L//2 + 1,)."""

    frequency: np.ndarray
    frc: np.ndarray
    n_pixels: np.ndarray
    halfbit: np.ndarray

    @property
    def crossing_05(self) -> float:
        """Frequency (fraction of Nyquist) where the FRC first drops below 0.5."""
        return crossing(self.frequency, self.frc, np.full_like(self.frc, 0.5))

    @property
    def crossing_halfbit(self) -> float:
        """Frequency (fraction of Nyquist) where the FRC first drops below the 1/2-bit curve."""
        return crossing(self.frequency, self.frc, self.halfbit)


def halfbit_threshold(n_pixels: np.ndarray) -> np.ndarray:
    """1/2-bit threshold of van Heel & Schatz (2005) for rings of ``n_pixels`` pixels (float64)."""
    root = np.sqrt(np.maximum(np.asarray(n_pixels, dtype=np.float64), 1.0))
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def frc_curve(image1: np.ndarray, image2: np.ndarray) -> FRCCurve:
    """FRC between two real or complex images (H, W) or pooled stacks (k, H, W).

    Inputs are used as given (see :func:`prepare_frc_image` for the windowing used by the
    evaluation procedure). ``min(H, W)`` must be at least 8.
    """
    a, b = np.asarray(image1), np.asarray(image2)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise EvaluationError(f"FRC needs two (H, W) or (k, H, W) arrays of one shape, got "
                              f"{a.shape} and {b.shape}")
    h, w = a.shape[-2:]
    side = min(h, w)
    if side < MIN_FRC_SIDE:
        raise EvaluationError(f"FRC needs images of at least {MIN_FRC_SIDE} px a side, got {h}x{w}")
    f1, f2 = np.fft.fft2(a), np.fft.fft2(b)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    ring = np.rint(radius * side).astype(np.int64)
    keep = ring <= side // 2
    idx = np.broadcast_to(ring, f1.shape)[np.broadcast_to(keep, f1.shape)]
    nrings = side // 2 + 1

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values[np.broadcast_to(keep, f1.shape)], minlength=nrings)

    cross = ring_sum((f1 * np.conj(f2)).real)
    power = ring_sum(np.abs(f1) ** 2) * ring_sum(np.abs(f2) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = np.where(power > 0, cross / np.sqrt(power), np.nan)
    counts = np.bincount(idx, minlength=nrings).astype(np.int64)
    freq = 2.0 * np.arange(nrings) / side
    return FRCCurve(freq, frc, counts, halfbit_threshold(counts))


def crossing(frequency: np.ndarray, frc: np.ndarray, threshold: np.ndarray) -> float:
    """First frequency (ring >= 1) where ``frc < threshold``, linearly interpolated; 1.0 if none.

    Rings with an undefined FRC (NaN: no power) are skipped.
    """
    diff = np.asarray(frc, dtype=np.float64) - np.asarray(threshold, dtype=np.float64)
    prev = None
    for k in range(1, diff.size):
        if not np.isfinite(diff[k]):
            continue
        if diff[k] < 0:
            if prev is None:
                return float(frequency[k])
            t = diff[prev] / (diff[prev] - diff[k])
            return float(frequency[prev] + t * (frequency[k] - frequency[prev]))
        prev = k
    return 1.0


def prepare_frc_image(image: np.ndarray, mask: np.ndarray, *, taper: int | None = None
                      ) -> np.ndarray:
    """Region-mean-subtracted image under a soft-edged region window (float64/complex128).

    The window is ``0.5 (1 - cos(pi min(d / T, 1)))`` with ``d`` the Euclidean distance of a
    pixel to the nearest pixel outside the region (the array's outside counts as outside) and
    ``T = taper`` (default ``clip(min(H, W) // 8, 2, 8)`` px). Both images of a pair get the same
    window, so that the region's edge, which both share, does not show up as a spurious
    correlation at high frequency.

    Parameters
    ----------
    image : numpy.ndarray, (H, W) or stacks (k, H, W); NaN allowed outside ``mask``
    mask : numpy.ndarray, bool, same shape
    """
    img = np.asarray(image)
    m = np.asarray(mask, dtype=bool)
    dtype = np.result_type(img.dtype, np.float64)
    out = np.where(m, img, 0).astype(dtype)
    counts = m.sum(axis=(-2, -1), keepdims=True)
    means = out.sum(axis=(-2, -1), keepdims=True) / np.maximum(counts, 1)
    return np.where(m, out - means, 0) * region_window(m, taper=taper)


def region_window(mask: np.ndarray, *, taper: int | None = None) -> np.ndarray:
    """Raised-cosine window falling to 0 at the edge of a boolean mask (H, W) or (k, H, W)."""
    m = np.asarray(mask, dtype=bool)
    side = min(m.shape[-2:])
    t = float(np.clip(side // 8, 2, 8) if taper is None else taper)
    pad = [(0, 0)] * (m.ndim - 2) + [(1, 1), (1, 1)]
    sampling = [1e9] * (m.ndim - 2) + [1.0, 1.0]  # no distance across stacked images
    dist = ndimage.distance_transform_edt(np.pad(m, pad), sampling=sampling)
    dist = dist[(Ellipsis, slice(1, -1), slice(1, -1))]
    return 0.5 * (1.0 - np.cos(np.pi * np.minimum(dist / t, 1.0)))
