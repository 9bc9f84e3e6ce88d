"""Pair-scope stages of two model arms trained on the same data (``task.partner`` is arm b).

``transplant``: arm a's bundle run by arm b's backend (with b's conventions) on the shared grouped
data; ``parity``: one row comparing the two arms — forward parity of the same weights in both
backends (both directions), patch variance ratio, agreement of the stitched objects, metric deltas
against the truth, intensity-scale and normalization ratios.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho_dist.errors import StageError
from ptycho_dist.evaluation.parity import max_differences, patch_variance_ratio, stitched_agreement
from ptycho_dist.pipeline.base import StageContext, StageResult
from ptycho_dist.pipeline.model_stages import run_inference
from ptycho_dist.storage.outputs import Bundle, Comparison, Evaluation, Prediction, Reconstruction
from ptycho_dist.study import StageTask, scenario_id, seed_cell

__all__ = ["FORWARD_PARITY_TOLERANCE", "transplant_stage", "parity_stage"]

#: relative tolerance (max |a - b| / max |a|, float32) above which forward parity is flagged as failed
FORWARD_PARITY_TOLERANCE = 1e-4


def transplant_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Arm a's bundle run by arm b's backend, with b's conventions: relative-coordinate sign, model
    probe and overlap constraint (``faults.relative_sign``, ``model_probe``, ``object_big_off``); the
    bundle's scales."""
    b = task.partner
    result = run_inference(ctx, task, b, own=False).result
    return StageResult(Prediction(patches=result.object_patches, amplitude=result.pred_amplitude,
                                  backend=b.model.backend))


def _forward(own: Prediction, other: Prediction, tag: str) -> dict[str, float]:
    if own.amplitude is None or other.amplitude is None:
        raise StageError("forward parity needs the predicted amplitudes of both model arms")
    obj_abs, obj_rel = max_differences(own.patches, other.patches)
    amp_abs, amp_rel = max_differences(own.amplitude, other.amplitude)
    return {f"fwd_obj_max_abs_{tag}": obj_abs, f"fwd_obj_max_rel_{tag}": obj_rel,
            f"fwd_amp_max_abs_{tag}": amp_abs, f"fwd_amp_max_rel_{tag}": amp_rel}


def parity_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """One ``parity`` row for arms a and b."""
    a, b = task.scenario, task.partner
    pred_a, pred_b = ctx.read(task, "prediction_a", Prediction), ctx.read(task, "prediction_b", Prediction)
    row: dict[str, Any] = {"pair_id": task.key[:16], "scenario_a": scenario_id(a), "scenario_b": scenario_id(b),
                           "backend_a": a.model.backend, "backend_b": b.model.backend,
                           "relative_sign_a": a.faults.relative_sign, "relative_sign_b": b.faults.relative_sign,
                           "grouping_gridsize": a.grouping.gridsize, "dose_nphotons": a.dose.nphotons,
                           "training_seed": a.training.seed, "seed_cell": seed_cell(a)}
    row |= _forward(pred_a, ctx.read(task, "transplant_ab", Prediction), "ab")
    row |= _forward(pred_b, ctx.read(task, "transplant_ba", Prediction), "ba")
    worst = max(row["fwd_obj_max_rel_ab"], row["fwd_amp_max_rel_ab"], row["fwd_obj_max_rel_ba"], row["fwd_amp_max_rel_ba"])
    row["forward_parity_ok"] = bool(worst <= FORWARD_PARITY_TOLERANCE)
    row["forward_parity_tolerance"] = FORWARD_PARITY_TOLERANCE
    row["patch_variance_ratio"] = patch_variance_ratio(pred_a.patches, pred_b.patches)
    row |= stitched_agreement(ctx.read(task, "reconstruction_a", Reconstruction).canvas,
                              ctx.read(task, "reconstruction_b", Reconstruction).canvas)
    ea, eb = ctx.read(task, "evaluation_a", Evaluation), ctx.read(task, "evaluation_b", Evaluation)
    for channel in ("amplitude", "phase"):
        short = "amp" if channel == "amplitude" else "phase"
        for name in ("ssim", "mae", "psnr"):
            va, vb = ea.metric("stitched", channel, name), eb.metric("stitched", channel, name)
            row[f"{short}_{name}_a"], row[f"{short}_{name}_b"], row[f"delta_{short}_{name}"] = va, vb, va - vb
    ba_, bb_ = ctx.read(task, "model_a", Bundle), ctx.read(task, "model_b", Bundle)
    with np.errstate(over="ignore"):
        row["intensity_scale_ratio"] = float(np.exp(ba_.log_scale - bb_.log_scale))
    row["norm_factor_ratio"] = ba_.norm_factor / bb_.norm_factor
    return StageResult(Comparison(row=row), {"parity": [row]})
