"""Scenario rows from node outcomes (no Ray): dataset tags, training-object targets, first failure."""

from __future__ import annotations

from ptycho_dist.pipeline.base import StageOutcome
from ptycho_dist.pipeline.rows import scenario_rows
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
