"""Parity stages of a pair of model arms trained on the same data (``ctx.partner`` is the other arm).

``transplant``: arm a's bundle run by arm b's backend (with b's conventions) on the shared grouped
data; ``parity``: one row comparing the two arms — forward parity of the same weights in both
backends (both directions), patch variance ratio, agreement of the stitched objects, metric deltas
against the truth, intensity-scale and normalization ratios.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho_dist.evaluation.parity import max_differences, patch_variance_ratio, stitched_agreement
from ptycho_dist.pipeline.base import StageContext, StageResult, register_stage
from ptycho_dist.pipeline.model_stages import run_inference
from ptycho_dist.storage.arrays import NamedArray
from ptycho_dist.storage.bundles import read_bundle
from ptycho_dist.study import Scenario, ScenarioKeys, pair_keys, seed_cell

__all__ = ["FORWARD_PARITY_TOLERANCE"]

#: relative tolerance (max |a - b| / max |a|, float32) above which forward parity is flagged as failed
FORWARD_PARITY_TOLERANCE = 1e-4


def _partner(ctx: StageContext) -> tuple[Scenario, ScenarioKeys]:
    if ctx.partner is None:
        raise ValueError("parity stages need the partner arm in the stage context")
    return ctx.partner


@register_stage("transplant")
def transplant_stage(ctx: StageContext, s: Scenario, keys: ScenarioKeys) -> StageResult:
    """Arm ``s``'s bundle run by the partner's backend, with the partner's relative-coordinate sign."""
    b, _ = _partner(ctx)
    assert keys.train is not None
    result, _, _, _ = run_inference(ctx, keys.train, b.model.backend, b.model.relative_sign, keys)
    arrays = {"patches": NamedArray(result.object_patches, ("group", "member", "py", "px")),
              "amplitude": NamedArray(result.pred_amplitude, ("group", "member", "ky", "kx"))}
    return StageResult(arrays, {"bundle": keys.train, "backend": b.model.backend})


def _metric(rows: list[dict[str, Any]], channel: str, name: str) -> float:
    for r in rows:
        if r["target"] == "stitched" and r["channel"] == channel:
            value = r.get(name)
            return float(value) if value is not None else float("nan")
    return float("nan")


def _forward(ctx: StageContext, own_infer: str, transplanted: str, tag: str) -> dict[str, float]:
    arrays = ctx.layout.arrays
    own, other = arrays.read("pred", own_infer), arrays.read("pred", transplanted)
    obj_abs, obj_rel = max_differences(own["patches"], other["patches"])
    amp_abs, amp_rel = max_differences(own["amplitude"], other["amplitude"])
    return {f"fwd_obj_max_abs_{tag}": obj_abs, f"fwd_obj_max_rel_{tag}": obj_rel,
            f"fwd_amp_max_abs_{tag}": amp_abs, f"fwd_amp_max_rel_{tag}": amp_rel}


@register_stage("parity")
def parity_stage(ctx: StageContext, s: Scenario, keys: ScenarioKeys) -> StageResult:
    """One ``parity`` row for arms ``s`` (a) and the partner (b)."""
    b, kb = _partner(ctx)
    pk = pair_keys(s, b)
    assert keys.infer is not None and kb.infer is not None and keys.train and kb.train
    arrays = ctx.layout.arrays
    row: dict[str, Any] = {"pair_id": pk.pair_id, "scenario_a": keys.scenario, "scenario_b": kb.scenario,
                           "backend_a": s.model.backend, "backend_b": b.model.backend,
                           "relative_sign_a": s.model.relative_sign, "relative_sign_b": b.model.relative_sign,
                           "gridsize": s.grouping.gridsize, "nphotons": s.dose.nphotons,
                           "training_seed": s.training.seed, "seed_cell": seed_cell(s)}
    row |= _forward(ctx, keys.infer, pk.transplant_ab, "ab") | _forward(ctx, kb.infer, pk.transplant_ba, "ba")
    worst = max(row["fwd_obj_max_rel_ab"], row["fwd_amp_max_rel_ab"], row["fwd_obj_max_rel_ba"], row["fwd_amp_max_rel_ba"])
    row["forward_parity_ok"] = bool(worst <= FORWARD_PARITY_TOLERANCE)
    row["forward_parity_tolerance"] = FORWARD_PARITY_TOLERANCE
    pa, pb = arrays.read("pred", keys.infer)["patches"], arrays.read("pred", kb.infer)["patches"]
    row["patch_variance_ratio"] = patch_variance_ratio(pa, pb)
    row |= stitched_agreement(arrays.read("recon", keys.stitch)["canvas"], arrays.read("recon", kb.stitch)["canvas"])
    ma = arrays.read("eval", keys.evaluate).attrs["outcome"]["rows"]["metrics"]
    mb = arrays.read("eval", kb.evaluate).attrs["outcome"]["rows"]["metrics"]
    for channel in ("amplitude", "phase"):
        short = "amp" if channel == "amplitude" else "phase"
        for name in ("ssim", "mae", "psnr"):
            va, vb = _metric(ma, channel, name), _metric(mb, channel, name)
            row[f"{short}_{name}_a"], row[f"{short}_{name}_b"], row[f"delta_{short}_{name}"] = va, vb, va - vb
    ba_, bb_ = read_bundle(ctx.layout.models, keys.train), read_bundle(ctx.layout.models, kb.train)
    with np.errstate(over="ignore"):
        row["intensity_scale_ratio"] = float(np.exp(ba_.log_scale - bb_.log_scale))
    row["norm_factor_ratio"] = ba_.norm_factor / bb_.norm_factor
    return StageResult({}, {}, {"parity": [row]})
