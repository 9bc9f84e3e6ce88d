"""``ptycho-dist bench runner``: the runner's overhead over the same stage functions.

64 tiny oracle scenarios (every one with its own simulation, so no stage is shared), run three ways
in the same process and Ray session:

* ``plain_loop``: the stage functions called in a loop in this process (no Ray, no tables);
* ``bare_ray``: one bare Ray task per scenario running its stages in order (no DAG, no tables);
* ``runner``: ``run_study`` (DAG, backpressure, retries, cache checks, parquet rows, progress off).

Reported: scenarios/s of each, the ratios runner/plain and runner/bare, and the runner's overhead per
stage task relative to bare Ray tasks.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from ptycho_dist.bench import BenchRecord, ratio_record
from ptycho_dist.errors import StageError
from ptycho_dist.orchestration.cluster import connect
from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.pipeline import StageContext, run_scenario_inline
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, Study, parse_study, scenario_id, scenario_keys

__all__ = ["run", "tiny_study"]

_SPEC = """
[study]
name = "bench-runner"
seed = 1
replicates = {n}
[base.object]
size = 64
[base.probe]
n = 16
[base.scan]
step = 6.0
n_positions = 36
[base.stitch]
crop = 8
[base.evaluation]
border = 2
"""


def tiny_study(n: int) -> Study:
    """``n`` tiny oracle scenarios that share no stage (replicates of one grid point)."""
    return parse_study(_SPEC.format(n=n), source="<bench runner>")


@ray.remote(num_cpus=1, max_retries=0)
def _scenario_task(run_dir: str, scenario: dict[str, Any]) -> int:
    outcomes = run_scenario_inline(StageContext(Path(run_dir)), Scenario.from_dict(scenario))
    return len(outcomes)


def _prepare(study: Study, folder: Path) -> RunLayout:
    layout = RunLayout.for_study(folder, study.meta.name)
    layout.initialize(study, scenario_ids=[scenario_id(s) for s in study.scenarios])
    return layout


def _plain_loop(study: Study, folder: Path) -> float:
    layout = _prepare(study, folder)
    t0 = time.perf_counter()
    for s in study.scenarios:
        run_scenario_inline(StageContext(layout.root), s)
    return time.perf_counter() - t0


def _bare_ray(study: Study, folder: Path) -> float:
    layout = _prepare(study, folder)
    t0 = time.perf_counter()
    refs = [_scenario_task.remote(str(layout.root), s.to_dict()) for s in study.scenarios]
    ray.get(refs)
    return time.perf_counter() - t0


def _runner(study: Study, folder: Path) -> float:
    t0 = time.perf_counter()
    summary = run_study(study, RunOptions(out=folder, progress=False))
    if summary.status["ok"] != len(study.scenarios):
        raise StageError(f"bench runner: expected {len(study.scenarios)} ok scenarios, got {summary.to_dict()}")
    return time.perf_counter() - t0


def run(*, quick: bool = False) -> list[BenchRecord]:
    """Measure the three ways on fresh output folders; returns ratio records."""
    n = 8 if quick else 64
    study = tiny_study(n)
    n_tasks = sum(len(scenario_keys(s).chain()) for s in study.scenarios)
    started = connect(None)
    try:
        with tempfile.TemporaryDirectory(prefix="ptycho-bench-runner-") as tmp:
            _bare_ray(tiny_study(2), Path(tmp) / "warmup")  # start the workers and import the stages
            loop = _plain_loop(study, Path(tmp) / "loop")
            bare = _bare_ray(study, Path(tmp) / "bare")
            runner = _runner(study, Path(tmp) / "runner")
    finally:
        if started:
            ray.shutdown()
    unit = "scenarios/s"
    overhead_ms = 1000.0 * (runner - bare) / n_tasks
    return [
        ratio_record("runner", f"throughput_vs_plain_loop ({n} scenarios, {n_tasks} stage tasks)",
                     n / runner, unit, "plain_loop_one_process", n / loop),
        ratio_record("runner", "throughput_vs_bare_ray_tasks", n / runner, unit, "bare_ray_task_per_scenario", n / bare),
        ratio_record("runner", f"wall_per_stage_task (overhead vs bare {overhead_ms:+.1f} ms/task)",
                     1000.0 * runner / n_tasks, "ms/task", "bare_ray_per_stage_task", 1000.0 * bare / n_tasks,
                     higher_is_better=False),
    ]
