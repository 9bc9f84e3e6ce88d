"""``ptycho-dist bench runner [--scenarios N]``: what the runner costs beyond the stage work itself.

``N`` tiny oracle scenarios (replicates of one grid point: every one has its own simulation, so no
stage is shared), measured in one process and one Ray session:

* **overhead per stage task**: ``run_study`` (DAG, backpressure, cache checks, table commits,
  compaction, progress off) against **bare Ray tasks** that run the same stage function on the same
  tasks (one ``@ray.remote`` call per stage task, submitted stage by stage, no tables), both on the
  same workers; the bare pass runs on ``min(N, 1000)`` scenarios (its cost per task does not depend
  on N);
* **files per scenario** after compaction, against the same run's count before it (the run is made
  with compaction off, counted, then compacted);
* **driver memory**: Python allocations (tracemalloc) of expanding the study, building the DAG and
  the scheduler's state for N/4, N/2 and N scenarios, fitted by a line; reported per scenario
  against the size of one resolved scenario spec (JSON), with the fit's prediction for 10⁵;
* **query latency**: ``ptycho-dist query RUN "select count(*) from metrics"`` as a fresh process
  against a fresh ``python -c`` that imports DuckDB and counts over the same Parquet files
  (best of 3 each); ``ptycho-dist status RUN`` is timed the same way.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import ray

from ptycho_dist.bench import BenchRecord, ratio_record
from ptycho_dist.errors import StageError
from ptycho_dist.orchestration.cluster import connect
from ptycho_dist.orchestration.driver import RunOptions, compact_run, run_study
from ptycho_dist.pipeline import StageContext, execute_stage
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import StageTask, Study, build_plan, parse_study, scenario_id, scenario_tasks

__all__ = ["run", "tiny_study", "count_files", "driver_memory"]

_SPEC = """
[study]
name = "bench-runner"
seed = 1
replicates = {n}
[base.object]
size = 48
[base.probe]
n = 16
[base.scan]
step = 8.0
n_positions = 16
[base.stitch]
crop = 6
[base.evaluation]
border = 2
"""

#: the bare-Ray pass runs on at most this many scenarios
BARE_SCENARIOS = 1000


def tiny_study(n: int) -> Study:
    """``n`` tiny oracle scenarios that share no stage (replicates of one grid point)."""
    return parse_study(_SPEC.format(n=n), source="<bench runner>")


def count_files(folder: Path) -> int:
    """Files below ``folder``."""
    return sum(len(names) for _d, _s, names in os.walk(folder))


@ray.remote(num_cpus=1, max_retries=0)
def _bare_stage(run_dir: str, task: dict[str, Any]) -> str:
    return execute_stage(StageContext(Path(run_dir)), StageTask.from_dict(task)).status


def _bare_ray(study: Study, folder: Path) -> tuple[float, int]:
    """Wall seconds and number of bare stage tasks (every stage of every scenario, stage by stage)."""
    layout = RunLayout.for_study(folder, study.meta.name)
    layout.initialize(study, scenario_ids=[scenario_id(s) for s in study.scenarios])
    chains = [scenario_tasks(s) for s in study.scenarios]
    depth = max(len(c) for c in chains)
    t0 = time.perf_counter()
    n = 0
    for level in range(depth):
        tasks = [c[level].to_dict() for c in chains if len(c) > level]
        statuses = ray.get([_bare_stage.remote(str(layout.root), t) for t in tasks])
        n += len(tasks)
        if any(st != "ok" for st in statuses):
            raise StageError(f"bench runner: a bare stage task did not succeed: {set(statuses)}")
    return time.perf_counter() - t0, n


def _runner(study: Study, folder: Path) -> tuple[float, int, int, int, Path]:
    """Wall seconds, stage tasks run, files before and after compaction, the run folder."""
    t0 = time.perf_counter()
    summary = run_study(study, RunOptions(out=folder, progress=False, compact=False))
    wall = time.perf_counter() - t0
    if summary.status["ok"] != len(study.scenarios):
        raise StageError(f"bench runner: expected {len(study.scenarios)} ok scenarios, got {summary.to_dict()}")
    layout = RunLayout.for_study(folder, study.meta.name)
    before = count_files(layout.root)
    t1 = time.perf_counter()
    compact_run(layout)
    wall += time.perf_counter() - t1  # compaction is part of what a run costs
    return wall, sum(summary.stages_run.values()), before, count_files(layout.root), layout.root


def driver_memory(sizes: list[int]) -> tuple[list[int], float, float]:
    """Peak Python allocations (bytes) of expanding, planning and preparing the scheduler for each
    size; returns (peaks, slope in bytes per scenario, intercept) of a least-squares line."""
    from ptycho_dist.orchestration.driver import scheduler_state

    peaks = []
    for n in sizes:
        gc.collect()
        tracemalloc.start()
        try:
            study = tiny_study(n)
            plan = build_plan(study)
            state = scheduler_state(plan)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        del study, plan, state
        peaks.append(int(peak))
    slope, intercept = np.polyfit(np.asarray(sizes, float), np.asarray(peaks, float), 1)
    return peaks, float(slope), float(intercept)


def _best_wall(cmd: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise StageError(f"bench runner: {' '.join(cmd[:3])} … failed: {proc.stderr.strip()[-300:]}")
        best = min(best, wall)
    return best


def _query_latency(run_dir: Path) -> tuple[float, float, float]:
    """(query command, bare DuckDB, status command) best wall seconds."""
    cli = [sys.executable, "-m", "ptycho_dist.cli"]
    query = _best_wall([*cli, "query", str(run_dir), "select count(*) from metrics"])
    status = _best_wall([*cli, "status", str(run_dir)])
    files = sorted(str(p) for p in (run_dir / "tables" / "metrics").glob("*.parquet"))
    bare = _best_wall([sys.executable, "-c", "import duckdb, sys; "
                       f"print(duckdb.sql('select count(*) from read_parquet({json.dumps(files)})').fetchall())"])
    return query, bare, status


def synthetic_run(n: int, folder: Path) -> Path:
    """A finished, compacted run folder of ``n`` tiny scenarios whose rows are written directly (no
    Ray, no stage outputs): the tables of an ``n``-scenario run, to time the light commands on."""
    from datetime import UTC, datetime

    from ptycho_dist.storage.tables import TableStore, Unit, flatten_scenario

    study = tiny_study(n)
    layout = RunLayout.for_study(folder, study.meta.name)
    ids = [scenario_id(s) for s in study.scenarios]
    layout.initialize(study, scenario_ids=ids)
    now = datetime.now(UTC)
    units = [Unit(sid, "scenario", {
        "scenarios": [{"scenario_id": sid, "study": study.meta.name, "status": "ok", "finished_at": now,
                       **flatten_scenario(s)}],
        "metrics": [{"target": t, "channel": c, "ssim": 0.9} for t in ("stitched", "patch")
                    for c in ("amplitude", "phase")]}) for sid, s in zip(ids, study.scenarios, strict=True)]
    tables = TableStore(layout.root)
    for i in range(0, n, 512):
        tables.write_units(units[i:i + 512])
    tables.compact()
    layout.finish({"synthetic": True})
    return layout.root


def run(*, quick: bool = False, scenarios: int | None = None, query_only: bool = False) -> list[BenchRecord]:
    """Measure on fresh output folders; returns ratio records. With ``query_only``, only the query
    and status latency, on a synthetic run of N scenarios (:func:`synthetic_run`)."""
    n = scenarios or (40 if quick else 1000)
    if query_only:
        with tempfile.TemporaryDirectory(prefix="ptycho-bench-query-") as tmp:
            query, duck, status = _query_latency(synthetic_run(n, Path(tmp)))
        return [ratio_record("runner", f"query_count_seconds ({n} scenarios' tables written without Ray; "
                             f"ptycho-dist query, fresh process; status {status:.2f} s)",
                             query, "s", "bare_duckdb_fresh_process", duck, higher_is_better=False)]
    study = tiny_study(n)
    bare_study = study if n <= BARE_SCENARIOS else tiny_study(BARE_SCENARIOS)
    started = connect(None)
    try:
        with tempfile.TemporaryDirectory(prefix="ptycho-bench-runner-") as tmp:
            _bare_ray(tiny_study(4), Path(tmp) / "warmup")  # start the workers, import the stages
            bare_wall, bare_tasks = _bare_ray(bare_study, Path(tmp) / "bare")
            wall, tasks, before, after, run_dir = _runner(study, Path(tmp) / "runner")
            query, duck, status = _query_latency(run_dir)
    finally:
        if started:
            ray.shutdown()
    bare_ms, run_ms = 1000.0 * bare_wall / bare_tasks, 1000.0 * wall / tasks
    sizes = [max(1, n // 4), max(2, n // 2), n]
    _peaks, slope, intercept = driver_memory(sizes)
    spec_bytes = len(json.dumps(study.scenarios[0].to_dict()))
    at_1e5 = (intercept + slope * 1e5) / 2**20
    return [
        ratio_record("runner", f"ms_per_stage_task ({n} scenarios, {tasks} stage tasks; overhead "
                     f"{run_ms - bare_ms:+.1f} ms/task over bare Ray tasks on {bare_tasks})",
                     run_ms, "ms/task", "bare_ray_task_same_stage", bare_ms, higher_is_better=False),
        ratio_record("runner", f"files_per_scenario_after_compaction ({after} files, {n} scenarios)",
                     after / n, "files/scenario", "files_per_scenario_before_compaction", before / n,
                     higher_is_better=False),
        ratio_record("runner", f"driver_bytes_per_scenario (fit over N={sizes}; predicts "
                     f"{at_1e5:.0f} MiB at 1e5 scenarios)", slope, "B/scenario",
                     "resolved_scenario_spec_json_bytes", float(spec_bytes), higher_is_better=False),
        ratio_record("runner", f"query_count_seconds (ptycho-dist query, fresh process; status {status:.2f} s)",
                     query, "s", "bare_duckdb_fresh_process", duck, higher_is_better=False),
    ]
