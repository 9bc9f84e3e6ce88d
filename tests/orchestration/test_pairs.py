"""Pairing of backend arms for parity (no Ray)."""

from __future__ import annotations

from ptycho_dist.orchestration.driver import find_pairs
from ptycho_dist.study import pair_keys, parse_study

SPEC = """
[axes]
"grouping.gridsize" = [1, 2]
[[axes.zip]]
"model.backend" = ["oracle", "torch", "tf", "tf"]
"model.relative_sign" = [1, 1, 1, -1]
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
