"""Amplitude and phase bias figures of a reconstruction against the truth (pure numpy).

Amplitude: over region pixels where the truth amplitude exceeds ``threshold * max`` (well above
zero, so the ratio is meaningful), the ratio ``|rec| / |gt|`` is summarised by its mean, median and
5th/95th percentiles. With the complex least-squares scalar ``c`` (see
:func:`ptycho_dist.evaluation.alignment.ls_scalar`), the amplitude errors after rescaling are
``mean| |c| |rec| - |gt| |`` and the matching RMSE, over the whole region. A constant amplitude bias
(for example the ~12x one seen in the field) shows as ``amp_ratio_* ~ 1/12``, ``ls_scale ~ 12`` and
small rescaled errors.

Phase: ``phase_offset_mean`` is the circular mean of ``arg(rec) - arg(gt)`` over region pixels
where both amplitudes are non-zero: ``arg(sum exp(i (arg rec - arg gt)))``, in ``(-pi, pi]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["amplitude_bias", "phase_offset"]


def amplitude_bias(rec: np.ndarray, truth: np.ndarray, region: np.ndarray, *, scalar: complex,
                   threshold: float = 0.1) -> dict[str, float]:
    """Amplitude bias figures.

    Parameters
    ----------
    rec, truth : numpy.ndarray, complex (H, W)
        Registered reconstruction and truth on one grid.
    region : numpy.ndarray, bool (H, W)
    scalar : complex
        Least-squares scalar ``c`` (``nan`` allowed: rescaled errors are then NaN).
    threshold : float, optional
        Ratios use pixels with ``|gt| > threshold * max|gt|`` over the region.

    Returns
    -------
    dict
        ``ls_scale, ls_phase, amp_ratio_mean, amp_ratio_median, amp_ratio_p05, amp_ratio_p95,
        amp_mae_rescaled, amp_rmse_rescaled`` (float; NaN where undefined).
    """
    a_rec = np.abs(np.asarray(rec)[region]).astype(np.float64)
    a_gt = np.abs(np.asarray(truth)[region]).astype(np.float64)
    strong = a_gt > threshold * a_gt.max() if a_gt.size else np.zeros(0, bool)
    ratio = a_rec[strong] / a_gt[strong]
    nan = float("nan")
    stats = ([float(ratio.mean()), float(np.median(ratio)),
              float(np.percentile(ratio, 5)), float(np.percentile(ratio, 95))]
             if ratio.size else [nan] * 4)
    scale = abs(scalar) if np.isfinite(scalar) else nan
    diff = scale * a_rec - a_gt
    return {
        "ls_scale": float(scale),
        "ls_phase": float(np.angle(scalar)) if np.isfinite(scalar) else nan,
        "amp_ratio_mean": stats[0], "amp_ratio_median": stats[1],
        "amp_ratio_p05": stats[2], "amp_ratio_p95": stats[3],
        "amp_mae_rescaled": float(np.mean(np.abs(diff))),
        "amp_rmse_rescaled": float(np.sqrt(np.mean(diff ** 2))),
    }


def phase_offset(rec: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Circular mean of ``arg(rec) - arg(gt)`` over region pixels with both amplitudes > 0."""
    r = np.asarray(rec)[region]
    g = np.asarray(truth)[region]
    keep = (np.abs(r) > 0) & (np.abs(g) > 0)
    if not keep.any():
        return float("nan")
    unit = (r[keep] / np.abs(r[keep])) * np.conj(g[keep] / np.abs(g[keep]))
    return float(np.angle(unit.sum()))
