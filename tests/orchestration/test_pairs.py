"""Pairing of backend arms for parity (no Ray)."""

from __future__ import annotations

from ptycho_dist.orchestration.driver import find_pairs
from ptycho_dist.study import (
    derive_seed,
    pair_keys,
    pair_signature,
    parse_study,
    scenario_keys,
    seed_cell,
)

SPEC = """
[axes]
"grouping.gridsize" = [1, 2]
[[axes.zip]]
"model.backend" = ["oracle", "torch", "tf", "tf"]
"faults.relative_sign" = [1, 1, 1, -1]
"""


def test_pairs_share_data_and_differ_in_backend() -> None:
    study = parse_study(SPEC, source="<t>")
    pairs = find_pairs(study)
    assert len(pairs) == 4  # per gridsize: torch x (tf, tf with the flipped sign)
    for a, b in pairs:
        assert a.model.backend == "torch" and b.model.backend == "tf"
        assert a.grouping == b.grouping
        pk = pair_keys(a, b)
        assert pk.a.simulate == pk.b.simulate and pk.a.group == pk.b.group
        assert pk.transplant_ab != pk.transplant_ba
    assert len({pair_keys(a, b).pair_id for a, b in pairs}) == 4


def test_training_seeds_share_data_and_a_seed_cell() -> None:
    study = parse_study(SPEC.replace("[axes]\n", '[axes]\n"training.seed" = [0, 1]\n'), source="<t>")
    arms = [s for s in study.scenarios if s.model.backend != "oracle"]
    by = {(s.grouping.gridsize, s.model.backend, s.faults.relative_sign, s.training.seed): s for s in arms}
    s0, s1 = by[1, "torch", 1, 0], by[1, "torch", 1, 1]
    k0, k1 = scenario_keys(s0), scenario_keys(s1)
    assert k0.simulate == k1.simulate and k0.group == k1.group  # same data
    assert k0.train != k1.train  # other weights, split and shuffling
    assert derive_seed(s0.seed, k0.train) != derive_seed(s1.seed, k1.train)
    assert pair_signature(s0) != pair_signature(s1)  # torch seed 0 pairs with tf seed 0 only
    cell = seed_cell(s0)
    assert cell is not None and len(cell) == 16
    assert seed_cell(s1) == seed_cell(by[1, "tf", 1, 1]) == seed_cell(by[1, "tf", -1, 0]) == cell
    assert seed_cell(by[2, "torch", 1, 0]) != cell
    assert seed_cell(next(s for s in study.scenarios if s.model.backend == "oracle")) is None
    pairs = find_pairs(study)
    assert len(pairs) == 8 and all(a.training.seed == b.training.seed for a, b in pairs)
