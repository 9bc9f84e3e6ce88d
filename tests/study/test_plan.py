"""The stage registry and the DAG derived from it (pure: no storage, no Ray)."""

from __future__ import annotations

import pytest

from ptycho_dist.study import parse_study, scenario_keys, scenario_tasks, stage_key
from ptycho_dist.study.plan import build_plan, find_pairs, pair_keys, stage_counts
from ptycho_dist.study.registry import REGISTRY, STAGES, pair_tables, stage_def, stage_names
from ptycho_dist.study.spec import ModelSpec, Scenario

SPEC = """
[base.probe]
n = 32
[base.object]
size = 96
[axes]
"grouping.gridsize" = [1, 2]
"model.backend" = ["oracle", "torch", "tf"]
"""


def test_registry_order_scopes_and_routing() -> None:
    assert STAGES == ("simulate", "group", "oracle", "train", "infer", "stitch", "iterative", "evaluate", "transplant",
                      "parity")
    assert stage_names("data") == ("simulate", "group")
    assert stage_names("pair") == ("transplant", "parity")
    assert pair_tables() == ("parity",)
    assert {d.resources for d in REGISTRY if d.name in ("train", "infer", "transplant")} == {"model"}
    assert stage_def("transplant").runs_on == "b"  # a's bundle runs in b's backend's worker pool
    with pytest.raises(KeyError, match="no stage 'nope'; known: simulate, group"):
        stage_def("nope")


def test_arm_chains_pick_their_alternatives() -> None:
    oracle, torch = Scenario(), Scenario(model=ModelSpec(backend="torch"))
    assert [t.stage for t in scenario_tasks(oracle)] == ["simulate", "group", "oracle", "stitch", "evaluate"]
    tasks = {t.stage: t for t in scenario_tasks(torch)}
    assert list(tasks) == ["simulate", "group", "train", "infer", "stitch", "evaluate"]
    k = scenario_keys(torch)
    # several parents, each under its role; the prediction of a model arm comes from infer
    assert tasks["evaluate"].inputs == {"reconstruction": (("stitch", k.stitch),), "data": (("simulate", k.simulate),),
                                        "groups": (("group", k.group),), "prediction": (("infer", k.infer),)}
    assert tasks["infer"].inputs["model"] == (("train", k.train),)
    # the key is the registry's: stage, version, spec fields, upstream keys in input order
    assert k.infer == stage_key("infer", {"backend": "torch", "relative_sign": 1, "model_probe": "data",
                                          "infer_ignores_scale": False}, [k.train, k.simulate, k.group])
    assert k.oracle is None and scenario_keys(oracle).train is None


def test_task_round_trips_as_plain_data() -> None:
    from ptycho_dist.study.plan import StageTask

    task = scenario_tasks(Scenario(model=ModelSpec(backend="tf")))[-1]
    assert StageTask.from_dict(task.to_dict()) == task


def test_plan_shares_nodes_and_has_pair_units() -> None:
    study = parse_study(SPEC, source="<t>")
    plan = build_plan(study)
    counts = stage_counts(study)
    assert counts == {"simulate": 1, "group": 2, "oracle": 2, "train": 4, "infer": 4, "stitch": 6, "iterative": 0,
                      "evaluate": 6, "transplant": 4, "parity": 2}
    assert [u.kind for u in plan.units].count("scenario") == 6 and [u.kind for u in plan.units].count("pair") == 2
    pair = next(u for u in plan.units if u.kind == "pair")
    a, b = pair.arms
    pk = pair_keys(a, b)
    parity = plan.nodes[("parity", pk.parity)]
    assert ("transplant", pk.transplant_ab) in parity.parents and ("transplant", pk.transplant_ba) in parity.parents
    assert ("evaluate", pk.a.evaluate) in parity.parents and ("evaluate", pk.b.evaluate) in parity.parents
    assert len(parity.parents) == 10
    # a's bundle with b's backend: the transplant node reads a's train, b's worker pool runs it
    ab = plan.nodes[("transplant", pk.transplant_ab)]
    assert ab.task.inputs["model"] == (("train", pk.a.train),) and ab.task.partner.model.backend == "tf"
    assert set(pair.nodes) == {("transplant", pk.transplant_ab), ("transplant", pk.transplant_ba),
                               ("parity", pk.parity)}
    assert pk.pair_id == pk.parity[:16]
    # every edge is recorded both ways
    for nid, node in plan.nodes.items():
        for parent in node.parents:
            assert nid in plan.nodes[parent].children


def test_finished_work_leaves_the_plan() -> None:
    study = parse_study(SPEC, source="<t>")
    ids = {u.id: u for u in build_plan(study).units}
    scen = [i for i, u in ids.items() if u.kind == "scenario"]
    pairs = [i for i, u in ids.items() if u.kind == "pair"]
    done = build_plan(study, committed=dict.fromkeys(scen, "ok"), pairs_done=pairs)
    assert done.units == [] and done.nodes == {} and done.done_ids == set(scen)
    # arms finished, pairs not: the pair units remain with the arm nodes they read (cache hits)
    half = build_plan(study, committed=dict.fromkeys(scen, "ok"))
    assert [u.kind for u in half.units] == ["pair", "pair"]
    assert {stage for stage, _ in half.nodes} == {"simulate", "group", "train", "infer", "stitch", "evaluate",
                                                 "transplant", "parity"}
    # a failed scenario is planned again
    again = build_plan(study, committed={scen[0]: "failed"}, pairs_done=pairs)
    assert [u.id for u in again.units if u.kind == "scenario"] == scen


def test_pairs_need_matching_arms() -> None:
    study = parse_study(SPEC.replace('"model.backend" = ["oracle", "torch", "tf"]',
                                     '"model.backend" = ["oracle", "torch"]'), source="<t>")
    assert find_pairs(study.scenarios) == []
    assert all(u.kind == "scenario" for u in build_plan(study).units)


HELD_OUT = """
[base.probe]
n = 32
[base.object]
size = 96
[base.model]
backend = "torch"
[base.data]
train_objects = 2
test_objects = 1
[base.data.test_scan]
step = 12.0
"""


def test_held_out_objects_are_their_own_datasets() -> None:
    s = parse_study(HELD_OUT, source="<t>").scenarios[0]
    tasks = scenario_tasks(s)
    by = {(t.stage, t.dataset): t for t in tasks}
    assert sorted(by) == sorted([("simulate", "train:0"), ("simulate", "train:1"), ("simulate", "test:0"),
                                 ("group", "train:0"), ("group", "train:1"), ("group", "test:0"), ("train", ""),
                                 ("infer", "train:0"), ("infer", "test:0"), ("stitch", "train:0"),
                                 ("stitch", "test:0"), ("evaluate", "train:0"), ("evaluate", "test:0")])
    # the model trains on both training objects; the test inference has two parents: bundle and test groups
    train = by["train", ""]
    assert train.inputs["data"] == (by["simulate", "train:0"].node_id, by["simulate", "train:1"].node_id)
    infer = by["infer", "test:0"]
    assert infer.inputs["model"] == (train.node_id,) and infer.inputs["groups"] == (by["group", "test:0"].node_id,)
    # three different draws; the first training object is the one a scenario without held-out data uses
    sims = {by["simulate", d].key for d in ("train:0", "train:1", "test:0")}
    assert len(sims) == 3
    plain = parse_study(HELD_OUT.split("[base.data]")[0], source="<t>").scenarios[0]
    assert scenario_keys(plain).simulate == by["simulate", "train:0"].key
    # the test object's scan enters its key (another scan: another key)
    other = parse_study(HELD_OUT.replace("step = 12.0", "step = 16.0"), source="<t>").scenarios[0]
    other_by = {(t.stage, t.dataset): t for t in scenario_tasks(other)}
    assert other_by["simulate", "test:0"].key != by["simulate", "test:0"].key
    assert other_by["simulate", "train:1"].key == by["simulate", "train:1"].key
    # the scenario row and the pair stages use the test object
    k = scenario_keys(s)
    assert k.evaluate == by["evaluate", "test:0"].key and k.simulate == by["simulate", "test:0"].key
    assert len(k.chain()) == len(tasks) == 13
    order = [t.stage for t in tasks]
    assert order.index("train") > max(i for i, st in enumerate(order) if st == "group")


def test_held_out_spec_rules() -> None:
    from ptycho_dist.errors import SpecError

    with pytest.raises(SpecError, match="test_scan is set but test_objects = 0"):
        parse_study("[base.data.test_scan]\nstep = 4.0\n", source="t.toml")
    with pytest.raises(SpecError, match="a measured dataset .* is one training object"):
        parse_study('[base.data]\nsource = "npz"\npath = "x.npz"\ntest_objects = 1\n', source="t.toml")
