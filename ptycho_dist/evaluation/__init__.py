"""Evaluation of reconstructions against ground truth (pure numpy / scipy / scikit-image).

Modules: :mod:`.region` (which pixels), :mod:`.alignment` (frame, registration, complex scalar,
phase ramp), :mod:`.metrics` (per-channel metrics), :mod:`.frc` (Fourier ring correlation),
:mod:`.bias` (amplitude/phase bias), :mod:`.diagnostics` (flat figures that expose stitching
bugs) and :mod:`.procedure` (the one procedure every arm goes through).
"""

from __future__ import annotations

from ptycho_dist.evaluation.alignment import (
    fit_phase_ramp,
    ls_scalar,
    register_shift,
    shift_image,
    to_object_frame,
)
from ptycho_dist.evaluation.bias import amplitude_bias, phase_offset
from ptycho_dist.evaluation.diagnostics import (
    coverage_share,
    distinct_positions,
    expected_footprint,
    learning_scores,
    patch_scores,
    patch_statistics,
    placed_weight_share,
    position_summary,
    score_mask,
    support_box,
    target_gaps,
)
from ptycho_dist.evaluation.frc import FRCCurve, frc_curve, halfbit_threshold
from ptycho_dist.evaluation.metrics import channel_metrics, psnr, ssim_region
from ptycho_dist.evaluation.procedure import (
    BIAS_KEYS,
    METRIC_KEYS,
    EvaluationResult,
    evaluate_patches,
    evaluate_reconstruction,
)
from ptycho_dist.evaluation.region import bounding_box, select_region

__all__ = [
    "BIAS_KEYS", "METRIC_KEYS", "EvaluationResult", "FRCCurve", "amplitude_bias",
    "bounding_box", "channel_metrics", "coverage_share", "distinct_positions",
    "evaluate_patches", "evaluate_reconstruction", "expected_footprint", "fit_phase_ramp",
    "frc_curve", "halfbit_threshold", "learning_scores", "ls_scalar", "patch_scores", "patch_statistics", "phase_offset",
    "placed_weight_share", "position_summary", "psnr", "register_shift", "score_mask", "select_region", "shift_image",
    "ssim_region",
    "support_box", "target_gaps", "to_object_frame",
]
