"""Flat diagnostic figures that make common stitching and scaling bugs visible as numbers.

* :func:`support_box`: bounding box of the stitched support in object pixels. A reconstruction
  that collapsed onto one patch (offsets broadcast or lost) has a support of one crop, ``M x M``.
* :func:`position_summary`: number of positions, number of *distinct* positions (rounded to
  1e-6 px; a collapse shows as 1) and per-axis min/max/std.
* :func:`expected_footprint` / :func:`coverage_share`: the share of the expected area that the
  stitched canvas covers. The expected area is the **union of the cropped footprints of the
  reference (true) scan positions** on the object grid, so a canvas built from wrong or broadcast
  positions shows a share well below 1.
* :func:`patch_statistics`: per-patch mean and zero-mean variance of the amplitude, averaged over
  patches, for prediction and truth, and their ratios (a constant amplitude bias or a collapse to
  flat patches shows here), and the mean per-patch correlation of the zero-mean amplitudes
  (``patch_amp_structure_r``): near 0 when a model reproduces each patch's mean amplitude but none of
  its structure, which a stitched SSIM or MAE alone does not tell apart from a poor fit.
* :func:`target_gaps`: patch-level minus stitched SSIM per channel
  (``patch_minus_stitched_amp_ssim``, ``patch_minus_stitched_phase_ssim``). Near 0 when stitching
  is sound; large and positive when good patches were reassembled wrongly (collapsed offsets, a
  clipping canvas), which is also the case where patch-level metrics alone would hide the failure.
* :func:`score_mask`, :func:`patch_scores`, :func:`learning_scores`: the patch-level score of a
  model's predictions (Pearson r of predicted and true amplitude over the illuminated part of the
  PINN's central window of many patches, as the mean of per-patch contributions) and its gain over
  the untrained network of the same seed, with the standard error of that gain (the
  ``patch_score_*`` diagnostics of the train stage and the ``learned_nothing`` quality flag).
* :func:`placed_weight_share`: the share of the placement weight of all stitched patches that
  landed on the canvas (``sum(coverage) / (n * sum(w))``): 1 when nothing is clipped, the kept
  share for the older fixed canvas (``frame="legacy"``).
"""

from __future__ import annotations

import numpy as np

from ptycho_dist.errors import EvaluationError
from ptycho_dist.stitching import StitchResult, crop_bounds

__all__ = ["support_box", "distinct_positions", "position_summary", "expected_footprint",
           "coverage_share", "patch_statistics", "target_gaps", "placed_weight_share", "score_mask",
           "patch_scores", "learning_scores"]


def support_box(stitched: StitchResult) -> dict[str, float]:
    """Bounding box of the covered canvas pixels in object pixels (half-open).

    Returns
    -------
    dict
        ``support_x0, support_y0`` (first covered column/row), ``support_x1, support_y1`` (one
        past the last), ``support_width = x1 - x0``, ``support_height = y1 - y0``; NaN (and 0
        sizes) when nothing is covered. Coordinates are fractional for a fractional origin.
    """
    covered = np.isfinite(stitched.canvas) & (stitched.coverage > 0)
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    if rows.size == 0:
        nan = float("nan")
        return {"support_x0": nan, "support_y0": nan, "support_x1": nan, "support_y1": nan,
                "support_width": 0, "support_height": 0}
    ox, oy = (float(v) for v in stitched.origin)
    return {"support_x0": ox + int(cols[0]), "support_y0": oy + int(rows[0]),
            "support_x1": ox + int(cols[-1]) + 1, "support_y1": oy + int(rows[-1]) + 1,
            "support_width": int(cols[-1] + 1 - cols[0]),
            "support_height": int(rows[-1] + 1 - rows[0])}


def distinct_positions(positions: np.ndarray, *, resolution: float = 1e-6) -> int:
    """Number of distinct (x, y) rows after rounding to ``resolution`` px."""
    pos = _as_positions(positions)
    return int(np.unique(np.round(pos / resolution), axis=0).shape[0])


def position_summary(positions: np.ndarray) -> dict[str, float | int]:
    """Count, distinct count and per-axis min/max/std of positions (n, 2) or (B, C, 2)."""
    pos = _as_positions(positions)
    out: dict[str, float | int] = {"n_positions": int(pos.shape[0]),
                                   "n_distinct_positions": distinct_positions(pos)}
    for axis, name in enumerate("xy"):
        out[f"position_{name}_min"] = float(pos[:, axis].min())
        out[f"position_{name}_max"] = float(pos[:, axis].max())
        out[f"position_{name}_std"] = float(pos[:, axis].std())
    return out


def _as_positions(positions: np.ndarray) -> np.ndarray:
    """Flatten (…, 2) positions to (n, 2) float64 and check them."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim < 2 or pos.shape[-1] != 2 or pos.size == 0:
        raise EvaluationError(f"positions must be (n, 2) or (B, C, 2), got shape {pos.shape}")
    return pos.reshape(-1, 2)


def expected_footprint(positions: np.ndarray, shape: tuple[int, int], crop: int) -> np.ndarray:
    """bool (H, W): union of the ``crop x crop`` footprints of ``positions`` on the object grid.

    Footprint of ``(x, y)``: rows ``floor(y - M//2) ... + M - 1``, columns likewise (the pixels a
    crop placed there touches, ignoring the bilinear spill), clipped to the grid.
    """
    pos = _as_positions(positions)
    mask = np.zeros(shape, dtype=bool)
    corner = np.floor(pos - crop // 2 + 1e-9).astype(np.int64)
    for x0, y0 in corner:
        mask[max(y0, 0):max(y0 + crop, 0), max(x0, 0):max(x0 + crop, 0)] = True
    return mask


def coverage_share(covered: np.ndarray, expected: np.ndarray) -> float:
    """``|covered & expected| / |expected|`` (NaN when nothing is expected)."""
    n_expected = int(np.count_nonzero(expected))
    if n_expected == 0:
        return float("nan")
    return float(np.count_nonzero(covered & expected) / n_expected)


def patch_statistics(pred: np.ndarray, truth: np.ndarray, *,
                     structure_crop: int | None = None) -> dict[str, float]:
    """Per-patch amplitude mean and zero-mean variance, averaged over patches, and ratios.

    Parameters
    ----------
    pred, truth : numpy.ndarray, complex (k, N, N) or (B, C, N, N), one shape
    structure_crop : int or None
        Side M of the central M x M square of each patch on which ``patch_amp_structure_r`` is
        computed (the stitching crop: the pixels that reach the stitched object, well inside the
        probe); None or M >= N uses the whole patch. Mean and variance always use the whole patch.

    Returns
    -------
    dict
        ``patch_amp_mean_pred, patch_amp_mean_truth, patch_amp_mean_ratio, patch_amp_var_pred,
        patch_amp_var_truth, patch_amp_var_ratio`` (ratio = pred / truth; NaN if truth is 0), and
        ``patch_amp_structure_r``: the Pearson correlation of predicted and true amplitude within each
        patch, averaged over the patches where both vary (NaN if none does). It is invariant to a
        per-patch offset and gain, so it measures structure only: 1 for a perfect (or linearly
        rescaled) patch, about 0 for patches that get the mean right and the structure wrong.
    """
    p, t = (np.abs(np.asarray(a)).astype(np.float64) for a in (pred, truth))
    if p.shape != t.shape or p.ndim < 3:
        raise EvaluationError(f"pred and truth patches must share a (k, N, N) shape, got "
                              f"{p.shape} and {t.shape}")
    if structure_crop is not None and (isinstance(structure_crop, bool) or structure_crop < 1):
        raise EvaluationError(f"structure_crop must be None or an integer >= 1, got {structure_crop!r}")
    centre = _central(p, structure_crop), _central(t, structure_crop)
    p, t = (a.reshape(-1, a.shape[-2] * a.shape[-1]) for a in (p, t))
    out: dict[str, float] = {}
    for stat, fn in (("mean", np.mean), ("var", np.var)):
        vp, vt = float(fn(p, axis=1).mean()), float(fn(t, axis=1).mean())
        out[f"patch_amp_{stat}_pred"] = vp
        out[f"patch_amp_{stat}_truth"] = vt
        out[f"patch_amp_{stat}_ratio"] = vp / vt if vt != 0 else float("nan")
    cp, ct = (a.reshape(-1, a.shape[-2] * a.shape[-1]) for a in centre)
    out["patch_amp_structure_r"] = _mean_patch_correlation(cp, ct)
    return out


def _central(a: np.ndarray, m: int | None) -> np.ndarray:
    """The central ``m x m`` square of the last two axes (the stitching crop, placed by
    :func:`ptycho_dist.stitching.crop_bounds`), or ``a`` itself if ``m`` is None or >= n."""
    n = a.shape[-1]
    if m is None or m >= n:
        return a
    lo, size = crop_bounds(n, m)
    return a[..., lo:lo + size, lo:lo + size]


def _mean_patch_correlation(p: np.ndarray, t: np.ndarray) -> float:
    """Mean over rows of the Pearson r of ``p[k]`` and ``t[k]`` (float64, shape (k, m)).

    Rows where either side is constant (spread below 1e-9 of its RMS value, rounding) are left out;
    NaN if every row is.
    """
    dp, dt = p - p.mean(axis=1, keepdims=True), t - t.mean(axis=1, keepdims=True)
    sp, st = np.sqrt((dp * dp).sum(axis=1)), np.sqrt((dt * dt).sum(axis=1))
    ok = (sp > 1e-9 * np.sqrt((p * p).sum(axis=1))) & (st > 1e-9 * np.sqrt((t * t).sum(axis=1)))
    if not ok.any():
        return float("nan")
    return float(np.mean((dp[ok] * dt[ok]).sum(axis=1) / (sp[ok] * st[ok])))


def target_gaps(metrics_rows: list[dict[str, object]]) -> dict[str, float]:
    """Patch-level minus stitched SSIM, per channel, from one evaluation's metric rows.

    Parameters
    ----------
    metrics_rows : list of dict
        Rows with ``target``, ``channel`` and ``ssim`` keys (:data:`.procedure.METRIC_KEYS`).

    Returns
    -------
    dict
        ``patch_minus_stitched_amp_ssim`` and ``patch_minus_stitched_phase_ssim`` for every channel
        that has both a ``"patch"`` and a ``"stitched"`` row (NaN when either SSIM is NaN); empty
        when one target is missing.
    """
    ssim: dict[tuple[object, object], float] = {}
    for r in metrics_rows:
        value = r.get("ssim")
        ssim[(r.get("target"), r.get("channel"))] = float(value) if isinstance(value, (int, float)) else float("nan")
    out: dict[str, float] = {}
    for channel, short in (("amplitude", "amp"), ("phase", "phase")):
        if ("patch", channel) in ssim and ("stitched", channel) in ssim:
            out[f"patch_minus_stitched_{short}_ssim"] = ssim[("patch", channel)] - ssim[("stitched", channel)]
    return out


def placed_weight_share(coverage: np.ndarray, n_patches: int, weight_sum: float) -> float:
    """Share of the placement weight of ``n_patches`` patches that the canvas kept.

    Parameters
    ----------
    coverage : numpy.ndarray, float, shape (H', W')
        The stitch's summed placement weights (:attr:`ptycho_dist.stitching.StitchResult.coverage`).
    n_patches : int
        Number of patches stitched (>= 1).
    weight_sum : float
        Sum of one patch's crop weights ``w`` (``M * M`` for uniform weights), > 0.

    Returns
    -------
    float
        ``sum(coverage) / (n_patches * weight_sum)``: 1 (to float32 rounding) when every
        contribution landed on the canvas, less when a fixed canvas clipped some.
    """
    if n_patches < 1 or not weight_sum > 0:
        raise EvaluationError(f"need n_patches >= 1 and weight_sum > 0, got {n_patches} and {weight_sum}")
    return float(np.sum(coverage, dtype=np.float64) / (n_patches * float(weight_sum)))


def score_mask(probe: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """Pixels on which a PINN's patches are scored: the central N/2 x N/2 window (where the model's
    object is non-zero: rows and columns N/4 .. 3N/4 - 1) where ``|P| >= threshold * max |P|``.

    Parameters
    ----------
    probe : numpy.ndarray, complex (N, N)
    threshold : float, optional
        Share of the probe's peak amplitude, in [0, 1).

    Returns
    -------
    numpy.ndarray, bool (N, N)
    """
    p = np.abs(np.asarray(probe))
    if p.ndim != 2 or p.shape[0] != p.shape[1] or not 0 <= threshold < 1:
        raise EvaluationError(f"score_mask needs a square (N, N) probe and 0 <= threshold < 1, got "
                              f"shape {p.shape}, threshold {threshold!r}")
    n = p.shape[0]
    window = np.zeros((n, n), bool)
    window[n // 4: n // 4 + n // 2, n // 4: n // 4 + n // 2] = True
    return window & (p >= threshold * p.max())


def patch_scores(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-patch contributions to the patch-level Pearson r of predicted and true amplitude.

    Over the ``mask`` pixels of all k patches pooled, ``z_p`` and ``z_t`` are the predicted and true
    amplitudes standardized by their pooled mean and (population) standard deviation; patch ``j``
    contributes ``c_j = mean_{pixels of j} z_p z_t``, so ``mean_j c_j`` is the Pearson r of all
    scored pixels (the patch-level correlation: between-patch brightness and within-patch structure
    alike), and the spread of ``c_j`` over patches gives its standard error.

    Parameters
    ----------
    pred, truth : numpy.ndarray, complex (k, N, N) or (B, C, N, N), one shape
    mask : numpy.ndarray, bool (N, N)
        The scored pixels (:func:`score_mask`).

    Returns
    -------
    numpy.ndarray, float64 (k,)
        A prediction that is flat over all scored pixels (spread below 1e-9 of its RMS: no
        structure at all) contributes 0 everywhere; a non-finite one gives NaN; NaN everywhere when
        the truth is flat.
    """
    p, t = (np.abs(np.asarray(a)).astype(np.float64) for a in (pred, truth))
    m = np.asarray(mask, bool)
    if p.shape != t.shape or p.ndim < 3 or p.shape[-2:] != m.shape or not m.any():
        raise EvaluationError(f"pred and truth patches must share a (k, N, N) shape matching a non-empty mask, "
                              f"got {p.shape}, {t.shape} and mask {m.shape}")
    p, t = p.reshape(-1, *m.shape)[:, m], t.reshape(-1, *m.shape)[:, m]

    def standardized(a: np.ndarray) -> np.ndarray | None:
        d = a - a.mean()
        sd = float(np.sqrt(np.mean(d * d)))
        if not np.isfinite(sd):
            return np.full_like(a, np.nan)
        return None if sd <= 1e-9 * float(np.sqrt(np.mean(a * a))) else d / sd

    zt, zp = standardized(t), standardized(p)
    if zt is None:
        return np.full(p.shape[0], np.nan)
    if zp is None:
        return np.zeros(p.shape[0])
    return np.mean(zp * zt, axis=1)


def learning_scores(trained: np.ndarray, untrained: np.ndarray) -> dict[str, float]:
    """Mean patch scores of a trained and an untrained network and the standard error of the gain.

    Parameters
    ----------
    trained, untrained : numpy.ndarray, float64 (k,)
        :func:`patch_scores` of the two networks' predictions of the same patches (per-patch
        contributions, whose means are the two patch-level correlations).

    Returns
    -------
    dict
        ``patch_score_trained``, ``patch_score_untrained`` (means), ``patch_score_gain_se``
        (``std(trained - untrained, ddof=1) / sqrt(k)``; NaN for k < 2) and
        ``patch_score_patches`` (k). NaN means when k = 0 or a score is NaN.
    """
    a, b = np.asarray(trained, np.float64), np.asarray(untrained, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise EvaluationError(f"trained and untrained scores must be two (k,) arrays, got {a.shape}, {b.shape}")
    k, nan = a.size, float("nan")
    gain = a - b
    return {"patch_score_trained": float(a.mean()) if k else nan,
            "patch_score_untrained": float(b.mean()) if k else nan,
            "patch_score_gain_se": float(gain.std(ddof=1) / np.sqrt(k)) if k > 1 else nan,
            "patch_score_patches": float(k)}
