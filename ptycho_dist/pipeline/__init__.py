"""Stage functions: (spec, inputs from storage) -> outputs to storage + rows. No Ray here.

Importing this package registers the stages in :data:`STAGE_FUNCTIONS`.
"""

from __future__ import annotations

from ptycho_dist.pipeline import model_stages as _model_stages  # noqa: F401 - registers train/infer
from ptycho_dist.pipeline import parity_stages as _parity_stages  # noqa: F401 - transplant/parity
from ptycho_dist.pipeline import stages as _stages  # noqa: F401 - registers the oracle-arm stages
from ptycho_dist.pipeline.base import (
    STAGE_FUNCTIONS,
    StageContext,
    StageOutcome,
    StageResult,
    cached_outcome,
    execute_stage,
)

__all__ = ["STAGE_FUNCTIONS", "StageContext", "StageOutcome", "StageResult", "cached_outcome", "execute_stage",
           "run_scenario_inline"]


def run_scenario_inline(ctx: StageContext, scenario, keys) -> list[StageOutcome]:  # type: ignore[no-untyped-def]
    """Run every stage of one scenario in this process, in order (no Ray; used by tests and benches)."""
    outcomes = []
    for stage, key in keys.chain():
        oc = execute_stage(ctx, stage, scenario, keys, key)
        outcomes.append(oc)
        if oc.status != "ok":
            break
    return outcomes
