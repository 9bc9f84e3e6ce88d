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

One writer per run folder: the driver holds the run lock (:class:`~ptycho_dist.storage.lock.RunLock`)
from before ``study.json`` is touched until the end, SIGTERM included. A unit whose table parts are
damaged (truncated, missing) is committed again from its nodes' recorded outcomes; an input found
damaged when a stage reads it is removed, so that the next run recomputes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from ptycho_dist.orchestration.cluster import CONNECT_TIMEOUT_S, check_reachable, connect, gpus_available
from ptycho_dist.orchestration.progress import StageProgress
from ptycho_dist.orchestration.tasks import FaultInjection, remote_for, task_options
from ptycho_dist.orchestration.watchdog import RayGuard
from ptycho_dist.pipeline.base import StageContext, StageOutcome, cached_outcome
from ptycho_dist.pipeline.rows import scenario_rows
from ptycho_dist.storage.lock import RunLock
from ptycho_dist.storage.remote import RemoteLock, RemoteRun, normalize_url
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import PAIR_TABLES, RUN_TABLES, RUN_UNIT, TableStore, json_row
from ptycho_dist.storage.tables import STAGES as _TABLE_STAGES
from ptycho_dist.storage.tables import Unit as TableUnit
from ptycho_dist.study import RuntimeEnvSpec, Scenario, StageTask, Study, build_plan, scenario_id
from ptycho_dist.study.plan import NodeId, Plan, Planner, Unit
from ptycho_dist.study.plan import find_pairs as plan_pairs

#: the scheduler commits buffered units as one segment when this many are buffered ...
COMMIT_UNITS = 512
#: ... or when the oldest has waited this long (seconds); a killed driver loses at most these
#: commits, which the next run makes again from the stored stage outputs (cache hits)
COMMIT_SECONDS = 2.0
#: tasks in flight per CPU of the cluster (``--max-in-flight`` overrides it)
IN_FLIGHT_PER_CPU = 8
#: the tables are compacted every this many segments during a run, and when it ends
COMPACT_SEGMENTS = 64

__all__ = ["RunOptions", "RunSummary", "run_study", "plan_study", "find_pairs", "damaged_units",
           "terminate_on_sigterm", "stderr_line", "check_feasible", "compact_run", "scheduler_state", "SchedulerState"]


def stderr_line(line: str) -> None:
    """Print one notice line on stderr (the default :attr:`RunOptions.notify`)."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunOptions:
    """How to run a study."""

    out: Path | str = Path("runs")
    """A folder, or object storage: ``s3://bucket/prefix`` or ``gs://bucket/prefix`` (run on a local
    mirror, uploaded as it commits: :mod:`ptycho_dist.storage.remote`)."""
    address: str | None = None
    max_in_flight: int | None = None
    num_cpus: int | None = None
    progress: bool = True
    fault_injection: FaultInjection | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    break_lock: bool = False
    """Take over a lock that looks stale by its heartbeat only (a holder on another host)."""
    new_version: bool = False
    """Accept a spec that differs from the one recorded in the folder as its next version."""
    notify: Callable[[str], None] = stderr_line
    """Where one-line notices go (a stale lock taken over, damaged parts committed again)."""
    compact: bool = True
    """Compact the tables and pack the stage outputs when the run ends (off: ``bench runner``
    counts the files before compaction)."""
    runtime_env: RuntimeEnvSpec | None = None
    """Ray runtime environments per backend that replace the study's ``[runtime_env]`` entries for
    the backends they set (``run --runtime-env BACKEND=FILE.json``)."""


@dataclass
class RunSummary:
    """What a run did: scenarios by status, stages run and cached, wall time."""

    run_dir: Path
    scenarios: int = 0
    status: Counter[str] = field(default_factory=Counter)
    already_done: int = 0
    recommitted: int = 0
    stages_run: Counter[str] = field(default_factory=Counter)
    stages_cached: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (scenario_id, stage, error)
    remote_url: str | None = None
    """The run's URL when it lives on object storage (``run_dir`` is then its local mirror)."""

    def to_dict(self) -> dict[str, Any]:
        return {"scenarios": self.scenarios, "status": dict(self.status), "already_done": self.already_done,
                "recommitted": self.recommitted,
                "stages_run": dict(self.stages_run), "stages_cached": dict(self.stages_cached),
                "wall_seconds": self.wall_seconds, "failures": [list(f) for f in self.failures]}


def damaged_units(tables: TableStore) -> dict[str, str]:
    """Unit id -> the first problem of its table parts (quick check: sizes against the commit
    records, footers of parts without one); the run-level tables are left out (``check`` rewrites them)."""
    out: dict[str, str] = {}
    for c in tables.index.quick_check():
        if c.table not in RUN_TABLES:
            for unit in c.affected:
                if unit != RUN_UNIT:
                    out.setdefault(unit, c.problem)
    return out


def plan_study(study: Study, layout: RunLayout, *, damaged: dict[str, str] | None = None) -> Plan:
    """The DAG of distinct stage nodes for the scenarios and pairs that are not finished yet (units
    whose table parts are ``damaged`` count as not finished: they are committed again)."""
    tables = layout.tables
    if not tables.path.exists():
        return build_plan(study, committed={}, pairs_done=())
    skip = set(damaged if damaged is not None else damaged_units(tables))
    committed = {r["scenario_id"]: r["status"] for r in tables.status_rows(skip=skip)}
    return build_plan(study, committed=committed, pairs_done=tables.pair_ids() - skip)


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


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` in the main thread, so that ``finally``
    blocks run (the run lock is released, the local Ray stopped). Ray's own handler, installed by
    ``ray.init``, also exits through ``SystemExit``. Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_study(study: Study, options: RunOptions = RunOptions()) -> RunSummary:
    """Run (or resume) ``study``; returns the summary. Re-running the same study recomputes nothing.

    Raises
    ------
    RunLockedError
        Another writer holds the run folder (its host, pid and start time are in the message).
    StudyMismatchError
        The folder holds another version of the study and ``options.new_version`` is not set.
    """
    t0 = time.perf_counter()
    local = not (options.address or os.environ.get("RAY_ADDRESS"))
    if local:  # the local instance this run starts has exactly these CPUs: check before writing anything
        check_feasible(study, cpus=float(options.num_cpus or os.cpu_count() or 1), gpus=None,
                       where="this machine's local Ray")
    else:  # an unreachable head, or one that refuses the token, fails before the run folder is created
        check_reachable(str(options.address or os.environ.get("RAY_ADDRESS")), timeout=options.connect_timeout)
        connect(options.address, num_cpus=options.num_cpus, timeout=options.connect_timeout)
    url = normalize_url(options.out)
    if url is not None:
        return _run_remote(study, RemoteRun.for_study(url, study.meta.name), options, t0)
    layout = RunLayout.for_study(options.out, study.meta.name)
    with terminate_on_sigterm(), RunLock(layout.root, break_stale=options.break_lock, notify=options.notify,
                                         command=f"ptycho-dist run {study.source}"):
        return _run_locked(study, layout, options, t0)


def _run_remote(study: Study, remote: RemoteRun, options: RunOptions, t0: float) -> RunSummary:
    """A run on object storage: the store is checked (credentials, bucket) before anything is
    written, the lock object taken, the mirror synced down; the study runs on the mirror, which is
    uploaded after each commit, on the way out (an error, SIGTERM) and at the end."""
    remote.check_access()
    with terminate_on_sigterm(), RemoteLock(remote, break_stale=options.break_lock, notify=options.notify,
                                            command=f"ptycho-dist run {study.source}"):
        remote.pull(prune=True)
        layout = RunLayout(remote.root)
        try:
            summary = _run_locked(study, layout, options, t0, remote)
        finally:
            if layout.study_json.exists():
                with contextlib.suppress(Exception):  # what is committed is uploaded; the error is the one to see
                    remote.push()
        summary.remote_url = remote.url
        return summary


def _run_locked(study: Study, layout: RunLayout, options: RunOptions, t0: float,
                remote: RemoteRun | None = None) -> RunSummary:
    ids = [scenario_id(s) for s in study.scenarios]
    planner = Planner()
    pair_ids = [planner.pair_keys(a, b).pair_id for a, b in plan_pairs(study.scenarios)]
    layout.initialize(study, scenario_ids=list(dict.fromkeys(ids)), pair_ids=pair_ids,
                      new_version=options.new_version)
    if remote is not None:
        remote.push()
    damaged = damaged_units(layout.tables)
    for unit, problem in sorted(damaged.items()):
        options.notify(f"{problem}: committed again from the stored stage outputs")
    plan = plan_study(study, layout, damaged=damaged)
    summary = RunSummary(layout.root, scenarios=len(set(ids)), already_done=len(plan.done_ids))
    summary.status.update({"ok": 0})
    run_plan(study, plan, layout, options, summary, remote=remote)
    if options.compact:
        compact_run(layout, remote=remote)
    for r in layout.tables.status_rows(set(ids)):
        summary.status[r["status"]] += 1
    summary.wall_seconds = time.perf_counter() - t0
    layout.finish(summary.to_dict())
    return summary


def run_plan(study: Study, plan: Plan, layout: RunLayout, options: RunOptions, summary: RunSummary, *,
             remote: RemoteRun | None = None) -> None:
    """Run the nodes of ``plan`` and commit its units (Ray is started only when a node must be
    computed; a plan of cache hits is resolved in this process). Call it holding the run lock.
    ``remote``: the run lives on object storage, ``layout`` is its mirror (uploaded after each commit)."""
    scheduler = _Scheduler(study, plan, layout, options, summary, remote)
    if scheduler.resolve_cached():
        return
    guard = RayGuard().start() if _starts_local_ray(options.address) else None
    started = False
    try:
        started = connect(options.address, num_cpus=options.num_cpus, timeout=options.connect_timeout)
        if started:  # the local instance is known now: a GPU request it cannot meet is refused
            total = ray.cluster_resources()
            check_feasible(study, cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)),
                           where="this machine's local Ray")
        scheduler.run()
    finally:
        if started:
            ray.shutdown()
        if guard is not None:
            guard.close()  # what ray.shutdown() left of the local Ray is stopped by PID


def compact_run(layout: RunLayout, *, remote: RemoteRun | None = None) -> None:
    """Compact the run's tables into one part per table (damaged units left out: the next run
    commits them again) and pack its stage outputs (:meth:`~ptycho_dist.storage.arrays.ArrayStore.pack`).
    ``remote``: the outputs workers uploaded are downloaded first, the result uploaded after."""
    if remote is not None:
        remote.pull(prefix="arrays.zarr/")
    tables = layout.tables
    tables.compact(skip=damaged_units(tables))
    layout.arrays.pack()
    if remote is not None:
        remote.push()


def _starts_local_ray(address: str | None) -> bool:
    """Whether :func:`connect` will start a local Ray (no running one, no address): then a watchdog
    stops it if the driver dies (:mod:`ptycho_dist.orchestration.watchdog`)."""
    return not ray.is_initialized() and not (address or os.environ.get("RAY_ADDRESS"))


@dataclass
class SchedulerState:
    """What the scheduler keeps per node and unit besides the plan (see :func:`scheduler_state`)."""

    waiting: dict[NodeId, int]
    """node -> parents not resolved yet"""
    pending: dict[str, set[NodeId]]
    """unit -> its nodes not resolved yet"""
    units_of: dict[NodeId, list[Unit]]
    ready: list[NodeId]


def scheduler_state(plan: Plan) -> SchedulerState:
    """The scheduler's bookkeeping for ``plan`` (O(nodes + unit memberships); no Ray)."""
    waiting = {nid: len(node.parents) for nid, node in plan.nodes.items()}
    units_of: dict[NodeId, list[Unit]] = defaultdict(list)
    for u in plan.units:
        for nid in u.nodes:
            units_of[nid].append(u)
    return SchedulerState(waiting, {u.id: set(u.nodes) for u in plan.units}, units_of,
                          [nid for nid, n in waiting.items() if n == 0])


class _Scheduler:
    """The one scheduler: ready nodes (all parents ok) go to Ray with backpressure, cache hits are
    resolved without a task, a node whose parent failed or diverged is skipped, and a unit (scenario
    or pair) is committed to the tables when its last node is resolved."""

    def __init__(self, study: Study, plan: Plan, layout: RunLayout, options: RunOptions,
                 summary: RunSummary, remote: RemoteRun | None = None) -> None:
        self.study, self.plan, self.layout, self.options, self.summary = study, plan, layout, options, summary
        self.remote = remote
        self.run_dir = remote.url if remote is not None else str(layout.root)
        """what the tasks get: the folder, or the URL (each worker then uses its node's mirror)"""
        self.ctx = StageContext(layout.root)
        self.outcomes: dict[NodeId, StageOutcome] = {}
        state = scheduler_state(plan)
        self.waiting, self.pending, self.units_of, self.ready = (state.waiting, state.pending, state.units_of,
                                                                 state.ready)
        self.progress = StageProgress(Counter(stage for stage, _ in plan.nodes), enabled=options.progress)
        self.to_compute: list[NodeId] = []
        self.tables = layout.tables
        self.buffer: list[TableUnit] = []
        self.buffered_since = 0.0
        self.segments_written = 0
        self.consumed: list[NodeId] = []
        self.remotes: dict[tuple[int, str], Any] = {}
        """resolved nodes whose children are all resolved (packed at the next compaction)"""

    def resolve_cached(self) -> bool:
        """Resolve every node reachable through cache hits (no Ray); True when nothing is left to
        compute. Nodes that must be computed wait in :attr:`to_compute` for :meth:`run`."""
        present = self.layout.arrays.present()  # one listing, not one lookup per node
        try:
            while self.ready:
                nid = self.ready.pop()
                hit = cached_outcome(self.ctx, *nid) if nid in present else None
                if hit is None:
                    self.to_compute.append(nid)
                else:
                    self.resolve(nid, hit)
                    self.flush()
        finally:
            self.flush(force=True)
        return not self.to_compute

    def run(self) -> None:
        # a queue a few tasks deep per CPU keeps the workers busy while the driver commits
        limit = self.options.max_in_flight or max(2, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
        has_gpu = gpus_available()
        runtime_env = self.study.runtime_env
        if self.options.runtime_env is not None:
            runtime_env = runtime_env.merged(self.options.runtime_env)
        in_flight: dict[Any, NodeId] = {}
        present = self.layout.arrays.present()
        self.ready.extend(reversed(self.to_compute))
        self.to_compute = []
        with self.progress, self._flushing():
            while self.ready or in_flight:
                while self.ready and len(in_flight) < limit:
                    nid = self.ready.pop()
                    # absent when the run started: computed (the task checks its cache again itself)
                    hit = cached_outcome(self.ctx, *nid) if nid in present else None
                    if hit is not None:
                        self.resolve(nid, hit)
                        continue
                    task = self.plan.nodes[nid].task
                    ref = self._remote(task, has_gpu, runtime_env).remote(self.run_dir, task.to_dict(),
                                                                          self.options.fault_injection)
                    in_flight[ref] = nid
                if in_flight:
                    # a bounded wait: signals (SIGTERM) are handled between two waits
                    refs = list(in_flight)
                    done, _ = ray.wait(refs, num_returns=1, timeout=1.0)
                    if done and len(refs) > 1:  # take every finished task at once, not one per wait
                        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                    for ref in done:
                        nid = in_flight.pop(ref)
                        self.resolve(nid, _get_outcome(ref, nid))
                self.flush()

    def _remote(self, task: StageTask, has_gpu: bool, runtime_env: RuntimeEnvSpec | None) -> Any:
        """The remote function of ``task`` with its options (one wrapper per distinct set of options:
        ``.options()`` costs about a millisecond)."""
        fn = remote_for(task)
        opts = task_options(task, has_gpu=has_gpu, runtime_env=runtime_env)
        key = (id(fn), json.dumps(opts, sort_keys=True, default=str))
        wrapper = self.remotes.get(key)
        if wrapper is None:
            wrapper = self.remotes[key] = fn.options(**opts)
        return wrapper

    @contextlib.contextmanager
    def _flushing(self) -> Iterator[None]:
        """Commit what is buffered on the way out, a SIGTERM or an error included."""
        try:
            yield
        finally:
            self.flush(force=True)

    def resolve(self, nid: NodeId, outcome: StageOutcome) -> None:
        """Record ``outcome``; release the children (or skip them); commit finished units."""
        self.outcomes[nid] = outcome
        stage = nid[0]
        if not outcome.info.get("skipped"):
            (self.summary.stages_cached if outcome.cached else self.summary.stages_run)[stage] += 1
        self.progress.advance(stage, cached=outcome.cached)
        if outcome.status == "failed" and outcome.traceback:
            self.layout.write_log(stage, nid[1], outcome.traceback)
        bad = outcome.info.get("corrupt_input")
        if bad and self.layout.outputs.remove(bad[0], bad[1]):
            self.options.notify(f"{outcome.error}: removed {bad[0]}/{bad[1]}; the next run recomputes it")
        for child in self.plan.nodes[nid].children:
            if child in self.outcomes:
                continue
            if outcome.status != "ok":
                self.resolve(child, _skipped(self.plan.nodes[child].task, outcome))
                continue
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.ready.append(child)
        for done in (nid, *self.plan.nodes[nid].parents):
            if done in self.outcomes and all(c in self.outcomes for c in self.plan.nodes[done].children):
                self.consumed.append(done)
        for unit in self.units_of[nid]:
            self.pending[unit.id].discard(nid)
            if not self.pending[unit.id]:
                self.commit(unit)

    def flush(self, *, force: bool = False) -> None:
        """Commit the buffered units as one segment: when ``force``, when the buffer is full, or when
        the oldest buffered unit waited :attr:`COMMIT_SECONDS`; compact the tables every
        :attr:`COMPACT_SEGMENTS` segments."""
        if not self.buffer:
            return
        if not force and len(self.buffer) < COMMIT_UNITS and time.monotonic() - self.buffered_since < COMMIT_SECONDS:
            return
        self.tables.write_units(self.buffer)
        self.buffer = []
        self.segments_written += 1
        if self.segments_written % COMPACT_SEGMENTS == 0:
            self.tables.compact(skip=damaged_units(self.tables))
            if self.consumed:  # outputs no task of this run reads any more: safe to move into a pack
                if self.remote is not None:  # those the workers uploaded, into the mirror first
                    self.remote.pull(prefix="arrays.zarr/")
                self.layout.arrays.pack(self.consumed)
                self.consumed = []
        if self.remote is not None:
            self.remote.push()

    def _buffer(self, unit: TableUnit) -> None:
        if not self.buffer:
            self.buffered_since = time.monotonic()
        self.buffer.append(unit)

    def commit(self, unit: Unit) -> None:
        if unit.kind == "scenario":
            rows_of = scenario_rows(self.study.meta.name, unit, self.plan, self.outcomes)
            self._keep_recorded_fields(unit, rows_of["scenarios"][0])
            self._buffer(TableUnit(unit.id, "scenario", rows_of))
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
            self._buffer(TableUnit(unit.id, "pair", {t: rows.get(t, []) for t in PAIR_TABLES}))
        # a pair skipped because one of its arms failed or diverged writes nothing: the arm's row says why

    def _keep_recorded_fields(self, unit: Unit, row: dict[str, Any]) -> None:
        """A unit committed again from cache hits only (its parts were damaged) keeps the run fields of
        its recorded row (when it was committed, which stages that run computed): the rebuilt rows
        are the rows it had."""
        if not all(self.outcomes[n].cached or self.outcomes[n].info.get("skipped") for n in unit.nodes):
            return
        typed = self.tables.committed_row(unit.id)
        if typed is None:
            return
        before = json.loads(json.dumps(json_row(typed), allow_nan=True))
        now = json.loads(json.dumps(json_row(row), allow_nan=True))
        if any(before.get(k) != v for k, v in now.items() if k not in _RUN_FIELDS):
            return
        row.update({k: typed[k] for k in _RUN_FIELDS if k in typed})
        self.summary.recommitted += 1


#: the columns of a scenarios row that describe the run that committed it, not its results
_RUN_FIELDS = ("finished_at", *(f"cached_{s}" for s in _TABLE_STAGES))


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
