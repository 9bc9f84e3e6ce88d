"""Parity between two reconstructions of the same data (pure numpy): forward agreement of the same
weights in two backends, and agreement of two separately trained arms."""

from __future__ import annotations

import numpy as np

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.metrics import channel_metrics

__all__ = ["max_differences", "patch_variance_ratio", "stitched_agreement"]


def max_differences(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Max absolute difference and max relative difference ``max|a - b| / max|a|``.

    Parameters
    ----------
    reference, other : numpy.ndarray, complex or real, same shape (e.g. (B, C, N, N))

    Returns
    -------
    (float, float)
        Absolute and relative maxima (the relative one is NaN when ``reference`` is all zero).
    """
    a, b = np.asarray(reference), np.asarray(other)
    if a.shape != b.shape:
        raise EvaluationError(f"parity needs arrays of one shape, got {a.shape} and {b.shape}")
    diff = float(np.max(np.abs(a.astype(np.complex128) - b.astype(np.complex128)))) if a.size else 0.0
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    return diff, diff / scale if scale > 0 else float("nan")


def patch_variance_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Ratio of the mean zero-mean variance of the patch amplitudes of ``a`` to that of ``b``.

    Parameters
    ----------
    a, b : numpy.ndarray, complex, shape (..., N, N)
    """
    va = float(np.mean(np.var(np.abs(a), axis=(-2, -1))))
    vb = float(np.mean(np.var(np.abs(b), axis=(-2, -1))))
    return va / vb if vb > 0 else float("nan")


def stitched_agreement(canvas_a: np.ndarray, canvas_b: np.ndarray) -> dict[str, float]:
    """MAE and SSIM of amplitude (and phase MAE) of two stitched canvases on their common covered pixels.

    Parameters
    ----------
    canvas_a, canvas_b : numpy.ndarray, complex64, shape (H, W), NaN where uncovered
    """
    if canvas_a.shape != canvas_b.shape:
        raise EvaluationError(f"canvases differ in shape: {canvas_a.shape} vs {canvas_b.shape}")
    mask = np.isfinite(canvas_a) & np.isfinite(canvas_b)
    if not mask.any():
        raise EvaluationError("the two canvases share no covered pixel")
    a = np.where(mask, canvas_a, 0)
    b = np.where(mask, canvas_b, 0)
    amp = channel_metrics(np.abs(a), np.abs(b), mask, channel="amplitude")
    phase = channel_metrics(np.angle(a), np.angle(b), mask, channel="phase")
    return {"stitched_amp_mae": float(amp["mae"]), "stitched_amp_ssim": float(amp["ssim"]),
            "stitched_phase_mae": float(phase["mae"])}
