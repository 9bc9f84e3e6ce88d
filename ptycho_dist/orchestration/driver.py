"""The study driver: expand -> DAG of unique stage keys -> Ray tasks with backpressure -> tables.

The DAG has one node per distinct (stage, key): a stage shared by several scenarios runs once. A node
whose output is complete is a cache hit and is never submitted. Ready nodes are submitted as Ray tasks
(resources from the scenario spec) while at most ``max_in_flight`` are running; results are taken with
``ray.wait`` as they finish. When every stage of a scenario is resolved, the driver writes that
scenario's rows to the tables (one part per table, the ``scenarios`` part last). Failures of an input
or scientific nature come back as ``failed`` outcomes (the study goes on); a dead worker is a system
failure that Ray retries (``max_retries``).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from ptycho_dist.orchestration.cluster import connect, gpus_available
from ptycho_dist.orchestration.progress import StageProgress
from ptycho_dist.orchestration.tasks import FaultInjection, remote_for, task_options
from ptycho_dist.pipeline.base import StageContext, StageOutcome, cached_outcome
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import STAGES, flatten_scenario
from ptycho_dist.study import Scenario, ScenarioKeys, Study, scenario_keys
from ptycho_dist.study.keys import PairKeys, pair_keys, pair_signature

__all__ = ["RunOptions", "RunSummary", "run_study", "plan_study"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a study."""

    out: Path = Path("runs")
    address: str | None = None
    max_in_flight: int | None = None
    num_cpus: int | None = None
    progress: bool = True
    fault_injection: FaultInjection | None = None


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


@dataclass
class _Node:
    stage: str
    key: str
    scenario: Scenario
    keys: ScenarioKeys
    parent: tuple[str, str] | None
    children: list[tuple[str, str]] = field(default_factory=list)
    outcome: StageOutcome | None = None


@dataclass
class _Plan:
    nodes: dict[tuple[str, str], _Node]
    todo: list[tuple[Scenario, ScenarioKeys]]
    done_ids: set[str]


def plan_study(study: Study, layout: RunLayout) -> _Plan:
    """The DAG of distinct stage nodes for the scenarios that are not finished yet."""
    committed = {r["scenario_id"]: r["status"] for r in layout.tables.status_rows()} if layout.tables.path.exists() else {}
    nodes: dict[tuple[str, str], _Node] = {}
    todo, done = [], set()
    for scenario in study.scenarios:
        keys = scenario_keys(scenario)
        if committed.get(keys.scenario) in ("ok", "diverged"):
            done.add(keys.scenario)
            continue
        todo.append((scenario, keys))
        parent = None
        for stage, key in keys.chain():
            node = nodes.setdefault((stage, key), _Node(stage, key, scenario, keys, parent))
            if parent is not None and (stage, key) not in nodes[parent].children:
                nodes[parent].children.append((stage, key))
            parent = (stage, key)
    return _Plan(nodes, todo, done)


def _fail_descendants(nodes: dict[tuple[str, str], _Node], node: _Node, resolved: Callable[[_Node], None]) -> None:
    assert node.outcome is not None
    for child_id in node.children:
        child = nodes[child_id]
        if child.outcome is None:
            status = "diverged" if node.outcome.status == "diverged" else "failed"
            msg = node.outcome.error if status == "failed" else None
            child.outcome = StageOutcome(child.stage, child.key, status, False, 0.0, {}, {"skipped": True},
                                         error=f"skipped: {node.stage} {status}" + (f" ({msg})" if msg else ""))
            resolved(child)
            _fail_descendants(nodes, child, resolved)


def _scenario_rows(study: Study, scenario: Scenario, keys: ScenarioKeys,
                   nodes: dict[tuple[str, str], _Node]) -> dict[str, list[dict[str, Any]]]:
    outcomes = {stage: nodes[(stage, key)].outcome for stage, key in keys.chain()}
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status, error, failed_stage, diverged_epoch = "ok", None, None, None
    for stage, oc in outcomes.items():
        assert oc is not None
        for table, rows in oc.rows.items():
            tables[table].extend(rows)
        if oc.status != "ok" and status == "ok":
            status, error, failed_stage = oc.status, oc.error, stage
            if oc.status == "diverged" and error is None:
                error = f"non-finite loss at epoch {oc.info.get('diverged_epoch')} (0-based)"
        if oc.info.get("diverged_epoch") is not None:
            diverged_epoch = int(oc.info["diverged_epoch"])
    row: dict[str, Any] = {
        "scenario_id": keys.scenario, "study": study.meta.name, "status": status, "error": error,
        "failed_stage": failed_stage, "diverged_epoch": diverged_epoch,
        "finished_at": datetime.now(UTC),
    }
    for stage in STAGES:
        oc = outcomes.get(stage)
        ran = oc is not None and not oc.info.get("skipped")
        row[f"key_{stage}"] = getattr(keys, stage)
        row[f"seconds_{stage}"] = oc.seconds if ran else None
        row[f"cached_{stage}"] = oc.cached if ran else None
    row.update(flatten_scenario(scenario))
    tables["scenarios"] = [row]
    return dict(tables)


def run_study(study: Study, options: RunOptions = RunOptions()) -> RunSummary:
    """Run (or resume) ``study``; returns the summary. Re-running the same study recomputes nothing."""
    t0 = time.perf_counter()
    layout = RunLayout.for_study(options.out, study.meta.name)
    ids = [scenario_keys(s).scenario for s in study.scenarios]
    layout.initialize(study, scenario_ids=list(dict.fromkeys(ids)))
    plan = plan_study(study, layout)
    summary = RunSummary(layout.root, scenarios=len(set(ids)), already_done=len(plan.done_ids))
    summary.status.update({"ok": 0})
    started = False
    try:
        if plan.todo:
            started = connect(options.address, num_cpus=options.num_cpus)
            _execute(study, plan, layout, options, summary)
        pairs = parity_todo(study, layout)
        if pairs:
            started = connect(options.address, num_cpus=options.num_cpus) or started
            _execute_parity(pairs, layout, options, summary)
    finally:
        if started:
            ray.shutdown()
    for r in layout.tables.status_rows(set(ids)):
        summary.status[r["status"]] += 1
    summary.wall_seconds = time.perf_counter() - t0
    layout.finish(summary.to_dict())
    return summary


def _execute(study: Study, plan: _Plan, layout: RunLayout, options: RunOptions, summary: RunSummary) -> None:
    nodes, ctx = plan.nodes, StageContext(layout.root)
    pending_by_scenario = {keys.scenario: len(keys.chain()) for _, keys in plan.todo}
    scenarios_of: dict[tuple[str, str], list[tuple[Scenario, ScenarioKeys]]] = defaultdict(list)
    for scenario, keys in plan.todo:
        for nid in keys.chain():
            scenarios_of[nid].append((scenario, keys))
    progress = StageProgress(Counter(stage for stage, _ in nodes), enabled=options.progress)

    def resolved(node: _Node) -> None:
        oc = node.outcome
        assert oc is not None
        if not oc.info.get("skipped"):
            (summary.stages_cached if oc.cached else summary.stages_run)[node.stage] += 1
        progress.advance(node.stage, cached=oc.cached)
        if oc.status == "failed" and oc.traceback:
            layout.write_log(node.stage, node.key, oc.traceback)
        for scenario, keys in scenarios_of[(node.stage, node.key)]:
            pending_by_scenario[keys.scenario] -= 1
            if pending_by_scenario[keys.scenario] == 0:
                rows = _scenario_rows(study, scenario, keys, nodes)
                layout.tables.write_scenario(keys.scenario, rows)
                st = rows["scenarios"][0]
                if st["status"] != "ok":
                    summary.failures.append((keys.scenario, st["failed_stage"], st["error"] or st["status"]))

    def finish(node: _Node, outcome: StageOutcome) -> list[_Node]:
        node.outcome = outcome
        resolved(node)
        if outcome.status != "ok":
            _fail_descendants(nodes, node, resolved)
            return []
        return [nodes[c] for c in node.children if nodes[c].outcome is None]

    ready = [n for n in nodes.values() if n.parent is None]
    if not plan.todo:
        return
    limit = options.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    has_gpu = gpus_available()
    in_flight: dict[Any, _Node] = {}
    with progress:
        while ready or in_flight:
            while ready and len(in_flight) < limit:
                node = ready.pop()
                hit = cached_outcome(ctx, node.stage, node.key)
                if hit is not None:
                    ready.extend(finish(node, hit))
                    continue
                opts = task_options(node.stage, node.scenario, has_gpu=has_gpu)
                ref = remote_for(node.stage, node.scenario).options(**opts).remote(
                    str(layout.root), node.stage, node.scenario.to_dict(), node.keys.as_dict(), node.key,
                    options.fault_injection)
                in_flight[ref] = node
            if not in_flight:
                continue
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                node = in_flight.pop(ref)
                ready.extend(finish(node, _get_outcome(ref, node)))


def find_pairs(study: Study) -> list[tuple[Scenario, Scenario]]:
    """Pairs (torch arm, tf arm) that share data, grouping, architecture and training."""
    by_signature: dict[str, list[Scenario]] = defaultdict(list)
    for s in study.scenarios:
        sig = pair_signature(s)
        if sig is not None:
            by_signature[sig].append(s)
    pairs = []
    for group in by_signature.values():
        torch_arms = [s for s in group if s.model.backend == "torch"]
        tf_arms = [s for s in group if s.model.backend == "tf"]
        pairs += [(a, b) for a in torch_arms for b in tf_arms]
    return pairs


def parity_todo(study: Study, layout: RunLayout) -> list[tuple[Scenario, Scenario, PairKeys]]:
    """Pairs whose two arms finished ok and whose parity row is not written yet."""
    ok = {r["scenario_id"] for r in layout.tables.status_rows() if r["status"] == "ok"} if layout.tables.path.exists() else set()
    out = []
    for a, b in find_pairs(study):
        pk = pair_keys(a, b)
        if pk.a.scenario in ok and pk.b.scenario in ok and not layout.tables.has_pair("parity", pk.pair_id):
            out.append((a, b, pk))
    return out


def _submit(layout: RunLayout, stage: str, s: Scenario, keys: ScenarioKeys, key: str, options_of: Scenario,
            partner: tuple[Scenario, ScenarioKeys], options: RunOptions, has_gpu: bool) -> Any:
    opts = task_options(stage, options_of, has_gpu=has_gpu)
    return remote_for(stage, options_of).options(**opts).remote(
        str(layout.root), stage, s.to_dict(), keys.as_dict(), key, options.fault_injection,
        (partner[0].to_dict(), partner[1].as_dict()))


def _execute_parity(pairs: list[tuple[Scenario, Scenario, PairKeys]], layout: RunLayout, options: RunOptions,
                    summary: RunSummary) -> None:
    """Transplant each arm's bundle into the other backend, then one parity row per pair."""
    has_gpu = gpus_available()
    waiting: dict[Any, tuple[str, int, str]] = {}
    done_transplants: dict[int, int] = defaultdict(int)
    failed: set[int] = set()
    for i, (a, b, pk) in enumerate(pairs):
        waiting[_submit(layout, "transplant", a, pk.a, pk.transplant_ab, b, (b, pk.b), options, has_gpu)] = (
            "transplant", i, pk.transplant_ab)
        waiting[_submit(layout, "transplant", b, pk.b, pk.transplant_ba, a, (a, pk.a), options, has_gpu)] = (
            "transplant", i, pk.transplant_ba)
    progress = StageProgress(Counter({"transplant": 2 * len(pairs), "parity": len(pairs)}), enabled=options.progress)
    with progress:
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            stage, i, key = waiting.pop(ready[0])
            a, b, pk = pairs[i]
            outcome = _get_outcome(ready[0], _Node(stage, key, a, pk.a, None))
            progress.advance(stage, cached=outcome.cached)
            (summary.stages_cached if outcome.cached else summary.stages_run)[stage] += 1
            if outcome.status != "ok":
                failed.add(i)
                summary.failures.append((pk.pair_id, stage, outcome.error or outcome.status))
                if outcome.traceback:
                    layout.write_log(stage, outcome.key, outcome.traceback)
                continue
            if stage == "transplant":
                done_transplants[i] += 1
                if done_transplants[i] == 2 and i not in failed:
                    ref = _submit(layout, "parity", a, pk.a, pk.parity, a, (b, pk.b), options, has_gpu)
                    waiting[ref] = ("parity", i, pk.parity)
            else:
                layout.tables.write_pair("parity", pk.pair_id, outcome.rows["parity"])


def _get_outcome(ref: Any, node: _Node) -> StageOutcome:
    """The task's outcome; a task that Ray gave up on (retries exhausted) becomes a failed outcome."""
    try:
        return StageOutcome(**ray.get(ref))
    except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.RayError) as exc:
        return StageOutcome(node.stage, node.key, "failed", False, 0.0, {}, {},
                            error=f"system failure after retries: {type(exc).__name__}: {str(exc)[:500]}",
                            traceback=str(exc))


def default_out() -> Path:
    """``$PTYCHO_DIST_OUT`` or ``./runs``."""
    return Path(os.environ.get("PTYCHO_DIST_OUT", "runs"))
