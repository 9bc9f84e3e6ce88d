"""Parity between two reconstructions of the same data (pure numpy): forward agreement of the same
weights in two backends, and agreement of two separately trained arms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.metrics import channel_metrics

__all__ = ["max_differences", "patch_variance_ratio", "stitched_agreement", "seed_spread_tolerance"]


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


def seed_spread_tolerance(ssim_a: Sequence[float], ssim_b: Sequence[float], *,
                          k: float = 3.0) -> dict[str, float]:
    """Tolerance on the SSIM difference of two separately trained arms, from their seed spread.

    Each arm is trained with several training seeds on the same data. Within an arm the metric
    varies from seed to seed with sample standard deviation ``sigma`` (ddof = 1). The difference
    of one run of ``a`` and one run of ``b`` then has standard deviation
    ``sqrt(sigma_a^2 + sigma_b^2)`` if the backends are equivalent, and

        tolerance = k * sqrt(sigma_a^2 + sigma_b^2)

    bounds the single-pair difference ``|ssim_a[i] - ssim_b[i]|`` except with small probability
    (k = 3: about 0.3 % for normal spread). A systematic backend offset shows up separately in
    ``z = mean_delta / sqrt(sigma_a^2 / n_a + sigma_b^2 / n_b)``.

    Parameters
    ----------
    ssim_a, ssim_b : sequence of float, lengths n_a, n_b >= 2
        The metric of each training seed of arm a and of arm b (finite values).
    k : float
        Number of standard deviations, > 0.

    Returns
    -------
    dict of str to float
        ``n_a, n_b, mean_a, mean_b, std_a, std_b, tolerance, mean_delta, mean_delta_se, z``.

    Raises
    ------
    EvaluationError
        Fewer than two finite values in an arm, or ``k <= 0``.
    """
    a = np.asarray(ssim_a, dtype=np.float64)
    b = np.asarray(ssim_b, dtype=np.float64)
    if not (np.isfinite(k) and k > 0):
        raise EvaluationError(f"k must be finite and > 0, got {k!r}")
    for name, v in (("ssim_a", a), ("ssim_b", b)):
        if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)):
            raise EvaluationError(
                f"{name}: the seed spread needs >= 2 finite values (one per training seed), got {v.tolist()!r}")
    sa, sb = float(a.std(ddof=1)), float(b.std(ddof=1))
    delta = float(a.mean() - b.mean())
    se = float(np.sqrt(sa**2 / a.size + sb**2 / b.size))
    return {"n_a": float(a.size), "n_b": float(b.size), "mean_a": float(a.mean()),
            "mean_b": float(b.mean()), "std_a": sa, "std_b": sb,
            "tolerance": float(k * np.hypot(sa, sb)), "mean_delta": delta, "mean_delta_se": se,
            "z": delta / se if se > 0 else float("nan")}
