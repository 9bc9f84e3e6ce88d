"""The iterative arm's spec: its section, the rules that name the field, and its keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptycho_dist.cli import main
from ptycho_dist.study import Scenario, parse_study, scenario_keys
from ptycho_dist.study.registry import stage_def
from ptycho_dist.study.spec import DataSpec, IterativeSpec, ModelSpec

BASE = """
[study]
name = "it"
[base.object]
size = 96
[base.probe]
n = 32
[base.model]
backend = "ptychi"
"""


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('[base.iterative]\nalgorithm = "raar2"\n', "base.iterative.algorithm"),
        ('[base.iterative]\nalgorithm = "rpie"\nnoise_model = "poisson"\n', "base.iterative.noise_model"),
        ('[base.iterative]\nalgorithm = "dm"\nbatch_size = 8\n', "base.iterative.batch_size"),
        ('[base.iterative]\nalgorithm = "dm"\nstep_size = 0.5\n', "base.iterative.step_size"),
        ('[base.iterative]\nprobe_init = "file"\n', "base.iterative.probe_path"),
        ('[base.iterative]\nprobe_init = "perturbed"\n', "base.iterative.refine_probe"),
        ('[base.iterative]\nprobe_modes = 2\n', "base.iterative.probe_modes"),
        ('[base.iterative]\niterations = 0\n', "base.iterative.iterations"),
        ('[base.iterative]\nlearning_rate = 1.0\n', "base.iterative: unknown key 'learning_rate'"),
        ('[base.faults]\ncollapse_offsets = true\n', "base.faults.collapse_offsets"),
        ('[axes]\n"iterative.algorithm" = ["lsqml", "bogus"]\n', 'axes."iterative.algorithm"[1]'),
    ],
)
def test_bad_iterative_input_is_exit_2_with_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      extra: str, needle: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(BASE + extra)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(spec) in err and needle in err and "Traceback" not in err


def test_valid_iterative_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "ok.toml"
    spec.write_text(BASE + '[base.iterative]\nrefine_probe = true\nprobe_init = "perturbed"\nprobe_modes = 2\n'
                    'position_correction = true\n[axes]\n"iterative.algorithm" = ["lsqml", "rpie", "epie", "pie", "dm"]\n')
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "5 scenarios" in out and "iterative" in out


def test_iterative_arm_keys_share_the_data_and_skip_stitch() -> None:
    it, oracle = Scenario(model=ModelSpec(backend="ptychi")), Scenario()
    ki, ko = scenario_keys(it), scenario_keys(oracle)
    assert ki.simulate == ko.simulate and ki.group == ko.group
    assert ki.iterative is not None and ki.stitch is None and ki.oracle is None and ki.train is None
    assert ko.iterative is None and ki.evaluate != ko.evaluate
    # the iterative stage does not depend on the grouping: gridsize arms share one reconstruction
    g2 = Scenario(model=ModelSpec(backend="ptychi"), grouping={"gridsize": 2})  # type: ignore[arg-type]
    assert scenario_keys(g2).iterative == ki.iterative and scenario_keys(g2).evaluate != ki.evaluate
    other = Scenario(model=ModelSpec(backend="ptychi"), iterative=IterativeSpec(algorithm="dm"))
    assert scenario_keys(other).iterative != ki.iterative


def test_interpolation_default_keeps_the_simulate_key() -> None:
    """data.interpolation entered the simulate key after outputs were stored: at its default it is
    left out of the payload, so every earlier key stays valid."""
    assert stage_def("simulate").spec_defaults == {"data_interpolation": "bilinear"}
    bilinear = scenario_keys(Scenario()).simulate
    fourier = scenario_keys(Scenario(data=DataSpec(interpolation="fourier"))).simulate
    assert bilinear == "91e848cd2e379569c5945e31bb0c2131da12e13070c49927f565a187769a6a4c"
    assert fourier != bilinear


def test_evaluate_of_the_iterative_arm_has_no_prediction_input() -> None:
    from ptycho_dist.study.plan import scenario_tasks

    tasks = {t.stage: t for t in scenario_tasks(Scenario(model=ModelSpec(backend="ptychi")))}
    assert set(tasks) == {"simulate", "group", "iterative", "evaluate"}
    assert set(tasks["evaluate"].inputs) == {"reconstruction", "data", "groups"}
    assert tasks["evaluate"].inputs["reconstruction"][0][0] == "iterative"
    study = parse_study(BASE, source="<t>")
    assert study.scenarios[0].model.backend == "ptychi"
