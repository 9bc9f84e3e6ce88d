"""Stage functions without Ray: outputs in storage, cache hits, the torch arm end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.errors import SpecError, StorageError
from ptycho_dist.pipeline import StageContext, execute_stage, run_scenario_inline
from ptycho_dist.models import load_backend
from ptycho_dist.storage.outputs import Bundle, Groups, Prediction, SimulatedData
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, parse_study, scenario_keys, scenario_tasks
from runner_specs import SMALL_BASE

SPEC = SMALL_BASE + """
[base.model]
backend = "{backend}"
filters = [8, 16]
[base.training]
epochs = {epochs}
lr = {lr}
batch_size = 8
[base.grouping]
gridsize = {gridsize}
"""


def _scenario(backend: str = "oracle", epochs: int = 2, lr: float = 1e-3, gridsize: int = 1) -> Scenario:
    text = SPEC.format(backend=backend, epochs=epochs, lr=lr, gridsize=gridsize)
    return parse_study(text, source="<test>").scenarios[0]


def _ctx(tmp_path: Path, scenario: Scenario) -> StageContext:
    layout = RunLayout(tmp_path / "run")
    study = parse_study("", source="<test>")
    layout.initialize(study, scenario_ids=[scenario_keys(scenario).scenario])
    return StageContext(layout.root)


def test_oracle_chain_writes_every_output_and_caches(tmp_path: Path) -> None:
    s = _scenario()
    ctx, keys = _ctx(tmp_path, s), scenario_keys(s)
    outcomes = run_scenario_inline(ctx, s)
    assert [o.stage for o in outcomes] == ["simulate", "group", "oracle", "stitch", "evaluate"]
    assert [(o.stage, o.key) for o in outcomes] == keys.chain()
    assert all(o.status == "ok" and not o.cached for o in outcomes)
    sim = ctx.layout.outputs.read("simulate", keys.simulate, SimulatedData)
    assert sim.counts.shape == (25, 32, 32) and sim.object.shape == (80, 80)
    assert (ctx.layout.arrays.path / "simulate" / keys.simulate).is_dir()  # stored under the stage's name
    groups = ctx.layout.outputs.read("group", keys.group, Groups)
    assert groups.centers.shape == (25, 2) and groups.indices.shape == (25, 1)
    pred = ctx.layout.outputs.read("oracle", keys.oracle, Prediction)
    assert pred.patches.shape == (25, 1, 32, 32) and pred.backend == "oracle" and pred.amplitude is None
    with pytest.raises(StorageError, match="stores 'simulated' outputs, not 'prediction'"):
        ctx.layout.outputs.read("simulate", keys.simulate, Prediction)
    metrics = {(r["target"], r["channel"]): r for r in outcomes[-1].rows["metrics"]}
    assert metrics[("stitched", "amplitude")]["mae"] < 1e-5  # integer grid, true patches
    again = run_scenario_inline(ctx, s)
    assert all(o.cached for o in again)
    assert again[-1].rows == outcomes[-1].rows  # rows replayed from the stored outcome


def test_failed_stage_is_an_outcome_not_an_exception(tmp_path: Path) -> None:
    s = _scenario().model_copy(update={"grouping": _scenario(gridsize=3).grouping.model_copy(update={"k_neighbors": 2})})
    ctx, keys = _ctx(tmp_path, s), scenario_keys(s)
    outcomes = run_scenario_inline(ctx, s)
    assert outcomes[-1].stage == "group" and outcomes[-1].status == "failed"
    assert "GroupingError" in (outcomes[-1].error or "") and "Traceback" in (outcomes[-1].traceback or "")
    assert not ctx.layout.arrays.is_complete("group", keys.group)  # nothing half-written is trusted


def test_torch_arm_bundle_scales_are_reused_at_inference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _scenario("torch", epochs=2, gridsize=2)
    ctx, keys = _ctx(tmp_path, s), scenario_keys(s)
    outcomes = {o.stage: o for o in run_scenario_inline(ctx, s)}
    assert all(o.status == "ok" for o in outcomes.values()), {k: o.error for k, o in outcomes.items()}
    assert len(outcomes["train"].rows["history"]) == 2
    bundle = ctx.layout.outputs.read("train", keys.train, Bundle)
    diag = {r["name"]: r["value"] for o in outcomes.values() for r in o.rows.get("diagnostics", [])}
    assert diag["train_norm_factor"] == diag["infer_norm_factor"] == pytest.approx(bundle.norm_factor)
    assert diag["train_intensity_scale"] == diag["infer_intensity_scale"]
    # load the bundle and infer again: identical patches
    stored = ctx.layout.outputs.read("infer", keys.infer, Prediction).patches
    seen: dict[str, float] = {}
    real = load_backend("torch").infer_pinn

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(norm_factor=kwargs["norm_factor"], log_scale=kwargs["log_scale"])
        return real(*args, **kwargs)

    monkeypatch.setattr(load_backend("torch"), "infer_pinn", spy)
    shutil.rmtree(ctx.layout.arrays.path / "infer" / keys.infer)  # infer must run again
    infer = next(t for t in scenario_tasks(s) if t.stage == "infer")
    rerun = execute_stage(ctx, infer)
    assert rerun.status == "ok" and not rerun.cached
    assert seen == {"norm_factor": bundle.norm_factor, "log_scale": bundle.log_scale}
    np.testing.assert_array_equal(ctx.layout.outputs.read("infer", keys.infer, Prediction).patches, stored)


def test_huge_learning_rate_is_a_diverged_outcome(tmp_path: Path) -> None:
    s = _scenario("torch", epochs=4, lr=1e6)
    ctx = _ctx(tmp_path, s)
    outcomes = run_scenario_inline(ctx, s)
    train = outcomes[-1]
    assert train.stage == "train" and train.status == "diverged", train.error
    assert isinstance(train.info["diverged_epoch"], int)
    assert any(r["nonfinite"] for r in train.rows["history"])


def test_line_widths_reach_the_lines_object() -> None:
    from ptycho_dist.physics import lines_object
    from ptycho_dist.pipeline.stages import make_object

    wide = parse_study("[base.object]\nsize = 64\nn_lines = 20\nline_widths = [4.0]\n", source="t").scenarios[0]
    got = make_object(wide, np.random.default_rng(3))
    want = lines_object((64, 64), n_lines=20, widths=(4.0,), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(got, want)
    default = parse_study("[base.object]\nsize = 64\nn_lines = 20\n", source="t").scenarios[0]
    assert not np.array_equal(make_object(default, np.random.default_rng(3)), got)


def test_line_widths_must_be_positive() -> None:
    with pytest.raises(SpecError, match=r"t\.toml: base\.object: .*line_widths must all be finite and > 0"):
        parse_study("[base.object]\nline_widths = [1.0, -2.0]\n", source="t.toml")


GRID_SPEC = """
[base.object]
size = 128
[base.probe]
n = 32
[base.scan]
step = 16.0
cluster = {gridsize}
jitter = {jitter}
[base.stitch]
crop = 16
[base.grouping]
mode = "grid"
gridsize = {gridsize}
"""


@pytest.mark.parametrize(("gridsize", "jitter", "min_ssim"), [(2, 0.0, 0.999), (3, 0.0, 0.999), (2, 1.5, 0.9)])
def test_oracle_grid_mode_stitches_the_truth(tmp_path: Path, gridsize: int, jitter: float, min_ssim: float) -> None:
    """Grid mode end to end: clustered scan -> grid groups -> oracle -> stitch -> evaluate. A sign or
    channel-order slip in the groups puts every patch at another member's place (SSIM ~ 0.4)."""
    s = parse_study(GRID_SPEC.format(gridsize=gridsize, jitter=jitter), source="<test>").scenarios[0]
    ctx, keys = _ctx(tmp_path, s), scenario_keys(s)
    outcomes = run_scenario_inline(ctx, s)
    assert all(o.status == "ok" for o in outcomes), [o.error for o in outcomes]
    side = int(np.floor((128 - 32 - (gridsize - 1) * 4.0) / 16.0)) + 1  # scan-box formula
    groups = ctx.layout.outputs.read("group", keys.group, Groups)
    sim = ctx.layout.outputs.read("simulate", keys.simulate, SimulatedData)
    c = gridsize**2
    assert groups.indices.shape == (side * side, c) and sim.positions.shape == (side * side * c, 2)
    half = 4.0 * (np.arange(gridsize) - (gridsize - 1) / 2)
    want = np.array([[dx, dy] for dy in half for dx in half])  # row-major layout, (x, y)
    np.testing.assert_allclose(groups.relative, np.broadcast_to(want, groups.relative.shape), atol=1e-9)
    diag = {r["name"]: r["value"] if r["text"] is None else r["text"] for r in outcomes[1].rows["diagnostics"]}
    assert diag["grouping_mode"] == "grid" and diag["n_distinct_relative"] == c
    metrics = {(r["target"], r["channel"]): r for r in outcomes[-1].rows["metrics"]}
    assert metrics[("stitched", "amplitude")]["ssim"] > min_ssim


def test_stitch_stage_on_the_torch_path_matches_numpy(tmp_path: Path) -> None:
    # device "cpu" (what a GPU task gets as "cuda") runs stitch_on; same reconstruction within tolerance
    import dataclasses

    pytest.importorskip("torch")
    from ptycho_dist.storage.outputs import Reconstruction

    s = _scenario()
    keys = scenario_keys(s)
    ctx = _ctx(tmp_path, s)
    run_scenario_inline(ctx, s)
    ref = ctx.layout.outputs.read("stitch", keys.stitch, Reconstruction)
    torch_ctx = dataclasses.replace(ctx, device="cpu")
    task = next(t for t in scenario_tasks(s) if t.stage == "stitch")
    from ptycho_dist.pipeline.stages import stitch_stage

    got = stitch_stage(torch_ctx, task).output
    assert isinstance(got, Reconstruction)
    np.testing.assert_array_equal(np.isfinite(got.canvas), np.isfinite(ref.canvas))
    ok = np.isfinite(ref.canvas)
    np.testing.assert_allclose(got.canvas[ok], ref.canvas[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.coverage, ref.coverage, rtol=1e-6)
