"""Stage functions: (task, inputs from storage) -> typed output to storage + rows. No Ray here.

The registry (:mod:`ptycho_dist.study.registry`) names each stage's function; nothing registers
itself on import.
"""

from __future__ import annotations

from ptycho_dist.pipeline.base import (
    StageContext,
    StageOutcome,
    StageResult,
    cached_outcome,
    execute_stage,
    stage_function,
)
from ptycho_dist.study import Scenario
from ptycho_dist.study.plan import scenario_tasks

__all__ = ["StageContext", "StageOutcome", "StageResult", "cached_outcome", "execute_stage", "stage_function",
           "run_scenario_inline"]


def run_scenario_inline(ctx: StageContext, scenario: Scenario) -> list[StageOutcome]:
    """Run every stage of one scenario in this process, in order (no Ray; used by tests and benches).

    Stops at the first stage that is not ``ok``.
    """
    outcomes = []
    for task in scenario_tasks(scenario):
        oc = execute_stage(ctx, task)
        outcomes.append(oc)
        if oc.status != "ok":
            break
    return outcomes
