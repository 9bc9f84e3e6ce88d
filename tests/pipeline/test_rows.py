"""Scenario rows from node outcomes (no Ray): dataset tags, training-object targets, first failure."""

from __future__ import annotations

import math

from ptycho_dist.pipeline.base import StageOutcome
from ptycho_dist.pipeline.rows import quality_flags, scenario_rows
from ptycho_dist.study import parse_study
from ptycho_dist.study.plan import build_plan

SPEC = """
[base.probe]
n = 32
[base.object]
size = 96
[base.data]
test_objects = 1
"""


def _outcomes(plan, failing: str | None = None):  # type: ignore[no-untyped-def]
    out = {}
    for nid, node in plan.nodes.items():
        rows = {"metrics": [{"target": "stitched", "channel": "amplitude"}]} if nid[0] == "evaluate" else {}
        status = "failed" if nid[0] == failing else "ok"
        out[nid] = StageOutcome(nid[0], nid[1], status, False, 1.0, rows, {}, error="E" if failing else None)
    return out


def test_rows_are_tagged_and_training_metrics_renamed() -> None:
    plan = build_plan(parse_study(SPEC, source="<t>"))
    unit = plan.units[0]
    rows = scenario_rows("t", unit, plan, _outcomes(plan))
    got = sorted((r["target"], r["dataset"]) for r in rows["metrics"])
    assert got == [("stitched", "test:0"), ("train_stitched", "train:0")]
    row = rows["scenarios"][0]
    assert row["status"] == "ok" and row["key_evaluate"] == unit.keys["evaluate"]
    assert row["seconds_evaluate"] == 2.0 and row["cached_evaluate"] is False  # two evaluate nodes summed
    assert row["key_train"] is None and row["seconds_train"] is None  # the oracle arm does not train


def test_first_failed_stage_is_the_status() -> None:
    plan = build_plan(parse_study(SPEC, source="<t>"))
    row = scenario_rows("t", plan.units[0], plan, _outcomes(plan, failing="stitch"))["scenarios"][0]
    assert (row["status"], row["failed_stage"], row["error"]) == ("failed", "stitch", "E")


def _diag(stage: str, **values: float) -> list[dict[str, object]]:
    return [{"stage": stage, "name": k, "value": v} for k, v in values.items()]


def test_quality_flags_rules() -> None:
    learned = _diag("train", patch_score_trained=0.6, patch_score_untrained=0.1, patch_score_gain_se=0.02,
                    train_log_scale=2.0, initial_log_scale=2.1)
    scanned = _diag("simulate", scanned_fraction=0.9)
    assert quality_flags(learned + scanned, status="ok", model_arm=True) == []
    # the gain is within 2 standard errors of 0: learned nothing
    noise = _diag("train", patch_score_trained=0.2, patch_score_untrained=0.17, patch_score_gain_se=0.02)
    assert quality_flags(noise, status="ok", model_arm=True) == ["learned_nothing"]
    # a clear gain from an untrained score below zero to about 0 is still nothing learned (score ~ 0)
    zero = _diag("train", patch_score_trained=0.03, patch_score_untrained=-0.4, patch_score_gain_se=0.01)
    assert quality_flags(zero, status="ok", model_arm=True) == ["learned_nothing"]
    collapsed = _diag("train", train_log_scale=-3.0, initial_log_scale=2.0)  # exp(-5) < 1e-2
    assert quality_flags(collapsed, status="ok", model_arm=True) == ["scale_collapsed"]
    unscanned = _diag("simulate", scanned_fraction=0.3) + scanned  # any dataset mostly unscanned
    assert quality_flags(unscanned, status="ok", model_arm=False) == ["mostly_unscanned"]
    # the oracle arm has no model to flag; a failed or diverged scenario is not flagged at all
    assert quality_flags(noise + collapsed, status="ok", model_arm=False) == []
    assert quality_flags(unscanned + noise, status="diverged", model_arm=True) == []
    assert quality_flags(_diag("train", patch_score_trained=math.nan), status="ok", model_arm=True) == []


def test_flags_reach_the_scenarios_row() -> None:
    plan = build_plan(parse_study(SPEC, source="<t>"))
    outcomes = _outcomes(plan)
    sim = next(nid for nid in outcomes if nid[0] == "simulate")
    oc = outcomes[sim]
    outcomes[sim] = StageOutcome(oc.stage, oc.key, "ok", False, 1.0,
                                 {"diagnostics": _diag("simulate", scanned_fraction=0.2)}, {})
    row = scenario_rows("t", plan.units[0], plan, outcomes)["scenarios"][0]
    assert row["flags"] == "mostly_unscanned"
    assert scenario_rows("t", plan.units[0], plan, _outcomes(plan))["scenarios"][0]["flags"] == ""
