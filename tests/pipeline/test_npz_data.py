"""Measured data from PtychoPINN-format NPZ files: round trip of our own simulation, bad files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.cli import main
from ptycho_dist.pipeline import StageContext, run_scenario_inline
from ptycho_dist.storage.outputs import SimulatedData
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.specs import load_study
from ptycho_dist.study import parse_study, scenario_keys
from runner_specs import SMALL_BASE

SIM = SMALL_BASE + "[base.dose]\nnoise = false\n"


def _run(tmp_path: Path, text: str, name: str) -> tuple[RunLayout, list, object]:  # type: ignore[type-arg]
    study = parse_study(text, source=f"<{name}>")
    s = study.scenarios[0]
    layout = RunLayout(tmp_path / name)
    layout.initialize(study, scenario_ids=[scenario_keys(s).scenario])
    return layout, run_scenario_inline(StageContext(layout.root), s), s


def _write_npz(tmp_path: Path, sim: SimulatedData, *, with_object: bool = True, **drop: bool) -> Path:
    arrays = {"diffraction": (np.sqrt(sim.counts) / sim.scale).astype(np.float32),  # amplitudes, as PtychoPINN
              "xcoords": sim.positions[:, 0], "ycoords": sim.positions[:, 1], "probeGuess": sim.probe}
    if with_object:
        arrays["objectGuess"] = sim.object
    for key in drop:
        arrays.pop(key)
    path = tmp_path / f"data-{with_object}-{'-'.join(drop)}.npz"
    np.savez(path, **arrays)
    return path


def _simulated(tmp_path: Path) -> SimulatedData:
    layout, outcomes, s = _run(tmp_path, SIM, "sim")
    assert all(o.status == "ok" for o in outcomes)
    return layout.outputs.read("simulate", scenario_keys(s).simulate, SimulatedData)


def _npz_spec(path: Path) -> str:
    # probe.normalize = false: the file's probe is already the simulation's normalized probe
    return SIM.replace("n = 32\n", "n = 32\nnormalize = false\n") + f'[base.data]\nsource = "npz"\npath = "{path}"\n'


def test_our_simulation_written_as_npz_reads_back_the_same(tmp_path: Path) -> None:
    sim = _simulated(tmp_path)
    path = _write_npz(tmp_path, sim)
    layout, outcomes, s = _run(tmp_path, _npz_spec(path), "npz")
    assert [o.status for o in outcomes] == ["ok"] * 5, [o.error for o in outcomes]
    got = layout.outputs.read("simulate", scenario_keys(s).simulate, SimulatedData)
    # same counts (noise-free: the amplitudes squared, rescaled to the same mean total), same scale
    np.testing.assert_allclose(got.counts, sim.counts, rtol=1e-4, atol=1e-3)
    assert got.scale == pytest.approx(sim.scale, rel=1e-5)
    np.testing.assert_allclose(got.positions, sim.positions)
    np.testing.assert_allclose(np.abs(got.truth_patches - sim.truth_patches).max(), 0.0, atol=1e-5)
    assert got.has_truth
    metrics = {(r["target"], r["channel"]): r for r in outcomes[-1].rows["metrics"]}
    assert metrics[("stitched", "amplitude")]["ssim"] > 0.99  # the oracle on the file's truth


def test_without_object_guess_there_is_no_truth_and_no_metric(tmp_path: Path) -> None:
    sim = _simulated(tmp_path)
    path = _write_npz(tmp_path, sim, with_object=False)
    layout, outcomes, s = _run(tmp_path, _npz_spec(path), "noobj")
    assert [o.status for o in outcomes] == ["ok"] * 5
    got = layout.outputs.read("simulate", scenario_keys(s).simulate, SimulatedData)
    assert not got.has_truth and not np.any(got.truth_patches)
    # s for |O| = 1: sqrt(nphotons / sum |P|^2)
    assert got.scale == pytest.approx(np.sqrt(1e9 / np.sum(np.abs(sim.probe) ** 2)), rel=1e-5)
    assert outcomes[-1].rows.get("metrics", []) == []
    diag = {r["name"]: r["value"] for r in outcomes[-1].rows["diagnostics"]}
    assert diag == {"truth_available": 0.0, "evaluated_stitched": 0.0}


@pytest.mark.parametrize(("drop", "probe_n", "message"), [
    ({"xcoords": True}, 32, r"data\.path: .*missing key 'xcoords'; keys found: \['diffraction', 'objectGuess'"),
    ({"diffraction": True}, 32, r"no diffraction array \(expected key 'diffraction' or 'diff3d'\)"),
    ({}, 64, r"'diffraction' has shape \(25, 32, 32\), expected \(n, 64, 64\) for probe.n = 64"),
])
def test_bad_file_is_exit_2_at_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        drop: dict[str, bool], probe_n: int, message: str) -> None:
    sim = _simulated(tmp_path)
    path = _write_npz(tmp_path, sim, **drop)
    spec = tmp_path / "bad.toml"
    text = _npz_spec(path).replace("n = 32\n", f"n = {probe_n}\n").replace("size = 80", "size = 160")
    spec.write_text(text)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ptycho-dist validate: {spec}: base.data.path: {path}")
    assert re.search(message, err), err


def test_missing_file_is_a_failed_row_not_a_validation_error(tmp_path: Path) -> None:
    missing = tmp_path / "later.npz"
    spec = tmp_path / "later.toml"
    spec.write_text(_npz_spec(missing))
    study = load_study(spec)  # the file may be written before the run: validation passes
    layout, outcomes, _ = _run(tmp_path, _npz_spec(missing), "later")
    assert outcomes[0].stage == "simulate" and outcomes[0].status == "failed"
    assert f"data.path: {missing}: no such file" in (outcomes[0].error or "")
    assert study.scenarios[0].data.source == "npz"


def test_path_goes_with_the_npz_source() -> None:
    from ptycho_dist.errors import SpecError

    with pytest.raises(SpecError, match=r"base\.data: .*path is required when source = 'npz' and only then"):
        parse_study('[base.data]\nsource = "npz"\n', source="t.toml")
