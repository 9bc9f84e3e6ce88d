"""Study files: validation messages, grid expansion, zip/exclude, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptycho_dist.errors import SpecError
from ptycho_dist.study import Scenario, Study, parse_study, study_from_dict

SRC = "studies/x.toml"


def parse(text: str) -> Study:
    return parse_study(text, source=SRC)


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse(text)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{SRC}: ")
    return msg


def test_defaults_give_one_scenario() -> None:
    study = parse("")
    assert len(study.scenarios) == 1
    assert study.scenarios[0] == Scenario()
    assert study.meta.name == "study"


def test_cartesian_product_order_and_replicates() -> None:
    study = parse(
        '[study]\nname="s"\nseed=5\nreplicates=2\n[axes]\n"dose.nphotons"=[1e4, 1e9]\n"grouping.gridsize"=[1, 2, 3]\n'
    )
    assert len(study.scenarios) == 2 * 3 * 2
    got = [(s.dose.nphotons, s.grouping.gridsize, s.replicate) for s in study.scenarios]
    assert got[:4] == [(1e4, 1, 0), (1e4, 1, 1), (1e4, 2, 0), (1e4, 2, 1)]
    assert got[-1] == (1e9, 3, 1)
    assert {s.seed for s in study.scenarios} == {5}


def test_zip_and_exclude() -> None:
    text = """
[axes]
"grouping.gridsize" = [1, 2]
exclude = [{ "grouping.gridsize" = 2, "scan.kind" = "random" }]
[[axes.zip]]
"scan.kind" = ["grid", "random"]
"scan.n_positions" = [100, 50]
"""
    study = parse(text)
    got = [(s.grouping.gridsize, s.scan.kind, s.scan.n_positions) for s in study.scenarios]
    assert got == [(1, "grid", 100), (1, "random", 50), (2, "grid", 100)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[base.grouping]\ngridsz = 2\n", "base.grouping: unknown key 'gridsz' (did you mean 'gridsize'?)"),
        ("[bse]\nx = 1\n", "<top level>: unknown key 'bse' (did you mean 'base'?)"),
        ("[study]\nnmae = 'x'\n", "study: unknown key 'nmae' (did you mean 'name'?)"),
        ("[base]\nprobes = {}\n", "base: unknown key 'probes' (did you mean 'probe'?)"),
        ("[base.dose]\nnphotons = 'lots'\n", "base.dose.nphotons: Input should be a valid number, got 'lots'"),
        ("[base.dose]\nnphotons = -5.0\n", "base.dose.nphotons: Input should be greater than 0, got -5.0"),
        ("[base.grouping]\ngridsize = 0\n", "base.grouping.gridsize: Input should be 1, 2 or 3, got 0"),
        ("[base.object]\nkind = 'potato'\n", "base.object.kind: Input should be 'lines', 'ptychopinn_lines', 'grf', 'siemens_star' or 'file', got 'potato'"),
        ("[base.scan]\nstep = 0.0\n", "base.scan.step: Input should be greater than 0, got 0.0"),
        ('[axes]\n"dose.nphotons" = []\n', 'axes."dose.nphotons": must be a non-empty list of values, got []'),
        ('[axes]\n"grouping.gridsize" = [1, 2, 4]\n', 'axes."grouping.gridsize"[2]: Input should be 1, 2 or 3, got 4'),
        ('[axes]\n"grouping.gridsise" = [1]\n', "axes.\"grouping.gridsise\": unknown field path 'grouping.gridsise' (did you mean 'grouping.gridsize'?)"),
        ('[axes]\n"probe" = [{ n = 64, radious = 3.0 }]\n', 'axes."probe"[0]: unknown key \'radious\' (did you mean \'radius\'?)'),
        ("[base.object]\nsize = 40\n", "base.object.size: must be at least probe.n + 2*scan.margin = 64, got 40"),
        ('[axes]\n"probe.n" = [16]\n', 'stitch.crop: must be at most probe.n = 16, got 20 (with probe.n = [16])'),
        ("[base.scan]\nkind = 'random'\n", "base.scan: n_positions is required for a random scan"),
        ("[study]\nname = '../etc'\n", "study.name: String should match pattern"),
        ('[axes]\nexclude = [{ "grouping.gridsize" = 3 }]\n', "axes.exclude[0]: matches no scenario"),
        ("[base]\nseed = 3\n", "base: seed and replicate are set by [study]"),
        # grid-mode grouping: clusters of a raster scan (scan.cluster = grouping.gridsize)
        ("[base.grouping]\nmode = 'grid'\ngridsize = 2\n",
         "base.grouping.gridsize: must equal scan.cluster = 1 with grouping.mode = 'grid' (a group is one "
         "cluster of the scan; set scan.cluster to the same value), got 2"),
        ("[base.grouping]\nmode = 'grid'\n[base.scan]\nkind = 'random'\nn_positions = 100\n",
         "base.scan.kind: must be 'grid' with grouping.mode = 'grid' (the groups are the clusters of a "
         "raster scan), got 'random'"),
        ("[base.scan]\nkind = 'fermat'\nn_positions = 100\ncluster = 2\n",
         "base.scan.cluster: must be 1 for a fermat scan (clusters sit on a raster grid: scan.kind = 'grid'), got 2"),
        ("[base.scan]\nn_positions = 10\ncluster = 2\n",
         "base.scan.n_positions: must be a multiple of cluster**2 = 4 with scan.cluster = 2"),
        ("[base.grouping]\nmode = 'grid'\nk_neighbors = 6\n",
         "base.grouping.k_neighbors: must be unset with grouping.mode = 'grid'"),
        ("[base.grouping]\nmode = 'squares'\n", "base.grouping.mode: Input should be 'neighbors' or 'grid', got 'squares'"),
        ("[base.object]\nsize = 66\n[base.scan]\ncluster = 2\n",
         "base.object.size: must be at least probe.n + 2*scan.margin + (scan.cluster - 1)*scan.inner_offset = 68, got 66"),
        ("[base.scan]\nstep = 42.0\ncluster = 2\n[base.grouping]\nmode = 'grid'\ngridsize = 2\nn_groups = 65\n",
         "base.grouping.n_groups: must be at most 64, the 8 x 8 clusters of the grid (object.size = 392, "
         "probe.n = 64, scan.step = 42), got 65"),
        ("[base.scan]\nn_positions = 16\ncluster = 2\n[base.grouping]\nmode = 'grid'\ngridsize = 2\nn_groups = 5\n",
         "base.grouping.n_groups: must be at most 4, the clusters of 4 among scan.n_positions = 16 positions, got 5"),
        ("[base.scan]\nn_positions = 4\ncluster = 2\n[base.grouping]\nmode = 'grid'\ngridsize = 2\n"
         "[base.model]\nbackend = 'torch'\n",
         "base.scan.n_positions: must allow at least 2 groups with training.val_fraction = 0.1 (the scan makes "
         "1 group(s), the clusters of 4 among scan.n_positions = 4 positions;"),
        ('[base.scan]\nkind = "random"\nn_positions = 100\n[axes]\n"grouping.mode" = ["neighbors", "grid"]\n',
         "scan.kind: must be 'grid' with grouping.mode = 'grid' (the groups are the clusters of a raster scan), "
         "got 'random' (with grouping.mode = ['grid'])"),
    ],
)
def test_bad_input_messages(text: str, expected: str) -> None:
    msg = error_of(text)
    assert expected in msg, msg


def test_grid_mode_defaults_and_a_valid_grid_study() -> None:
    s = parse("").scenarios[0]
    assert (s.scan.cluster, s.scan.inner_offset, s.grouping.mode) == (1, 4.0, "neighbors")
    study = parse("[base.scan]\nstep = 42.0\ncluster = 2\n[base.grouping]\nmode = 'grid'\ngridsize = 2\n"
                  "n_groups = 64\n")
    g = study.scenarios[0]
    assert (g.scan.cluster, g.grouping.mode, g.grouping.gridsize, g.grouping.n_groups) == (2, "grid", 2, 64)


def test_malformed_toml_names_file_and_position() -> None:
    msg = error_of("[study\nname='x'\n")
    assert "malformed TOML" in msg and "line 1" in msg


def test_several_errors_are_counted_on_one_line() -> None:
    msg = error_of("[base.dose]\nnphotons = -1.0\n[base.grouping]\ngridsize = 7\n")
    assert "(and 1 more error)" in msg


def test_study_dict_round_trip() -> None:
    study = parse('[study]\nname="rt"\nreplicates=2\n[axes]\n"dose.nphotons"=[1e4, 1e9]\n')
    again = Study.from_dict(json.loads(json.dumps(study.to_dict())), source=study.source)
    assert again == study


# Hypothesis: spec -> JSON -> spec is the identity.
_finite = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_infinity=False)


def _probe(sizes: list[int]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"kind": st.sampled_from(["disk", "gaussian", "zone_plate"]), "n": st.sampled_from(sizes),
         "defocus": st.floats(-50, 50), "probe_scale": _finite}
    )


def _model(backend: str, n: int) -> st.SearchStrategy[dict]:
    """The oracle arm takes any filters; a PINN arm one per encoder block (log2(N) - 3)."""
    length = {"min_size": 1, "max_size": 4} if backend == "oracle" else {
        "min_size": int(np.log2(n)) - 3, "max_size": int(np.log2(n)) - 3}
    return st.fixed_dictionaries({"backend": st.just(backend),
                                  "filters": st.one_of(st.none(), st.lists(st.integers(1, 512), **length)),
                                  "loss": st.sampled_from(["poisson", "mae"])})


def _arm(backend: str) -> st.SearchStrategy[tuple[dict, dict]]:
    sizes = [16, 32, 64, 128] if backend == "oracle" else [32, 64, 128]
    return _probe(sizes).flatmap(lambda probe: st.tuples(st.just(probe), _model(backend, probe["n"])))


scenario_dicts = st.tuples(
    st.sampled_from(["oracle", "torch", "tf"]).flatmap(_arm),
    st.fixed_dictionaries(
        {
            "object": st.fixed_dictionaries(
                {"kind": st.sampled_from(["lines", "grf", "siemens_star"]), "size": st.integers(300, 2048),
                 "amplitude_range": st.tuples(st.floats(0, 0.5), st.floats(0.5, 2.0)),
                 "n_lines": st.integers(1, 1000)}
            ),
            "dose": st.fixed_dictionaries({"nphotons": _finite, "noise": st.booleans()}),
            "grouping": st.fixed_dictionaries({"gridsize": st.sampled_from([1, 2, 3]), "k_neighbors": st.integers(8, 20),
                                               "n_groups": st.one_of(st.none(), st.integers(2, 10**4))}),
            "stitch": st.fixed_dictionaries({"crop": st.one_of(st.none(), st.integers(1, 16)),
                                             "frame": st.sampled_from(["object", "centered"])}),
            "seed": st.integers(0, 2**62),
            "replicate": st.integers(0, 100),
            # the round trip, not the memory estimate (tests/faults): a budget no size here exceeds
            "resources": st.just({"memory_gb": 1e5}),
        }
    ),
).map(lambda parts: {**parts[1], "probe": parts[0][0], "model": parts[0][1]})


@settings(max_examples=60, deadline=None)
@given(scenario_dicts)
def test_hypothesis_scenario_json_round_trip(data: dict) -> None:
    scenario = Scenario.from_dict(data)
    text = json.dumps(scenario.to_dict())
    again = Scenario.from_dict(json.loads(text))
    assert again == scenario
    assert again.to_dict() == scenario.to_dict()


def test_study_from_dict_matches_toml() -> None:
    a = parse('[study]\nname="z"\n[axes]\n"grouping.gridsize"=[1, 2]\n')
    b = study_from_dict({"study": {"name": "z"}, "axes": {"grouping.gridsize": [1, 2]}}, source=SRC)
    assert a.scenarios == b.scenarios
