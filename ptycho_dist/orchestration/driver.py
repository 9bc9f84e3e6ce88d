"""The study driver: expand -> DAG of unique stage keys (the registry's) -> one scheduler -> tables.

The DAG (:func:`ptycho_dist.study.plan.build_plan`) has one node per distinct (stage, key); a node may
have several parents, and a stage shared by several scenarios runs once. A node whose output is
complete is a cache hit and is never submitted. A node becomes ready when all of its parents are
``ok``; ready nodes are submitted as Ray tasks (resources from the registry's resource class and the
scenario spec) while at most ``max_in_flight`` are running, and results are taken with ``ray.wait``
as they finish. When every node of a unit is resolved, the driver commits it: a scenario's rows (one
part per table, the ``scenarios`` part last) or a pair's rows (``parity``). Failures of an input or
scientific nature come back as ``failed`` outcomes and skip the nodes below (the study goes on); a
dead worker is a system failure that Ray retries (``max_retries``).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from ptycho_dist.orchestration.cluster import CONNECT_TIMEOUT_S, check_reachable, connect, gpus_available
from ptycho_dist.orchestration.progress import StageProgress
from ptycho_dist.orchestration.tasks import FaultInjection, remote_for, task_options
from ptycho_dist.pipeline.base import StageContext, StageOutcome, cached_outcome
from ptycho_dist.pipeline.rows import scenario_rows
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import PAIR_TABLES
from ptycho_dist.study import Scenario, StageTask, Study, build_plan, scenario_id
from ptycho_dist.study.plan import NodeId, Plan, Unit
from ptycho_dist.study.plan import find_pairs as plan_pairs

__all__ = ["RunOptions", "RunSummary", "run_study", "plan_study", "find_pairs", "check_feasible"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a study."""

    out: Path = Path("runs")
    address: str | None = None
    max_in_flight: int | None = None
    num_cpus: int | None = None
    progress: bool = True
    fault_injection: FaultInjection | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S


@dataclass
class RunSummary:
    """What a run did: scenarios by status, stages run and cached, wall time."""

    run_dir: Path
    scenarios: int = 0
    status: Counter[str] = field(default_factory=Counter)
    already_done: int = 0
    stages_run: Counter[str] = field(default_factory=Counter)
    stages_cached: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (scenario_id, stage, error)

    def to_dict(self) -> dict[str, Any]:
        return {"scenarios": self.scenarios, "status": dict(self.status), "already_done": self.already_done,
                "stages_run": dict(self.stages_run), "stages_cached": dict(self.stages_cached),
                "wall_seconds": self.wall_seconds, "failures": [list(f) for f in self.failures]}


def plan_study(study: Study, layout: RunLayout) -> Plan:
    """The DAG of distinct stage nodes for the scenarios and pairs that are not finished yet."""
    tables = layout.tables
    committed = {r["scenario_id"]: r["status"] for r in tables.status_rows()} if tables.path.exists() else {}
    return build_plan(study, committed=committed, pairs_done=tables.pair_ids() if tables.path.exists() else ())


def find_pairs(study: Study) -> list[tuple[Scenario, Scenario]]:
    """Pairs (torch arm, tf arm) of ``study`` that share data, grouping, architecture and training."""
    return plan_pairs(study.scenarios)


def _skipped(task: StageTask, cause: StageOutcome) -> StageOutcome:
    status = "diverged" if cause.status == "diverged" else "failed"
    msg = cause.error if status == "failed" else None
    return StageOutcome(task.stage, task.key, status, False, 0.0, {}, {"skipped": True},
                        error=f"skipped: {cause.stage} {status}" + (f" ({msg})" if msg else ""))


def check_feasible(study: Study, *, cpus: float, gpus: float | None, where: str) -> None:
    """Refuse a study whose tasks ask for more than a known, fixed cluster has: such a task would
    wait forever. ``gpus`` None skips the GPU check (not known yet).

    Raises
    ------
    SpecError
        Naming the field (``resources.num_cpus``, ``resources.num_gpus`` or
        ``resources.train_workers``), the request and what ``where`` has.
    """
    from ptycho_dist.errors import SpecError
    from ptycho_dist.study.registry import MODEL_ARMS

    for s in study.scenarios:
        r, model = s.resources, s.model.backend in MODEL_ARMS
        if r.num_cpus > cpus:
            raise SpecError(f"{study.source}: resources.num_cpus: asks {r.num_cpus:g} CPUs per task, "
                            f"but {where} has {cpus:g} CPUs: the task could never start")
        if model and r.train_workers > 1 and r.train_workers * r.num_cpus > cpus:
            raise SpecError(f"{study.source}: resources.train_workers: {r.train_workers} workers x "
                            f"{r.num_cpus:g} CPUs = {r.train_workers * r.num_cpus:g} CPUs, but {where} has "
                            f"{cpus:g}: the training could never start")
        if model and gpus is not None and (r.num_gpus or 0) > gpus:
            raise SpecError(f"{study.source}: resources.num_gpus: asks {r.num_gpus:g} GPUs per model task, "
                            f"but {where} has {gpus:g}: the task could never start")


def run_study(study: Study, options: RunOptions = RunOptions()) -> RunSummary:
    """Run (or resume) ``study``; returns the summary. Re-running the same study recomputes nothing."""
    t0 = time.perf_counter()
    local = not (options.address or os.environ.get("RAY_ADDRESS"))
    if local:  # the local instance this run starts has exactly these CPUs: check before writing anything
        check_feasible(study, cpus=float(options.num_cpus or os.cpu_count() or 1), gpus=None,
                       where="this machine's local Ray")
    else:  # an unreachable head, or one that refuses the token, fails before the run folder is created
        check_reachable(str(options.address or os.environ.get("RAY_ADDRESS")), timeout=options.connect_timeout)
        connect(options.address, num_cpus=options.num_cpus, timeout=options.connect_timeout)
    layout = RunLayout.for_study(options.out, study.meta.name)
    ids = [scenario_id(s) for s in study.scenarios]
    layout.initialize(study, scenario_ids=list(dict.fromkeys(ids)))
    plan = plan_study(study, layout)
    summary = RunSummary(layout.root, scenarios=len(set(ids)), already_done=len(plan.done_ids))
    summary.status.update({"ok": 0})
    started = False
    try:
        if plan.units:
            started = connect(options.address, num_cpus=options.num_cpus, timeout=options.connect_timeout)
            if started:
                total = ray.cluster_resources()
                check_feasible(study, cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)),
                               where="this machine's local Ray")
            _Scheduler(study, plan, layout, options, summary).run()
    finally:
        if started:
            ray.shutdown()
    for r in layout.tables.status_rows(set(ids)):
        summary.status[r["status"]] += 1
    summary.wall_seconds = time.perf_counter() - t0
    layout.finish(summary.to_dict())
    return summary


class _Scheduler:
    """The one scheduler: ready nodes (all parents ok) go to Ray with backpressure, cache hits are
    resolved without a task, a node whose parent failed or diverged is skipped, and a unit (scenario
    or pair) is committed to the tables when its last node is resolved."""

    def __init__(self, study: Study, plan: Plan, layout: RunLayout, options: RunOptions,
                 summary: RunSummary) -> None:
        self.study, self.plan, self.layout, self.options, self.summary = study, plan, layout, options, summary
        self.ctx = StageContext(layout.root)
        self.outcomes: dict[NodeId, StageOutcome] = {}
        self.waiting = {nid: len(node.parents) for nid, node in plan.nodes.items()}
        self.pending = {u.id: set(u.nodes) for u in plan.units}
        self.units_of: dict[NodeId, list[Unit]] = defaultdict(list)
        for u in plan.units:
            for nid in u.nodes:
                self.units_of[nid].append(u)
        self.ready: list[NodeId] = [nid for nid, n in self.waiting.items() if n == 0]
        self.progress = StageProgress(Counter(stage for stage, _ in plan.nodes), enabled=options.progress)

    def run(self) -> None:
        limit = self.options.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        has_gpu = gpus_available()
        in_flight: dict[Any, NodeId] = {}
        with self.progress:
            while self.ready or in_flight:
                while self.ready and len(in_flight) < limit:
                    nid = self.ready.pop()
                    hit = cached_outcome(self.ctx, *nid)
                    if hit is not None:
                        self.resolve(nid, hit)
                        continue
                    task = self.plan.nodes[nid].task
                    ref = remote_for(task).options(**task_options(task, has_gpu=has_gpu)).remote(
                        str(self.layout.root), task.to_dict(), self.options.fault_injection)
                    in_flight[ref] = nid
                if in_flight:
                    done, _ = ray.wait(list(in_flight), num_returns=1)
                    for ref in done:
                        nid = in_flight.pop(ref)
                        self.resolve(nid, _get_outcome(ref, nid))

    def resolve(self, nid: NodeId, outcome: StageOutcome) -> None:
        """Record ``outcome``; release the children (or skip them); commit finished units."""
        self.outcomes[nid] = outcome
        stage = nid[0]
        if not outcome.info.get("skipped"):
            (self.summary.stages_cached if outcome.cached else self.summary.stages_run)[stage] += 1
        self.progress.advance(stage, cached=outcome.cached)
        if outcome.status == "failed" and outcome.traceback:
            self.layout.write_log(stage, nid[1], outcome.traceback)
        for child in self.plan.nodes[nid].children:
            if child in self.outcomes:
                continue
            if outcome.status != "ok":
                self.resolve(child, _skipped(self.plan.nodes[child].task, outcome))
                continue
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.ready.append(child)
        for unit in self.units_of[nid]:
            self.pending[unit.id].discard(nid)
            if not self.pending[unit.id]:
                self.commit(unit)

    def commit(self, unit: Unit) -> None:
        if unit.kind == "scenario":
            rows_of = scenario_rows(self.study.meta.name, unit, self.plan, self.outcomes)
            self.layout.tables.write_scenario(unit.id, rows_of)
            st = rows_of["scenarios"][0]
            if st["status"] != "ok":
                self.summary.failures.append((unit.id, st["failed_stage"], st["error"] or st["status"]))
            return
        outcomes = [self.outcomes[nid] for nid in unit.nodes]
        failed = [oc for oc in outcomes if oc.status != "ok" and not oc.info.get("skipped")]
        if failed:
            self.summary.failures.append((unit.id, failed[0].stage, failed[0].error or failed[0].status))
        elif all(oc.status == "ok" for oc in outcomes):
            rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for oc in outcomes:
                for table, part in oc.rows.items():
                    rows[table].extend(part)
            for table in PAIR_TABLES:
                self.layout.tables.write_pair(table, unit.id, rows.get(table, []))
        # a pair skipped because one of its arms failed or diverged writes nothing: the arm's row says why


def _get_outcome(ref: Any, nid: NodeId) -> StageOutcome:
    """The task's outcome; a task that Ray gave up on (retries exhausted) becomes a failed outcome."""
    try:
        return StageOutcome(**ray.get(ref))
    except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as exc:
        return StageOutcome(nid[0], nid[1], "failed", False, 0.0, {}, {},
                            error=f"system failure after retries: {type(exc).__name__}: {str(exc)[:500]}",
                            traceback=str(exc))


def default_out() -> Path:
    """``$PTYCHO_DIST_OUT`` or ``./runs``."""
    return Path(os.environ.get("PTYCHO_DIST_OUT", "runs"))
