"""Stage plumbing shared by every stage function (no Ray here).

A stage function ``fn(ctx, task) -> StageResult`` reads its inputs through ``ctx.read(task, role,
OutputClass)``, computes with the pure layers and returns its typed output and rows. The registry
(:mod:`ptycho_dist.study.registry`) names the function of each stage. :func:`execute_stage` adds the
cache check, timing, error capture and the write: an error of an input or scientific nature becomes
a ``failed`` outcome with its message and traceback, never an exception that would stop the study;
so does an OS error (a full disk) while the stage computes or writes, with a one-line message. A
failed stage stores nothing (outputs are renamed into place complete, marker included), so nothing
half-made is ever trusted. An input that turns out damaged when read (a chunk failing its checksum)
is named in ``info["corrupt_input"]`` so that the driver can remove it for the next run to redo.
"""

from __future__ import annotations

import functools
import importlib
import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ptycho_dist.errors import CorruptDataError, StageError
from ptycho_dist.storage.outputs import Outcome, StageOutput
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import StageTask, stage_def

__all__ = ["StageContext", "StageResult", "StageOutcome", "StageFn", "execute_stage", "cached_outcome",
           "stage_function", "diag_rows", "clean_rows", "one_line"]

T = TypeVar("T", bound=StageOutput)


@dataclass(frozen=True)
class StageContext:
    """What every stage needs besides its task: where the run lives, and optionally a multi-worker
    trainer injected by the orchestration layer (``fn(data, config, *, seed, num_workers, backend)
    -> TrainResult``)."""

    run_dir: Path
    distributed_train: Callable[..., Any] | None = None
    device: str = "numpy"
    """Compute path of stages that have a torch variant (stitching): "numpy" (default), "cpu" or
    "cuda"; the orchestration layer sets "cuda" for a task that Ray gave a GPU
    (:func:`ptycho_dist.models.device.resolve_device`)."""

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)

    def read(self, task: StageTask, role: str, cls: type[T]) -> T:
        """The upstream output that ``task`` reads as ``role``, as the typed output ``cls``."""
        refs = task.inputs[role]
        if len(refs) != 1:
            raise StageError(f"stage {task.stage!r}: input {role!r} holds {len(refs)} outputs; use read_all")
        return self.layout.outputs.read(refs[0][0], refs[0][1], cls)

    def read_all(self, task: StageTask, role: str, cls: type[T]) -> list[T]:
        """Every upstream output of ``role`` (one per training dataset for a ``training`` input)."""
        return [self.layout.outputs.read(stage, key, cls) for stage, key in task.inputs[role]]


@dataclass(frozen=True)
class StageResult:
    """What a stage function returns: its typed output (written by :func:`execute_stage`), rows for
    the result tables and extra scalars (``info``)."""

    output: StageOutput | None = None
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


StageFn = Callable[[StageContext, StageTask], StageResult]


@functools.cache
def stage_function(stage: str) -> StageFn:
    """The function the registry names for ``stage`` (imported on first use)."""
    module, _, name = stage_def(stage).function.partition(":")
    fn: StageFn = getattr(importlib.import_module(module), name)
    return fn


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
    rec = ctx.layout.outputs.outcome(stage, key)
    if rec is None:
        return None
    return StageOutcome(stage, key, rec.status, True, rec.seconds, rec.rows, rec.info)


def one_line(exc: BaseException, *, limit: int = 500) -> str:
    """``Type: message`` of an exception on one line (the first line of its message, truncated)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:limit]}" + (" …" if len(text) > 1 or len(first) > limit else "")


def execute_stage(ctx: StageContext, task: StageTask) -> StageOutcome:
    """Run one stage unless its output is complete; capture failures as a ``failed`` outcome."""
    hit = cached_outcome(ctx, task.stage, task.key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    try:
        result = stage_function(task.stage)(ctx, task)
        seconds = time.perf_counter() - t0
        rows = clean_rows(result.rows)
        ctx.layout.outputs.write(task.stage, task.key, result.output,
                                 Outcome(result.status, seconds, rows, dict(result.info)))
    except CorruptDataError as exc:  # an input that fails its checksum: named for the driver to remove
        info: dict[str, Any] = {"corrupt_input": [exc.stage, exc.key]} if exc.stage and exc.key else {}
        return StageOutcome(task.stage, task.key, "failed", False, time.perf_counter() - t0, {}, info,
                            error=one_line(exc), traceback=traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - every stage error (OS errors too) becomes a row, the study goes on
        return StageOutcome(task.stage, task.key, "failed", False, time.perf_counter() - t0, {}, {},
                            error=one_line(exc), traceback=traceback.format_exc())
    return StageOutcome(task.stage, task.key, result.status, False, seconds, rows, dict(result.info))
