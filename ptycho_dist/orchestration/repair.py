"""``ptycho-dist verify``: check every stored array, bundle and table part of a run; ``--repair`` fixes them.

:func:`verify_run` checks (without writing anything):

- every stage output in ``arrays.zarr`` (and the model bundle of every ``train`` output): the completion
  marker, the files against its manifest, and with ``deep`` every chunk's CRC32C and every bundle
  file's SHA-256 (:meth:`~ptycho_dist.storage.arrays.ArrayStore.check`);
- that every node of a committed ``ok`` scenario, and of every committed pair, still has its output
  (``missing`` otherwise), from the plan of the study recorded in ``study.json``;
- every table part against its unit's commit record (size; with ``deep`` SHA-256 and a full read with
  parquet page checksums), and the parts the records list (:meth:`~ptycho_dist.storage.tables.TableStore.check`).

:func:`repair_run`, holding the run lock, removes the damaged stage outputs, recomputes those that
committed results need (the normal scheduler on the study recorded in the run: cache hits for
everything intact, Ray only when something must be computed; the tables are not rewritten, the
recomputed outputs being the same, content-addressed ones), and commits again every unit whose table
parts are damaged, from the outcomes stored with its stage outputs (its rows are the rows it had,
run fields included, taken from its commit record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ptycho_dist.orchestration.driver import RunOptions, RunSummary, compact_run, run_plan, terminate_on_sigterm
from ptycho_dist.storage.arrays import OutputCheck
from ptycho_dist.storage.lock import RunLock
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import RUN_TABLES, RUN_UNIT, PartCheck, TableStore
from ptycho_dist.study import Study, build_plan
from ptycho_dist.study.plan import NodeId, Plan, PlanNode

__all__ = ["VerifyReport", "verify_run", "repair_run", "RepairResult", "DAMAGED"]

#: states that make an output or a part damaged
DAMAGED = ("corrupt", "missing", "unfinished")


@dataclass
class VerifyReport:
    """What :func:`verify_run` found: one check per stage output and per table part."""

    run_dir: Path
    outputs: list[OutputCheck] = field(default_factory=list)
    parts: list[PartCheck] = field(default_factory=list)
    deep: bool = True

    @property
    def damaged_outputs(self) -> list[OutputCheck]:
        return [c for c in self.outputs if c.state in DAMAGED]

    @property
    def damaged_parts(self) -> list[PartCheck]:
        return [c for c in self.parts if c.state in DAMAGED]

    @property
    def ok(self) -> bool:
        return not self.damaged_outputs and not self.damaged_parts

    def by_stage(self) -> dict[str, Counter[str]]:
        """Stage -> counts of states (ok, unverified, corrupt, missing, unfinished)."""
        out: dict[str, Counter[str]] = {}
        for c in self.outputs:
            out.setdefault(c.stage, Counter())[c.state] += 1
        return out

    def by_table(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for c in self.parts:
            out.setdefault(c.table, Counter())[c.state] += 1
        return out


def _study(layout: RunLayout) -> Study:
    info = layout.read_study_json(full=True)
    return Study.from_dict(info["spec"], source=str(info.get("source", layout.study_json)))


def _expected_nodes(study: Study, layout: RunLayout) -> tuple[Plan, set[NodeId]]:
    """The full plan of the recorded study, and the nodes whose outputs committed results rely on:
    every node of a committed ``ok`` scenario and of every committed pair."""
    plan = build_plan(study)
    tables = layout.tables
    ok_ids = {r["scenario_id"] for r in tables.status_rows(skip=_unreadable(tables)) if r["status"] == "ok"}
    pairs = tables.pair_ids()
    expected: set[NodeId] = set()
    for unit in plan.units:
        if (unit.kind == "scenario" and unit.id in ok_ids) or (unit.kind == "pair" and unit.id in pairs):
            expected.update(unit.nodes)
    return plan, expected


def _unreadable(tables: TableStore) -> set[str]:
    """Units whose ``scenarios`` part cannot be read (left out of the committed rows)."""
    return {u for c in tables.check(deep=False) if c.table == "scenarios" and c.state in DAMAGED for u in c.affected}


def verify_run(run_dir: str | Path, *, deep: bool = True) -> VerifyReport:
    """Check every stage output and table part of the run at ``run_dir`` (nothing is written)."""
    layout = RunLayout(Path(run_dir))
    study = _study(layout)
    report = VerifyReport(layout.root, deep=deep)
    outputs = layout.outputs
    present = set(layout.arrays.outputs())
    for stage, key in sorted(present):
        report.outputs.append(outputs.check(stage, key, deep=deep))
    _, expected = _expected_nodes(study, layout)
    for stage, key in sorted(expected - present):
        report.outputs.append(OutputCheck(stage, key, "missing",
                                          f"arrays.zarr/{stage}/{key}: missing (committed results use it)"))
    report.parts = layout.tables.check(deep=deep)
    return report


@dataclass
class RepairResult:
    """What :func:`repair_run` did, and the verification after it."""

    removed: list[str]
    recomputed: int
    recommitted: list[str]
    before: VerifyReport
    after: VerifyReport
    expectations_damaged: bool = False


def _restricted_plan(full: Plan, units: Iterable[str], recompute: Iterable[NodeId]) -> Plan:
    """The part of ``full`` that commits ``units`` again and recomputes the nodes ``recompute`` (with
    their ancestors, cache hits when intact); children outside it are cut."""
    wanted = set(units)
    chosen = [u for u in full.units if u.id in wanted]
    needed: set[NodeId] = set()
    stack = [n for u in chosen for n in u.nodes] + [n for n in recompute if n in full.nodes]
    while stack:
        nid = stack.pop()
        if nid not in needed:
            needed.add(nid)
            stack.extend(full.nodes[nid].parents)
    nodes = {nid: PlanNode(full.nodes[nid].task, list(full.nodes[nid].parents),
                           [c for c in full.nodes[nid].children if c in needed]) for nid in needed}
    return Plan(nodes, chosen, set())


def repair_run(run_dir: str | Path, options: RunOptions = RunOptions()) -> RepairResult:
    """Repair the run at ``run_dir`` (see the module docstring); holds the run lock meanwhile."""
    layout = RunLayout(Path(run_dir))
    study = _study(layout)  # before the lock: a folder that is not a run is not locked
    with terminate_on_sigterm(), RunLock(layout.root, break_stale=options.break_lock, notify=options.notify,
                                         command="ptycho-dist verify --repair"):
        before = verify_run(layout.root, deep=True)
        layout.arrays.clear_staging()
        removed = []
        for c in before.damaged_outputs:
            if c.state != "missing" and layout.outputs.remove(c.stage, c.key):
                removed.append(f"arrays.zarr/{c.stage}/{c.key}")
        full, expected = _expected_nodes(study, layout)
        recompute = {(c.stage, c.key) for c in before.damaged_outputs} & expected
        units = {u for c in before.damaged_parts for u in c.affected}
        expectations = any(c.table in RUN_TABLES or RUN_UNIT in c.affected for c in before.damaged_parts)
        if expectations:
            for table in RUN_TABLES:
                layout.tables.remove_run_table(table)  # re-evaluated by `check` (the CLI does it)
        known = {u.id for u in full.units}
        for unit in sorted(units - known - {RUN_UNIT, "run"}):  # a unit of another study version
            layout.tables.remove_unit(unit)
            removed.append(f"the rows of {unit}")
        plan = _restricted_plan(full, units & known, recompute)
        summary = RunSummary(layout.root)
        if plan.nodes:
            run_plan(study, plan, layout, options, summary)
        compact_run(layout)
        after = verify_run(layout.root, deep=True)
        return RepairResult(removed, sum(summary.stages_run.values()), sorted(u.id for u in plan.units),
                            before, after, expectations)
