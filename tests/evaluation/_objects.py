"""Small stand-alone helpers for the evaluation tests (no dependency on ptycho_dist.physics)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptycho_dist.stitching import StitchResult


def smooth_object(rng: np.random.Generator, shape: tuple[int, int] = (96, 96), *,
                  sigma: float = 3.0, phase: bool = True) -> np.ndarray:
    """Smooth complex test object, amplitude in [0.2, 1], phase in [-1, 1] rad (or 0)."""
    amp = ndimage.gaussian_filter(rng.random(shape), sigma)
    amp = 0.2 + 0.8 * (amp - amp.min()) / (amp.max() - amp.min())
    ph = ndimage.gaussian_filter(rng.standard_normal(shape), sigma + 1)
    ph = ph / np.abs(ph).max() if phase else np.zeros(shape)
    return (amp * np.exp(1j * ph)).astype(np.complex64)


def as_stitched(canvas: np.ndarray, *, origin: tuple[float, float] = (0.0, 0.0),
                crop: int = 20) -> StitchResult:
    """Wrap an array as a fully covered (where finite) object-frame StitchResult."""
    canvas = np.asarray(canvas, dtype=np.complex64)
    coverage = np.isfinite(canvas).astype(np.float32)
    return StitchResult(canvas, coverage, np.asarray(origin, dtype=np.float64), crop, "object")


def extract(obj: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Bilinear sub-pixel patches (k, n, n): pixel (i, j) = obj(y - n//2 + i, x - n//2 + j)."""
    grid = np.arange(n, dtype=np.float64) - n // 2
    out = np.empty((len(positions), n, n), dtype=np.complex64)
    for k, (x, y) in enumerate(positions):
        rows, cols = np.meshgrid(y + grid, x + grid, indexing="ij")
        coords = [rows, cols]
        out[k] = (ndimage.map_coordinates(obj.real, coords, order=1)
                  + 1j * ndimage.map_coordinates(obj.imag, coords, order=1))
    return out
