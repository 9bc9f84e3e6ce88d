"""Evaluation of reconstructions against ground truth (pure numpy / scipy / scikit-image).

Modules: :mod:`.region` (which pixels), :mod:`.alignment` (frame, registration, complex scalar,
phase ramp), :mod:`.metrics` (per-channel metrics), :mod:`.frc` (Fourier ring correlation),
:mod:`.bias` (amplitude/phase bias), :mod:`.diagnostics` (flat figures that expose stitching
bugs) and :mod:`.procedure` (the one procedure every arm goes through).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; at run time each name is imported on first use (__getattr__)
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

#: public name -> the module defining it: ``import ptycho_dist.evaluation`` stays cheap (the light
#: commands import the table schemas, which name the metric columns, without scipy or scikit-image)
_LAZY = {
    "BIAS_KEYS": "ptycho_dist.evaluation.procedure",
    "EvaluationResult": "ptycho_dist.evaluation.procedure",
    "FRCCurve": "ptycho_dist.evaluation.frc",
    "METRIC_KEYS": "ptycho_dist.evaluation.procedure",
    "amplitude_bias": "ptycho_dist.evaluation.bias",
    "bounding_box": "ptycho_dist.evaluation.region",
    "channel_metrics": "ptycho_dist.evaluation.metrics",
    "coverage_share": "ptycho_dist.evaluation.diagnostics",
    "distinct_positions": "ptycho_dist.evaluation.diagnostics",
    "evaluate_patches": "ptycho_dist.evaluation.procedure",
    "evaluate_reconstruction": "ptycho_dist.evaluation.procedure",
    "expected_footprint": "ptycho_dist.evaluation.diagnostics",
    "fit_phase_ramp": "ptycho_dist.evaluation.alignment",
    "frc_curve": "ptycho_dist.evaluation.frc",
    "halfbit_threshold": "ptycho_dist.evaluation.frc",
    "learning_scores": "ptycho_dist.evaluation.diagnostics",
    "ls_scalar": "ptycho_dist.evaluation.alignment",
    "patch_scores": "ptycho_dist.evaluation.diagnostics",
    "patch_statistics": "ptycho_dist.evaluation.diagnostics",
    "phase_offset": "ptycho_dist.evaluation.bias",
    "placed_weight_share": "ptycho_dist.evaluation.diagnostics",
    "position_summary": "ptycho_dist.evaluation.diagnostics",
    "psnr": "ptycho_dist.evaluation.metrics",
    "register_shift": "ptycho_dist.evaluation.alignment",
    "score_mask": "ptycho_dist.evaluation.diagnostics",
    "select_region": "ptycho_dist.evaluation.region",
    "shift_image": "ptycho_dist.evaluation.alignment",
    "ssim_region": "ptycho_dist.evaluation.metrics",
    "support_box": "ptycho_dist.evaluation.diagnostics",
    "target_gaps": "ptycho_dist.evaluation.diagnostics",
    "to_object_frame": "ptycho_dist.evaluation.alignment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ptycho_dist.evaluation' has no attribute {name!r}")


__all__ = [
    "BIAS_KEYS", "METRIC_KEYS", "EvaluationResult", "FRCCurve", "amplitude_bias",
    "bounding_box", "channel_metrics", "coverage_share", "distinct_positions",
    "evaluate_patches", "evaluate_reconstruction", "expected_footprint", "fit_phase_ramp",
    "frc_curve", "halfbit_threshold", "learning_scores", "ls_scalar", "patch_scores", "patch_statistics", "phase_offset",
    "placed_weight_share", "position_summary", "psnr", "register_shift", "score_mask", "select_region", "shift_image",
    "ssim_region",
    "support_box", "target_gaps", "to_object_frame",
]
