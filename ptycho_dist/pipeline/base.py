"""Stage plumbing shared by every stage function (no Ray here).

A stage function ``fn(ctx, scenario, keys) -> StageResult`` reads its inputs from storage, writes its
output (arrays + attributes + completion marker) and returns its rows. :func:`execute_stage` adds the
cache check, timing and error capture: an error of an input or scientific nature becomes a
``failed`` outcome with its message and traceback, never an exception that would stop the study.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptycho_dist.storage.arrays import NamedArray
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, ScenarioKeys

__all__ = ["StageContext", "StageResult", "StageOutcome", "STAGE_KIND", "execute_stage", "cached_outcome",
           "diag_rows", "clean_rows", "register_stage", "STAGE_FUNCTIONS"]

#: stage name -> top-level array group its output lives in
STAGE_KIND = {"simulate": "sim", "group": "group", "oracle": "pred", "train": "train", "infer": "pred",
              "stitch": "recon", "evaluate": "eval", "transplant": "pred", "parity": "eval"}


@dataclass(frozen=True)
class StageContext:
    """What every stage needs besides its scenario: where the run lives, and optionally a
    multi-worker trainer injected by the orchestration layer (``fn(data, config, *, seed,
    num_workers, backend) -> TrainResult``)."""

    run_dir: Path
    distributed_train: Callable[..., Any] | None = None
    partner: tuple[Scenario, ScenarioKeys] | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)


@dataclass(frozen=True)
class StageResult:
    """What a stage function returns: its arrays and attributes (written by :func:`execute_stage`),
    rows for the result tables and extra scalars (``info``)."""

    arrays: Mapping[str, NamedArray] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    rows: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    status: str = "ok"
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageOutcome:
    """One stage execution (or cache hit) as the driver records it; plain data, cheap to ship."""

    stage: str
    key: str
    status: str  # ok | failed | diverged
    cached: bool
    seconds: float
    rows: Mapping[str, list[dict[str, Any]]]
    info: Mapping[str, Any]
    error: str | None = None
    traceback: str | None = None


StageFn = Callable[[StageContext, Scenario, ScenarioKeys], StageResult]
STAGE_FUNCTIONS: dict[str, StageFn] = {}


def register_stage(name: str) -> Callable[[StageFn], StageFn]:
    """Decorator registering a stage function under ``name``."""

    def deco(fn: StageFn) -> StageFn:
        STAGE_FUNCTIONS[name] = fn
        return fn

    return deco


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean_rows(rows: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """JSON-safe rows: non-finite floats become None (null in the tables)."""
    return {t: [{k: _nan_to_none(v) for k, v in r.items()} for r in rs] for t, rs in rows.items()}


def diag_rows(stage: str, values: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Flat diagnostics ``{name: number|bool|str}`` -> rows of the long ``diagnostics`` table."""
    out = []
    for name, v in values.items():
        if isinstance(v, bool):
            out.append({"stage": stage, "name": prefix + name, "value": float(v), "text": None})
        elif isinstance(v, int | float):
            out.append({"stage": stage, "name": prefix + name, "value": _nan_to_none(float(v)), "text": None})
        else:
            out.append({"stage": stage, "name": prefix + name, "value": None, "text": str(v)})
    return out


def cached_outcome(ctx: StageContext, stage: str, key: str) -> StageOutcome | None:
    """The recorded outcome of a complete stage output, or None when it must be computed."""
    kind = STAGE_KIND[stage]
    if not ctx.layout.arrays.is_complete(kind, key):
        return None
    attrs = ctx.layout.arrays.read(kind, key).attrs
    rec = attrs.get("outcome", {})
    return StageOutcome(stage, key, rec.get("status", "ok"), True, float(rec.get("seconds", 0.0)),
                        rec.get("rows", {}), rec.get("info", {}))


def outcome_attrs(result: StageResult, seconds: float) -> dict[str, Any]:
    """What a stage stores beside its arrays so that a cache hit can replay its rows."""
    return {"outcome": {"status": result.status, "seconds": seconds, "rows": clean_rows(result.rows),
                        "info": dict(result.info)}}


def execute_stage(ctx: StageContext, stage: str, scenario: Scenario, keys: ScenarioKeys, key: str) -> StageOutcome:
    """Run one stage unless its output is complete; capture failures as a ``failed`` outcome."""
    hit = cached_outcome(ctx, stage, key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    try:
        result = STAGE_FUNCTIONS[stage](ctx, scenario, keys)
    except Exception as exc:  # noqa: BLE001 - every stage error becomes a row, the study goes on
        return StageOutcome(stage, key, "failed", False, time.perf_counter() - t0, {}, {},
                            error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    seconds = time.perf_counter() - t0
    attrs = {**dict(result.attrs), **outcome_attrs(result, seconds)}
    ctx.layout.arrays.write(STAGE_KIND[stage], key, result.arrays, attrs)
    return StageOutcome(stage, key, result.status, False, seconds, clean_rows(result.rows), dict(result.info))
