"""The stitch- and evaluation-side fault switches (docs/faults.md), run stage by stage without Ray.

Each switch is off by default and changes nothing then; on, it reproduces the older code's failure
and the diagnostics named in docs/faults.md show it as numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptycho_dist.physics.diagnostics import legacy_canvas_side, scanned_fraction
from ptycho_dist.pipeline import StageContext, run_scenario_inline
from ptycho_dist.pipeline.base import StageOutcome
from ptycho_dist.pipeline.stages import absolute_positions, stitched_positions
from ptycho_dist.stitching import stitch
from ptycho_dist.storage.outputs import Evaluation, Groups, Prediction, Reconstruction, SimulatedData
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, parse_study, scenario_keys
from runner_specs import SMALL_BASE

#: a scan wide against the older canvas: 224 px object, N = 32, 13 x 13 grid spanning 192 px
WIDE_BASE = """
[base.object]
size = 224
[base.probe]
n = 32
[base.scan]
step = 16.0
[base.stitch]
crop = 16
"""


def _scenario(faults: str = "", gridsize: int = 1, base: str = SMALL_BASE) -> Scenario:
    text = base + f"[base.grouping]\ngridsize = {gridsize}\n" + (f"[base.faults]\n{faults}\n" if faults else "")
    return parse_study(text, source="<test>").scenarios[0]


class Ran:
    """One scenario run inline: its outcomes by stage, stored outputs and evaluate diagnostics."""

    def __init__(self, tmp_path: Path, s: Scenario) -> None:
        layout = RunLayout(tmp_path / "run")
        if not layout.root.exists():
            layout.initialize(parse_study("", source="<test>"), scenario_ids=[scenario_keys(s).scenario])
        self.ctx, self.keys = StageContext(layout.root), scenario_keys(s)
        outcomes = run_scenario_inline(self.ctx, s)
        assert all(o.status == "ok" for o in outcomes), [(o.stage, o.error) for o in outcomes]
        self.by_stage: dict[str, StageOutcome] = {o.stage: o for o in outcomes}

    def read(self, stage: str, cls: type[Any]) -> Any:
        return self.ctx.layout.outputs.read(stage, getattr(self.keys, stage), cls)

    def diag(self, stage: str = "evaluate") -> dict[str, Any]:
        return {r["name"]: r["value"] if r["text"] is None else r["text"]
                for r in self.by_stage[stage].rows.get("diagnostics", [])}

    def metrics(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["target"], r["channel"]): r for r in self.by_stage["evaluate"].rows.get("metrics", [])}


# --- off by default -----------------------------------------------------------------------------

def test_faults_off_by_default_and_explicit_defaults_are_the_same_scenario():
    plain = _scenario()
    explicit = _scenario("collapse_offsets = false\nlegacy_canvas = false\npatch_only_evaluation = false")
    assert plain.faults.active == ()
    assert scenario_keys(plain).stages == scenario_keys(explicit).stages


@pytest.mark.parametrize("gridsize", [1, 2])
def test_faults_off_stitch_at_the_true_positions_on_the_object_grid(tmp_path, gridsize):
    run = Ran(tmp_path, _scenario(gridsize=gridsize))
    sim, groups = run.read("simulate", SimulatedData), run.read("group", Groups)
    pred, rec = run.read("oracle", Prediction), run.read("stitch", Reconstruction)
    want = stitch(pred.patches, absolute_positions(groups), crop=16, shape=sim.object.shape)
    assert rec.frame == "object" and rec.canvas.shape == sim.object.shape
    np.testing.assert_array_equal(rec.canvas, want.canvas)
    d = run.diag()
    assert d["evaluated_stitched"] == 1
    assert d["stitch_kept_weight_share"] == pytest.approx(1.0, abs=1e-6)
    assert d["coverage_share"] == 1.0
    assert d["n_distinct_positions"] == 25  # every scan position of the 5 x 5 grid
    assert d["support_width"] > 16 and d["support_height"] > 16
    assert d["patch_minus_stitched_amp_ssim"] == pytest.approx(0.0, abs=1e-6)  # oracle: both perfect
    assert set(run.metrics()) == {(t, c) for t in ("stitched", "patch") for c in ("amplitude", "phase")}
    assert len(run.by_stage["evaluate"].rows["bias"]) == 1


def test_fault_switches_key_only_the_stages_they_change():
    plain = scenario_keys(_scenario()).stages
    for faults, changed in [("collapse_offsets = true", {"stitch", "evaluate"}),
                            ("legacy_canvas = true", {"stitch", "evaluate"}),
                            ("patch_only_evaluation = true", {"evaluate"})]:
        keys = scenario_keys(_scenario(faults)).stages
        assert {st for st in plain if plain[st] != keys[st]} == changed, faults


# --- collapse_offsets ----------------------------------------------------------------------------

@pytest.mark.parametrize("gridsize", [1, 2])
def test_collapse_offsets_stitches_every_patch_at_the_first_centre(tmp_path, gridsize):
    s = _scenario("collapse_offsets = true", gridsize=gridsize)
    run = Ran(tmp_path, s)
    sim, groups = run.read("simulate", SimulatedData), run.read("group", Groups)
    pred, rec = run.read("oracle", Prediction), run.read("stitch", Reconstruction)
    used = stitched_positions(s, groups)
    assert used.shape == groups.relative.shape and (used == groups.centers[0]).all()
    want = stitch(pred.patches, used, crop=16, shape=sim.object.shape)
    np.testing.assert_array_equal(rec.canvas, want.canvas)
    d = run.diag()
    assert d["n_distinct_positions"] == 1
    frac = np.any(np.abs(groups.centers[0] - np.round(groups.centers[0])) > 1e-9)
    assert d["support_width"] == d["support_height"] == 16 + int(frac)  # one crop (+ bilinear spill)
    assert d["coverage_share"] < 0.2
    assert d["stitch_kept_weight_share"] == pytest.approx(1.0, abs=1e-6)  # nothing clipped, only misplaced
    assert d["patch_minus_stitched_amp_ssim"] > 0.5  # perfect patches, a broken stitch
    assert run.metrics()[("patch", "amplitude")]["ssim"] == 1.0


# --- legacy_canvas -------------------------------------------------------------------------------

@pytest.mark.parametrize("gridsize", [1, 2])
def test_legacy_canvas_clips_a_wide_scan(tmp_path, gridsize):
    run = Ran(tmp_path, _scenario("legacy_canvas = true", gridsize=gridsize, base=WIDE_BASE))
    sim, rec = run.read("simulate", SimulatedData), run.read("stitch", Reconstruction)
    side = legacy_canvas_side(32, gridsize)
    assert side == 42 + 4 * (gridsize - 1)
    assert rec.frame == "legacy" and rec.canvas.shape == (side, side)
    mean = stitched_positions(_scenario(gridsize=gridsize), run.read("group", Groups)).reshape(-1, 2).mean(axis=0)
    np.testing.assert_allclose(rec.origin, mean - side // 2)
    d, g = run.diag(), run.diag("group")
    assert g["canvas_fixed_side"] == side and g["canvas_required_side"] > 4 * side
    assert g["canvas_fixed_energy_share"] < 0.2  # the group stage predicts the clipping ...
    assert d["stitch_kept_weight_share"] < 0.2  # ... the stitch measures it ...
    assert d["coverage_share"] < 0.2  # ... and the evaluation sees the lost area
    assert (d["canvas_frame"], d["canvas_width"], d["canvas_height"]) == ("legacy", side, side)
    assert np.isfinite(run.metrics()[("stitched", "amplitude")]["ssim"])  # still evaluated, on what survives
    assert d["covered_pixels"] <= side * side


def test_legacy_canvas_off_keeps_everything_on_the_wide_scan(tmp_path):
    run = Ran(tmp_path, _scenario(gridsize=2, base=WIDE_BASE))
    d = run.diag()
    assert d["stitch_kept_weight_share"] == pytest.approx(1.0, abs=1e-6) and d["coverage_share"] == 1.0
    assert run.metrics()[("stitched", "amplitude")]["ssim"] > 0.99


# --- patch_only_evaluation -----------------------------------------------------------------------

def test_patch_only_evaluation_writes_patch_rows_only(tmp_path):
    s = _scenario("patch_only_evaluation = true\ncollapse_offsets = true")
    run = Ran(tmp_path, s)
    ev = run.read("evaluate", Evaluation)
    rows = run.by_stage["evaluate"].rows
    assert {r["target"] for r in rows["metrics"]} == {"patch"} and len(rows["metrics"]) == 2
    assert ev.bias == [] and not rows.get("bias")
    d = run.diag()
    assert d["evaluated_stitched"] == 0
    assert "patch_minus_stitched_amp_ssim" not in d and "coverage_share" not in d
    assert d["n_distinct_positions"] == 1  # the positions the stitch used are still recorded
    assert run.metrics()[("patch", "amplitude")]["ssim"] == 1.0  # the patch metric hides the collapse
    both = Ran(tmp_path, _scenario("collapse_offsets = true"))
    assert [r for r in both.by_stage["evaluate"].rows["metrics"] if r["target"] == "patch"] == rows["metrics"]


# --- simulate: scanned_fraction ------------------------------------------------------------------

def test_simulate_reports_the_scanned_fraction(tmp_path):
    run = Ran(tmp_path, _scenario())
    sim = run.read("simulate", SimulatedData)
    got = run.diag("simulate")["scanned_fraction"]
    assert got == scanned_fraction(sim.positions, sim.object.shape, 16)
    # the first 25 of a 7 x 7 grid, step 8, N/2 = 16 windows: rows y = 16, 24, 32 of x = 16 ... 64
    # cover x 8 ... 71, y 8 ... 39; the row y = 40 with x = 16 ... 40 adds x 8 ... 47, y 40 ... 47
    assert got == pytest.approx((64 * 32 + 40 * 8) / 80 ** 2)
