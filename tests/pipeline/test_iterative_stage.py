"""The iterative stage without Ray: output on the object's grid, rows, engine log, divergence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ptychi")

from ptycho_dist.pipeline import StageContext, run_scenario_inline  # noqa: E402
from ptycho_dist.storage.outputs import IterativeReconstruction, Reconstruction  # noqa: E402
from ptycho_dist.study import Scenario, parse_study  # noqa: E402

SPEC = """
[base.object]
size = 64
n_lines = 32
[base.probe]
n = 16
[base.scan]
step = 4.0
[base.dose]
nphotons = 1e6
[base.stitch]
crop = 8
[base.model]
backend = "ptychi"
[base.iterative]
iterations = {iterations}
{extra}
"""


def _scenario(iterations: int = 15, extra: str = "") -> Scenario:
    return parse_study(SPEC.format(iterations=iterations, extra=extra), source="<test>").scenarios[0]


def _by_stage(outcomes: list[Any]) -> dict[str, Any]:
    return {oc.stage: oc for oc in outcomes}


def test_iterative_arm_end_to_end(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ctx = StageContext(tmp_path / "run")
    s = _scenario()
    out = _by_stage(run_scenario_inline(ctx, s))
    assert [oc.status for oc in out.values()] == ["ok"] * 4 and list(out) == ["simulate", "group", "iterative",
                                                                              "evaluate"]
    it = out["iterative"]
    history = it.rows["history"]
    assert [r["epoch"] for r in history] == list(range(15)) and all(r["backend"] == "ptychi" for r in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    diag = {r["name"]: r["value"] if r["text"] is None else r["text"] for r in it.rows["diagnostics"]}
    assert diag["iterative_device"] == "cpu" and diag["iterative_iterations"] == 15
    assert diag["iterative_probe_error"] == pytest.approx(0.0, abs=1e-5)  # the true probe, not refined
    assert diag["iterative_data_error_truth"] > 0 and diag["iterative_data_error_ratio"] >= 1
    # the reconstruction: masked where the stitch of the same scan covers nothing, read by evaluate
    recon = ctx.layout.outputs.read("iterative", it.key, IterativeReconstruction)
    assert recon.canvas.shape == recon.estimate.shape == (64, 64) and recon.probe.shape == (1, 16, 16)
    assert np.isnan(recon.canvas[recon.coverage == 0]).all() and np.isfinite(recon.canvas[recon.coverage > 0]).all()
    assert ctx.layout.outputs.read("iterative", it.key, Reconstruction).crop == 8
    metrics = {(m["target"], m["channel"]): m for m in out["evaluate"].rows["metrics"]}
    assert set(metrics) == {("stitched", "amplitude"), ("stitched", "phase"), ("patch", "amplitude"),
                            ("patch", "phase")}
    assert metrics["stitched", "amplitude"]["ssim"] > 0.8
    share = [r["value"] for r in out["evaluate"].rows["diagnostics"] if r["name"] == "stitch_kept_weight_share"]
    assert share == [pytest.approx(1.0)]
    # pty-chi's progress bar, log lines and warnings went to the engine log, not to the terminal
    log = (ctx.layout.logs / f"iterative-{it.key[:16]}.engine.log").read_text()
    assert "Epoch: 14" in log
    printed = capfd.readouterr()
    assert "Epoch" not in printed.out + printed.err and "it/s" not in printed.err


def test_perturbed_probe_is_refined(tmp_path: Path) -> None:
    s = _scenario(30, 'refine_probe = true\nprobe_init = "perturbed"\nprobe_error = 0.3')
    out = _by_stage(run_scenario_inline(StageContext(tmp_path / "run"), s))
    diag = {r["name"]: r["value"] for r in out["iterative"].rows["diagnostics"]}
    assert diag["iterative_probe_error_initial"] == pytest.approx(0.3, rel=1e-4)
    assert diag["iterative_probe_error"] < 0.2
    # the known probe power fixes the object-probe scale: no constant amplitude bias
    assert out["evaluate"].rows["bias"][0]["ls_scale"] == pytest.approx(1.0, abs=0.1)


def test_non_finite_reconstruction_is_diverged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ptycho_dist.models.iterative.engine as engine

    real = engine.reconstruct

    def blow_up(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **{**kwargs, "spec": kwargs["spec"].model_copy(update={"iterations": 2})})
        history = [{"iteration": 0, "data_error": 1.0}, {"iteration": 1, "data_error": float("nan")}]
        return engine.IterativeResult(object=result.object * np.nan, probe=result.probe, positions=result.positions,
                                      history=history, seconds=result.seconds, cpu_seconds=result.cpu_seconds,
                                      device=result.device, log=result.log,
                                      diverged_iteration=1)

    monkeypatch.setattr(engine, "reconstruct", blow_up)
    out = run_scenario_inline(StageContext(tmp_path / "run"), _scenario(2))
    assert out[-1].stage == "iterative" and out[-1].status == "diverged"
    assert out[-1].info["diverged_epoch"] == 1
    assert [r["nonfinite"] for r in out[-1].rows["history"]] == [False, True]
