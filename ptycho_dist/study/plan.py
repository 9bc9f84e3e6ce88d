"""The DAG of a study, derived from the stage registry (pure: no I/O, no Ray).

Every node is one stage output, identified by ``(stage, key)``; a node may have several parents (the
registry's inputs). Nodes that several scenarios share (the simulation and grouping of one data point,
shared by all of its arms) appear once. A *unit* is what the runner commits to the result tables when
all of its nodes are resolved: a scenario (its data- and arm-scope nodes) or a pair of arms (its
pair-scope nodes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ptycho_dist.study.keys import pair_signature, scenario_id, stage_key
from ptycho_dist.study.registry import REGISTRY, STAGES, ArmRef, StageDef, stage_def, stage_names
from ptycho_dist.study.spec import Scenario
from ptycho_dist.study.study import Study

__all__ = ["TRAIN0", "training_datasets", "evaluation_datasets", "primary_dataset", "NodeId", "StageTask", "ScenarioKeys", "PairKeys", "PlanNode", "Unit", "Plan", "Planner",
           "scenario_keys", "scenario_tasks", "pair_keys", "find_pairs", "build_plan", "stage_counts"]

#: a node of the DAG: (stage name, key)
NodeId = tuple[str, str]


@dataclass(frozen=True)
class StageTask:
    """What one node runs, as plain data a worker receives.

    Attributes
    ----------
    stage, key : str
        The stage and the key of its output.
    arms : tuple of Scenario
        ``(a,)`` for data- and arm-scope stages (for a data-scope node: the first scenario that
        needs it; every scenario sharing the key agrees on the fields that matter), ``(a, b)`` for
        pair-scope stages.
    inputs : mapping
        Role (the registry's :attr:`~ptycho_dist.study.registry.Input.role`) -> the (stage, key) of
        each upstream output it names: one, or one per training dataset for a ``training`` input.
    dataset : str
        The dataset a per-dataset node works on (``train:0``, ``train:1`` … the training objects,
        ``test:0`` … the held-out test objects); ``""`` for a node that runs once per scenario or pair.
    """

    stage: str
    key: str
    arms: tuple[Scenario, ...]
    inputs: Mapping[str, tuple[NodeId, ...]]
    dataset: str = ""

    @property
    def scenario(self) -> Scenario:
        """The node's own arm (arm ``a``)."""
        return self.arms[0]

    @property
    def partner(self) -> Scenario:
        """Arm ``b`` of a pair-scope node."""
        if len(self.arms) < 2:
            raise ValueError(f"stage {self.stage!r} is not a pair-scope stage: it has no partner arm")
        return self.arms[1]

    @property
    def definition(self) -> StageDef:
        return stage_def(self.stage)

    @property
    def node_id(self) -> NodeId:
        return (self.stage, self.key)

    @property
    def is_test(self) -> bool:
        """True on a held-out test dataset."""
        return self.dataset.startswith("test:")

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "arms": [s.to_dict() for s in self.arms],
                "inputs": {role: [list(ref) for ref in refs] for role, refs in self.inputs.items()},
                "dataset": self.dataset}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageTask:
        return cls(str(data["stage"]), str(data["key"]), tuple(Scenario.from_dict(a) for a in data["arms"]),
                   {role: tuple((str(r[0]), str(r[1])) for r in refs) for role, refs in data["inputs"].items()},
                   str(data.get("dataset", "")))


@dataclass(frozen=True)
class ScenarioKeys:
    """The keys of one scenario's data- and arm-scope stages (stages that do not apply are absent).

    ``keys.simulate``, ``keys.train`` … read the key of a stage on the scenario's primary evaluation
    dataset (None when the stage does not apply to the arm); ``nodes`` lists every node of the
    scenario (all of its datasets) in execution order.
    """

    scenario: str
    stages: Mapping[str, str]
    nodes: tuple[NodeId, ...]

    def __getattr__(self, name: str) -> str | None:
        if name in STAGES:
            return self.stages.get(name)
        raise AttributeError(name)

    def chain(self) -> list[NodeId]:
        """Every (stage, key) of the scenario in execution order."""
        return list(self.nodes)

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "stages": dict(self.stages), "nodes": [list(n) for n in self.nodes]}


@dataclass(frozen=True)
class PairKeys:
    """Keys of the pair-scope nodes comparing arm ``a`` with arm ``b``."""

    pair_id: str
    a: ScenarioKeys
    b: ScenarioKeys
    nodes: Mapping[NodeId, tuple[str, str]]  # pair-scope node -> (stage, which ordered pair: "ab"/"ba")

    def key(self, stage: str, order: str = "ab") -> str:
        """Key of the pair-scope ``stage`` on ``(a, b)`` (``order="ab"``) or ``(b, a)``."""
        for (st, key), (_, o) in self.nodes.items():
            if st == stage and o == order:
                return key
        raise KeyError(f"pair {self.pair_id}: no {stage!r} node for order {order!r}")

    @property
    def transplant_ab(self) -> str:
        return self.key("transplant", "ab")

    @property
    def transplant_ba(self) -> str:
        return self.key("transplant", "ba")

    @property
    def parity(self) -> str:
        return self.key("parity", "ab")


@dataclass
class PlanNode:
    """A node of the DAG with its edges."""

    task: StageTask
    parents: list[NodeId] = field(default_factory=list)
    children: list[NodeId] = field(default_factory=list)


@dataclass(frozen=True)
class Unit:
    """What is committed to the tables at once: a scenario or a pair of arms."""

    kind: Literal["scenario", "pair"]
    id: str
    nodes: tuple[NodeId, ...]
    arms: tuple[Scenario, ...]
    keys: Mapping[str, str] = field(default_factory=dict)
    """Stage -> key on the primary dataset (the ``key_<stage>`` columns of a scenario)."""


@dataclass
class Plan:
    """The DAG of the work still to do, and the units it commits."""

    nodes: dict[NodeId, PlanNode]
    units: list[Unit]
    done_ids: set[str]

    def roots(self) -> list[PlanNode]:
        return [n for n in self.nodes.values() if not n.parents]


def _field(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value[part]
    return value


#: the first training dataset: the one a scenario without held-out objects is evaluated on
TRAIN0 = "train:0"


def training_datasets(s: Scenario) -> list[str]:
    """``train:0`` … ``train:K-1`` (K = ``data.train_objects``)."""
    return [f"train:{i}" for i in range(s.data.train_objects)]


def evaluation_datasets(s: Scenario) -> list[str]:
    """The datasets the arm is evaluated on: the first training object, then every test object."""
    return [TRAIN0] + [f"test:{j}" for j in range(s.data.test_objects)]


def primary_dataset(s: Scenario) -> str:
    """The dataset whose keys the ``scenarios`` row and the pair stages use: the first test object
    when there are any, else the first training object."""
    return "test:0" if s.data.test_objects else TRAIN0


def _select(arms: tuple[Scenario, ...], ref: ArmRef) -> tuple[Scenario, ...]:
    return {"a": arms[:1], "b": arms[1:2], "ab": arms, "ba": arms[::-1]}[ref]


class Planner:
    """Resolves registry stages on arms into keyed nodes (memoized), recording the DAG edges."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, PlanNode] = {}
        self._memo: dict[tuple[str, tuple[str, ...], str], StageTask | None] = {}
        self._dicts: dict[str, dict[str, Any]] = {}
        self._ids: dict[int, tuple[Scenario, str]] = {}  # holds the scenario: its id() stays unique

    def _id(self, s: Scenario) -> str:
        hit = self._ids.get(id(s))
        if hit is None:
            hit = self._ids[id(s)] = (s, scenario_id(s))
            self._dicts[hit[1]] = s.to_dict()
        return hit[1]

    @staticmethod
    def applies(d: StageDef, arms: tuple[Scenario, ...]) -> bool:
        """Whether stage ``d`` exists for ``arms`` (its backends, and the arity of its scope)."""
        if (len(arms) == 2) != (d.scope == "pair"):
            return False
        return d.arms is None or all(s.model.backend in d.arms for s in arms)

    def node(self, stage: str, arms: tuple[Scenario, ...], dataset: str = TRAIN0) -> StageTask | None:
        """The task of ``stage`` on ``arms`` and ``dataset`` (None when the stage does not apply)."""
        d = stage_def(stage)
        ds = dataset if d.per_dataset else ""
        memo_key = (stage, tuple(self._id(s) for s in arms), ds)
        if memo_key in self._memo:
            return self._memo[memo_key]
        task = self._resolve(d, arms, ds) if self.applies(d, arms) else None
        self._memo[memo_key] = task
        return task

    def _inputs(self, d: StageDef, arms: tuple[Scenario, ...], ds: str) -> dict[str, tuple[NodeId, ...]]:
        inputs: dict[str, tuple[NodeId, ...]] = {}
        for inp in d.inputs:
            sub = _select(arms, inp.arm)
            if inp.training:
                datasets = training_datasets(sub[0])
            else:
                datasets = [ds] if d.per_dataset else [primary_dataset(sub[0])]
            refs = []
            for x in datasets:
                up = next((t for st in inp.stages if (t := self.node(st, sub, x)) is not None), None)
                if up is None and inp.optional:
                    continue
                if up is None:
                    raise ValueError(f"stage {d.name!r}: no stage among {inp.stages} for input {inp.role!r} "
                                     f"of arm(s) {[s.model.backend for s in sub]}")
                refs.append(up.node_id)
            if refs or not inp.optional:
                inputs[inp.role] = tuple(refs)
        return inputs

    def _spec(self, d: StageDef, arms: tuple[Scenario, ...], ds: str) -> dict[str, Any]:
        dicts = [self._dicts[self._id(s)] for s in arms]
        spec = {name: _field(dicts[1] if path.startswith("b:") else dicts[0], path.removeprefix("b:"))
                for name, path in d.spec.items()}
        spec = {name: v for name, v in spec.items()
                if not (name in d.spec_defaults and v == d.spec_defaults[name])}
        if ds.startswith("test:"):
            spec |= {name: v for name, path in d.test_spec.items() if (v := _field(dicts[0], path)) is not None}
        if ds not in ("", TRAIN0) and not d.inputs:  # another draw: a root stage names its dataset
            spec["dataset"] = ds
        return spec

    def _resolve(self, d: StageDef, arms: tuple[Scenario, ...], ds: str) -> StageTask:
        inputs = self._inputs(d, arms, ds)
        refs = [ref for group in inputs.values() for ref in group]
        key = stage_key(d.name, self._spec(d, arms, ds), [ref[1] for ref in refs])
        task = StageTask(d.name, key, arms, inputs, ds)
        node = self.nodes.setdefault(task.node_id, PlanNode(task))
        for ref in refs:
            if ref not in node.parents:
                node.parents.append(ref)
                self.nodes[ref].children.append(task.node_id)
        return task

    def scenario_tasks(self, s: Scenario) -> list[StageTask]:
        """Every data- and arm-scope task of scenario ``s`` (all of its datasets), in execution order:
        the arm-scope stages on each evaluation dataset and everything they read."""
        arm = (s,)
        tops = [t for ds in evaluation_datasets(s) for st in stage_names("data", "arm")
                if (t := self.node(st, arm, ds)) is not None]
        seen: dict[NodeId, StageTask] = {}
        stack = [t.node_id for t in tops]
        while stack:
            nid = stack.pop()
            if nid not in seen:
                seen[nid] = self.nodes[nid].task
                stack.extend(self.nodes[nid].parents)
        order = {st: i for i, st in enumerate(STAGES)}
        rank = {ds: i for i, ds in enumerate(training_datasets(s) + evaluation_datasets(s)[1:])}
        return sorted(seen.values(), key=lambda t: (order[t.stage], rank.get(t.dataset, -1)))

    def scenario_keys(self, s: Scenario) -> ScenarioKeys:
        tasks = self.scenario_tasks(s)
        primary = primary_dataset(s)
        stages = {t.stage: t.key for t in tasks if t.dataset in ("", primary)}
        return ScenarioKeys(self._id(s), stages, tuple(t.node_id for t in tasks))

    def pair_keys(self, a: Scenario, b: Scenario) -> PairKeys:
        """Keys of the pair-scope nodes of ``(a, b)``: the pair-scope stages on ``(a, b)`` and the
        pair-scope nodes they read (e.g. the transplant of ``(b, a)``). The pair id is the first 16
        hex digits of the key of the last pair-scope stage (``parity``)."""
        tops = [t for d in REGISTRY if d.scope == "pair" and (t := self.node(d.name, (a, b), primary_dataset(a)))
                is not None]
        if not tops:
            raise ValueError(f"no pair-scope stage applies to arms {a.model.backend!r} and {b.model.backend!r}")
        a_id = self._id(a)
        nodes: dict[NodeId, tuple[str, str]] = {}
        stack = [t.node_id for t in tops]
        while stack:
            nid = stack.pop()
            if nid in nodes or stage_def(nid[0]).scope != "pair":
                continue
            task = self.nodes[nid].task
            nodes[nid] = (nid[0], "ab" if self._id(task.arms[0]) == a_id else "ba")
            stack.extend(self.nodes[nid].parents)
        return PairKeys(tops[-1].key[:16], self.scenario_keys(a), self.scenario_keys(b), nodes)


def scenario_keys(s: Scenario) -> ScenarioKeys:
    """Every data- and arm-scope stage key of scenario ``s``."""
    return Planner().scenario_keys(s)


def scenario_tasks(s: Scenario) -> list[StageTask]:
    """The data- and arm-scope tasks of scenario ``s`` in execution order (each input precedes its
    readers), e.g. to run one scenario in this process."""
    return Planner().scenario_tasks(s)


def pair_keys(a: Scenario, b: Scenario) -> PairKeys:
    """Keys of the pair-scope stages of arms ``a`` and ``b``."""
    return Planner().pair_keys(a, b)


def find_pairs(scenarios: Iterable[Scenario]) -> list[tuple[Scenario, Scenario]]:
    """Pairs (torch arm, tf arm) that share data, grouping, architecture and training."""
    by_signature: dict[str, list[Scenario]] = defaultdict(list)
    for s in scenarios:
        sig = pair_signature(s)
        if sig is not None:
            by_signature[sig].append(s)
    pairs = []
    for group in by_signature.values():
        torch_arms = [s for s in group if s.model.backend == "torch"]
        tf_arms = [s for s in group if s.model.backend == "tf"]
        pairs += [(a, b) for a in torch_arms for b in tf_arms]
    return pairs


def build_plan(study: Study, *, committed: Mapping[str, str] | None = None,
               pairs_done: Iterable[str] = ()) -> Plan:
    """The DAG of what remains of ``study``.

    Parameters
    ----------
    committed : mapping, optional
        scenario id -> recorded status; scenarios recorded ``ok`` or ``diverged`` are done.
    pairs_done : iterable of str
        Pair ids whose rows are already written.
    """
    committed = committed or {}
    done_pairs = set(pairs_done)
    planner = Planner()
    units: list[Unit] = []
    done: set[str] = set()
    seen: set[str] = set()
    for s in study.scenarios:
        keys = planner.scenario_keys(s)
        if committed.get(keys.scenario) in ("ok", "diverged"):
            done.add(keys.scenario)
            continue
        if keys.scenario not in seen:
            seen.add(keys.scenario)
            units.append(Unit("scenario", keys.scenario, tuple(keys.chain()), (s,), dict(keys.stages)))
    for a, b in find_pairs(study.scenarios):
        pk = planner.pair_keys(a, b)
        if pk.pair_id not in done_pairs:
            units.append(Unit("pair", pk.pair_id, tuple(pk.nodes), (a, b)))
    needed: set[NodeId] = set()
    stack = [n for u in units for n in u.nodes]
    while stack:
        nid = stack.pop()
        if nid not in needed:
            needed.add(nid)
            stack.extend(planner.nodes[nid].parents)
    nodes = {nid: node for nid, node in planner.nodes.items() if nid in needed}
    for node in nodes.values():
        node.children = [c for c in node.children if c in needed]
    return Plan(nodes, units, done)


def stage_counts(study: Study) -> dict[str, int]:
    """Distinct nodes per stage of the whole study: what the runner computes at most."""
    plan = build_plan(study)
    counts = dict.fromkeys(STAGES, 0)
    for stage, _ in plan.nodes:
        counts[stage] += 1
    return counts
