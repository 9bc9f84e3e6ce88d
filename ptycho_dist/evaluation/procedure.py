"""The evaluation procedure applied identically to every arm (model arms and the oracle arm).

``evaluate_reconstruction`` (stitched canvas vs the true object):

1. put the canvas on the truth's grid (:func:`.alignment.to_object_frame`);
2. region = covered pixels [with summed illumination >= ``illumination_threshold`` x max, taken
   from the stitch coverage, which is the summed illumination for probe-intensity weights]
   minus a ``border`` (:func:`.region.select_region`);
3. registration (``register=True``): sub-pixel translation by phase correlation (upsample 50),
   applied to the reconstruction with a Fourier shift; pixels the shift brings in from outside
   the covered area leave the region;
4. complex least-squares scalar ``c``; the bias row reports ``|c|``, ``arg c``, amplitude ratios,
   the errors after rescaling by ``|c|`` and the circular-mean phase offset;
5. the global phase ``arg c`` is removed (phase is only defined up to a constant); with
   ``phase_ramp=True`` a fitted phase plane is removed too;
6. metrics per channel on the result. The **amplitude is not rescaled** for the metric rows, so a
   constant amplitude bias shows as a large MAE there and as a small ``amp_mae_rescaled`` in the
   bias row. Phase metrics compare ``arg(gt)`` with the reconstruction's phase on the branch
   nearest to it (``arg(gt) + arg(rec conj(gt))``), so a wrap across +/- pi is not an error.

Row layouts (one dict per row; keys fixed, values float/int/bool/str):

* metrics: ``target`` ("stitched" | "patch"), ``channel`` ("amplitude" | "phase"), ``mae, rmse,
  max_error, pearson_r, psnr, psnr_data_range, psnr_legacy_255, ssim, frc_05, frc_halfbit,
  frc_undefined, n_pixels``;
* bias: ``shift_x, shift_y`` (displacement of the reconstruction relative to the truth, px:
  ``rec(x, y) ~ gt(x - shift_x, y - shift_y)``; the registration applied the opposite shift),
  ``ls_scale, ls_phase, amp_ratio_mean, amp_ratio_median, amp_ratio_p05, amp_ratio_p95,
  amp_mae_rescaled, amp_rmse_rescaled, phase_offset_mean``;
* diagnostics: see :func:`evaluate_reconstruction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation import alignment, diagnostics
from ptycho_dist.evaluation.bias import amplitude_bias, phase_offset
from ptycho_dist.evaluation.metrics import channel_metrics
from ptycho_dist.evaluation.region import bounding_box, select_region
from ptycho_dist.evaluation.columns import BIAS_KEYS, METRIC_KEYS
from ptycho_dist.stitching import StitchResult

__all__ = ["EvaluationResult", "evaluate_reconstruction", "evaluate_patches", "METRIC_KEYS",
           "BIAS_KEYS"]

@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Rows of one evaluation, plus the aligned reconstruction for figures.

    Attributes
    ----------
    metrics_rows : list of dict
        One row per (target, channel), keys :data:`METRIC_KEYS`.
    bias_row : dict
        Keys :data:`BIAS_KEYS`.
    diagnostics : dict
        Flat ``str -> float | int | str`` figures.
    aligned : numpy.ndarray, complex128 (H, W)
        Reconstruction on the truth grid after registration and phase alignment; NaN where it
        is not defined.
    region : numpy.ndarray, bool (H, W)
        The pixels the stitched metrics were computed on.
    """

    metrics_rows: list[dict[str, Any]]
    bias_row: dict[str, float]
    diagnostics: dict[str, float | int | str]
    aligned: np.ndarray
    region: np.ndarray


def evaluate_reconstruction(
        stitched: StitchResult, truth_object: np.ndarray, *, border: int = 2,
        illumination_threshold: float | None = None, register: bool = True,
        phase_ramp: bool = False, upsample_factor: int = 50, amplitude_threshold: float = 0.1,
        constant_tolerance: float = 1e-6, positions: np.ndarray | None = None,
        reference_positions: np.ndarray | None = None, pred_patches: np.ndarray | None = None,
        truth_patches: np.ndarray | None = None, patch_crop: int | None = None,
) -> EvaluationResult:
    """Evaluate a stitched reconstruction against the true object (procedure in module doc).

    Parameters
    ----------
    stitched : StitchResult
        Output of :func:`ptycho_dist.stitching.stitch`.
    truth_object : numpy.ndarray, complex (H, W)
        The true object on its own pixel grid (finite).
    border : int, optional
        Pixels removed from the edge of the covered region.
    illumination_threshold : float, optional
        Keep pixels whose coverage (summed illumination) is at least this fraction of its max.
    register : bool, optional
        Estimate and remove a sub-pixel translation.
    phase_ramp : bool, optional
        Fit and remove a phase plane after the global phase.
    upsample_factor : int, optional
        Registration precision is ``1 / upsample_factor`` px.
    amplitude_threshold : float, optional
        Amplitude ratios use truth amplitudes above this fraction of the maximum.
    constant_tolerance : float, optional
        Truth channels with a smaller (relative) std get ``frc_undefined = True``.
    positions : numpy.ndarray, optional
        Positions (n, 2) used for stitching: adds position diagnostics (distinct count...).
    reference_positions : numpy.ndarray, optional
        True scan positions: the expected area for ``coverage_share`` is the union of their
        cropped footprints (else ``positions``' footprints, else the whole object).
    pred_patches, truth_patches : numpy.ndarray, optional
        Predicted and true patches (k, N, N): add ``target="patch"`` rows, patch statistics and
        the patch-minus-stitched gaps (:func:`.diagnostics.target_gaps`).
    patch_crop : int, optional
        Central crop for the patch-level metrics (None = full patch).

    Returns
    -------
    EvaluationResult
    """
    truth = _as_truth(truth_object)
    if (pred_patches is None) != (truth_patches is None):
        raise EvaluationError("pred_patches and truth_patches must be given together")
    rec, cov, outside = alignment.to_object_frame(stitched, truth.shape)
    covered = np.isfinite(rec)
    region = select_region(rec, illumination=cov, illumination_threshold=illumination_threshold,
                           border=border)
    shift = (alignment.register_shift(truth, rec, region, upsample_factor=upsample_factor)
             if register else (0.0, 0.0))
    rec, region = _apply_shift(rec, region, shift)
    scalar = alignment.ls_scalar(rec, truth, region)
    bias = {"shift_x": 0.0 - shift[1], "shift_y": 0.0 - shift[0],
            **amplitude_bias(rec, truth, region, scalar=scalar, threshold=amplitude_threshold),
            "phase_offset_mean": phase_offset(rec, truth, region)}
    aligned = rec * np.exp(1j * np.angle(scalar)) if np.isfinite(scalar) else rec
    ramp = (np.nan, np.nan, np.nan)
    if phase_ramp:
        ramp = alignment.fit_phase_ramp(aligned, truth, region)
        aligned = aligned * np.exp(1j * alignment.phase_plane(truth.shape, ramp))
    rows = _stitched_rows(aligned, truth, region, constant_tolerance)
    diag: dict[str, float | int | str] = {
        **_canvas_diagnostics(stitched), **diagnostics.support_box(stitched),
        "covered_pixels": int(covered.sum()), "stitched_pixels_outside_truth": outside,
        "region_pixels": int(region.sum()), "registered": int(bool(register)),
        "phase_ramp_x": float(ramp[1]), "phase_ramp_y": float(ramp[2]),
        **_coverage(covered, truth.shape, stitched.crop, positions, reference_positions)}
    if positions is not None:
        diag.update(diagnostics.position_summary(positions))
    if pred_patches is not None and truth_patches is not None:
        rows += evaluate_patches(pred_patches, truth_patches, crop=patch_crop,
                                 constant_tolerance=constant_tolerance)
        diag.update(diagnostics.patch_statistics(pred_patches, truth_patches, structure_crop=stitched.crop))
        diag.update(diagnostics.target_gaps(rows))
    return EvaluationResult(rows, {k: float(bias[k]) for k in BIAS_KEYS}, diag, aligned, region)


def _as_truth(truth_object: np.ndarray) -> np.ndarray:
    """Check the true object: a finite 2-D numeric array; returned as complex128."""
    t = np.asarray(truth_object)
    if t.ndim != 2 or not np.issubdtype(t.dtype, np.number):
        raise EvaluationError(f"truth_object must be a 2-D complex array (H, W), got shape "
                              f"{t.shape} dtype {t.dtype}")
    if not np.isfinite(t).all():
        raise EvaluationError("truth_object must be finite everywhere")
    return t.astype(np.complex128)


def _apply_shift(rec: np.ndarray, region: np.ndarray, shift: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Fourier-shift the reconstruction (NaN filled with its region mean) and shrink the region."""
    if shift[0] == 0 and shift[1] == 0:
        return rec, region
    valid = np.isfinite(rec)
    filled = np.where(valid, rec, rec[region].mean())
    moved_valid = alignment.shift_mask(valid, shift)
    moved = np.where(moved_valid, alignment.shift_image(filled, shift), np.nan + 1j * np.nan)
    new_region = region & moved_valid
    if not new_region.any():
        raise EvaluationError(f"empty evaluation region after registration by (dy, dx) = "
                              f"({shift[0]:.3g}, {shift[1]:.3g}) px")
    return moved, new_region


def channel_images(rec: np.ndarray, truth: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"amplitude": (|gt|, |rec|), "phase": (arg gt, arg gt + arg(rec conj(gt)))}`` (float64)."""
    phase_t = np.angle(truth)
    with np.errstate(invalid="ignore"):
        phase_r = phase_t + np.angle(rec * np.conj(truth))
    return {"amplitude": (np.abs(truth), np.abs(rec)), "phase": (phase_t, phase_r)}


def _stitched_rows(aligned: np.ndarray, truth: np.ndarray, region: np.ndarray,
                   tolerance: float) -> list[dict[str, Any]]:
    """Amplitude and phase rows of the stitched target, computed on the region's bounding box."""
    box = bounding_box(region)
    images = channel_images(aligned[box], truth[box])
    return [{"target": "stitched", **channel_metrics(t, r, region[box], channel=name,
                                                     constant_tolerance=tolerance)}
            for name, (t, r) in images.items()]


def _canvas_diagnostics(stitched: StitchResult) -> dict[str, float | int | str]:
    """Frame, shape, origin and crop of the stitched canvas."""
    return {"canvas_frame": stitched.frame, "canvas_height": stitched.shape[0],
            "canvas_width": stitched.shape[1], "canvas_origin_x": float(stitched.origin[0]),
            "canvas_origin_y": float(stitched.origin[1]), "stitch_crop": int(stitched.crop)}


def _coverage(covered: np.ndarray, shape: tuple[int, int], crop: int,
              positions: np.ndarray | None, reference: np.ndarray | None
              ) -> dict[str, float | str]:
    """Share of the expected area that the canvas covers, and what 'expected' was."""
    if reference is not None:
        source = "reference_positions"
        expected = diagnostics.expected_footprint(reference, shape, crop)
    elif positions is not None:
        source, expected = "positions", diagnostics.expected_footprint(positions, shape, crop)
    else:
        source, expected = "object", np.ones(shape, dtype=bool)
    return {"coverage_share": diagnostics.coverage_share(covered, expected),
            "coverage_expected": source}


def evaluate_patches(pred: np.ndarray, truth: np.ndarray, *, crop: int | None = None,
                     align_phase: bool = True, constant_tolerance: float = 1e-6
                     ) -> list[dict[str, Any]]:
    """Patch-level metrics (``target="patch"``) of predicted vs true patches.

    Metrics pool every pixel of every patch; SSIM is the mean over patches of each patch's SSIM
    map interior (equal to the mean of the per-patch scikit-image SSIMs); FRC is pooled over
    patches (ring sums over all patches). With ``align_phase`` each predicted patch is first
    multiplied by ``exp(i arg <pred_k, true_k>)`` (its global phase is not observable from
    diffraction amplitudes). Amplitudes are not rescaled.

    Parameters
    ----------
    pred, truth : numpy.ndarray, complex (k, N, N) or (B, C, N, N), one shape
    crop : int, optional
        Use only the central ``crop x crop`` of every patch (None = all ``N x N``).

    Returns
    -------
    list of dict
        Two rows (amplitude, phase) with keys :data:`METRIC_KEYS`.
    """
    p, t = _patch_stack(pred, truth, crop)
    if align_phase:
        inner = np.einsum("kij,kij->k", np.conj(p), t)
        p = p * np.exp(1j * np.angle(inner))[:, None, None]
    mask = np.ones(p.shape, dtype=bool)
    return [{"target": "patch", **channel_metrics(ti, ri, mask, channel=name,
                                                  constant_tolerance=constant_tolerance)}
            for name, (ti, ri) in channel_images(p, t).items()]


def _patch_stack(pred: np.ndarray, truth: np.ndarray, crop: int | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Validate, flatten to (k, N, N) complex128 and crop the central part."""
    p, t = np.asarray(pred), np.asarray(truth)
    if p.shape != t.shape or p.ndim not in (3, 4) or p.shape[-1] != p.shape[-2]:
        raise EvaluationError(f"pred and truth patches must share a (k, N, N) or (B, C, N, N) "
                              f"shape, got {p.shape} and {t.shape}")
    n = p.shape[-1]
    m = n if crop is None else crop
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= n:
        raise EvaluationError(f"patch crop must be an int in [1, {n}] or None, got {crop!r}")
    s = n // 2 - m // 2
    p, t = (a.reshape(-1, n, n)[:, s:s + m, s:s + m].astype(np.complex128) for a in (p, t))
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise EvaluationError("patches must be finite (a diverged model gives NaN predictions)")
    return p, t
