"""Selection of the pixels on which a reconstruction is evaluated (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptycho_dist.errors import EvaluationError

__all__ = ["select_region", "bounding_box", "erode"]


def erode(mask: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels (Chebyshev distance) from the edge of a boolean mask.

    A pixel survives when the whole ``(2 border + 1)^2`` square around it lies in ``mask``;
    pixels outside the array count as outside the mask.

    Parameters
    ----------
    mask : numpy.ndarray, bool (..., H, W)
        Stacks are eroded image by image (no erosion across the leading axes).
    border : int
        Non-negative erosion width in pixels.

    Returns
    -------
    numpy.ndarray, bool, same shape as ``mask``
    """
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise EvaluationError(f"border must be a non-negative int, got {border!r}")
    mask = np.asarray(mask, dtype=bool)
    if border == 0:
        return mask.copy()
    flat = mask.reshape((-1,) + mask.shape[-2:])
    out = np.empty_like(flat)
    for i, image in enumerate(flat):  # chessboard distance to the outside: O(H W), any border
        dist = ndimage.distance_transform_cdt(np.pad(image, 1), metric="chessboard")
        out[i] = dist[1:-1, 1:-1] > border
    return out.reshape(mask.shape)


def select_region(canvas: np.ndarray, *, illumination: np.ndarray | None = None,
                  illumination_threshold: float | None = None, border: int = 0) -> np.ndarray:
    """Boolean mask of the evaluation region.

    region = finite(canvas) [and illumination >= threshold * max(illumination over the finite
    pixels)], then eroded by ``border`` pixels.

    Parameters
    ----------
    canvas : numpy.ndarray, complex or float (H, W)
        Reconstruction in the truth's frame; uncovered pixels are NaN.
    illumination : numpy.ndarray, float (H, W), optional
        Summed illumination (or coverage) per pixel; required with ``illumination_threshold``.
    illumination_threshold : float, optional
        Fraction in ``(0, 1]`` of the maximum illumination (PHYSICS.md suggests 0.1).
    border : int, optional
        Pixels removed from the region's edge.

    Returns
    -------
    numpy.ndarray, bool (H, W)

    Raises
    ------
    EvaluationError
        Bad shapes or threshold, or an empty region.
    """
    canvas = np.asarray(canvas)
    if canvas.ndim != 2:
        raise EvaluationError(f"canvas must be 2-D (H, W), got shape {canvas.shape}")
    mask = np.isfinite(canvas)
    if illumination_threshold is not None:
        mask &= _illuminated(canvas.shape, illumination, illumination_threshold, mask)
    region = erode(mask, border)
    if not region.any():
        raise EvaluationError(
            f"empty evaluation region: {int(mask.sum())} covered/illuminated pixels of "
            f"{canvas.shape[0]}x{canvas.shape[1]}, none left after a border of {border} px")
    return region


def _illuminated(shape: tuple[int, ...], illumination: np.ndarray | None, threshold: float,
                 covered: np.ndarray) -> np.ndarray:
    """Pixels whose illumination reaches ``threshold`` times the maximum over covered pixels."""
    if illumination is None:
        raise EvaluationError("illumination_threshold needs the summed illumination array")
    ill = np.asarray(illumination, dtype=np.float64)
    if ill.shape != shape:
        raise EvaluationError(f"illumination must have the canvas shape {shape}, got {ill.shape}")
    if not 0.0 < float(threshold) <= 1.0:
        raise EvaluationError(f"illumination_threshold must be in (0, 1], got {threshold!r}")
    good = covered & np.isfinite(ill)
    peak = float(ill[good].max()) if good.any() else 0.0
    return good & (ill >= threshold * peak) & (ill > 0)


def bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Row and column slices of the smallest rectangle holding every True pixel of a 2-D mask.

    Raises :class:`EvaluationError` for an empty mask.
    """
    rows = np.flatnonzero(np.any(mask, axis=1))
    cols = np.flatnonzero(np.any(mask, axis=0))
    if rows.size == 0:
        raise EvaluationError("bounding box of an empty mask")
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
