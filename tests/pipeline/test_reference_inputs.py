"""The reference lines object, the aberrated probe and the .npz probe through the simulate stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho_dist import physics
from ptycho_dist.pipeline import StageContext, run_scenario_inline
from ptycho_dist.pipeline.stages import make_object, make_positions, make_probe
from ptycho_dist.storage.outputs import SimulatedData
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, parse_study, scenario_keys

SPEC = """
[base.object]
size = 96
{object}
[base.probe]
n = 32
{probe}
[base.scan]
kind = "{scan}"
step = 8.0
n_positions = 20
[base.stitch]
crop = 16
"""


def _scenario(object_: str = "", probe: str = "", scan: str = "random") -> Scenario:
    return parse_study(SPEC.format(object=object_, probe=probe, scan=scan), source="<test>").scenarios[0]


def _simulate(tmp_path: Path, s: Scenario) -> tuple[list, StageContext]:  # type: ignore[type-arg]
    layout = RunLayout(tmp_path / "run")
    layout.initialize(parse_study("", source="<test>"), scenario_ids=[scenario_keys(s).scenario])
    ctx = StageContext(layout.root)
    return run_scenario_inline(ctx, s), ctx


@pytest.mark.parametrize("scan", ["random", "grid"])
def test_lines_are_normalized_over_the_simulated_patches(tmp_path: Path, scan: str) -> None:
    s = _scenario('kind = "ptychopinn_lines"', scan=scan)
    outcomes, ctx = _simulate(tmp_path, s)
    assert outcomes[0].status == "ok", outcomes[0].error
    sim = ctx.layout.outputs.read("simulate", scenario_keys(s).simulate, SimulatedData)
    amplitude = np.abs(sim.object)
    # the mean per-patch maximum over the positions the stage actually scanned is 1
    assert physics.mean_patch_max(amplitude, sim.positions, n=32) == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.angle(sim.object) == 0)


def test_make_object_lines_and_tanh_phase() -> None:
    s = _scenario('kind = "ptychopinn_lines"\nlines_phase = "tanh"\nn_lines = 50')
    rng = np.random.default_rng(3)
    obj = make_object(s, rng)
    positions = make_positions(s, obj.shape, rng)  # the draws continue exactly where make_object left off
    amplitude = np.abs(obj).astype(np.float64)
    assert physics.mean_patch_max(amplitude, positions, n=32) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.angle(obj), physics.reference_tanh_phase(amplitude), atol=1e-5)


def test_aberrated_probe_is_seeded_by_its_own_field() -> None:
    a, factor = make_probe(_scenario(probe='kind = "aberrated"'))
    assert physics.probe_statistics(a)["probe_mean_abs_in_mask"] == pytest.approx(0.25, rel=1e-5)
    b, _ = make_probe(_scenario(probe='kind = "aberrated"\naberration_seed = 1'))
    assert physics.rotation_asymmetry(a) > 0.5 and not np.array_equal(a, b) and factor > 0
    expected = physics.aberrated_probe(32, rng=0)
    np.testing.assert_allclose(a, physics.normalize_probe(expected)[0], rtol=1e-6)


def test_npz_probe_is_read_and_normalized(tmp_path: Path) -> None:
    guess = physics.aberrated_probe(32, rng=5).astype(np.complex128) * 3.0
    path = tmp_path / "ptychopinn.npz"
    np.savez(path, probeGuess=guess, xcoords=np.zeros(4), ycoords=np.zeros(4))
    probe, factor = make_probe(_scenario(probe=f'kind = "npz"\npath = "{path}"'))
    np.testing.assert_allclose(probe, physics.normalize_probe(guess)[0], rtol=1e-6)
    raw, one = make_probe(_scenario(probe=f'kind = "npz"\npath = "{path}"\nnormalize = false'))
    assert one == 1.0 and raw.dtype == np.complex64
    np.testing.assert_allclose(raw, guess, rtol=1e-6)


def test_missing_npz_is_a_failed_row_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not_there.npz"
    outcomes, _ = _simulate(tmp_path, _scenario(probe=f'kind = "npz"\npath = "{path}"'))
    assert outcomes[-1].stage == "simulate" and outcomes[-1].status == "failed"
    assert f"probe.path: {path}: no such file" in (outcomes[-1].error or "")
