"""The model-side fault switches in a TF arm, stage by stage without Ray (docs/faults.md).

The torch arm is pinned in tests/pipeline/test_faults_model.py; here the same stages run the TF
backend: off, the data's probe, the overlap constraint and the bundle's scales; on (all three
switches in one arm, gridsize 2), the model probe, the trained config without the constraint and
the start scale at inference, each seen in the backend call and in the diagnostics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ptycho_dist.models import load_backend  # noqa: E402
from ptycho_dist.pipeline import StageContext, run_scenario_inline  # noqa: E402
from ptycho_dist.storage.outputs import Bundle, Prediction, SimulatedData  # noqa: E402
from ptycho_dist.storage.run import RunLayout  # noqa: E402
from ptycho_dist.study import Scenario, parse_study, scenario_keys  # noqa: E402
from runner_specs import SMALL_BASE  # noqa: E402

pytestmark = pytest.mark.tf

SPEC = SMALL_BASE + """
[base.model]
backend = "tf"
filters = [8, 16]
[base.training]
epochs = 1
batch_size = 8
[base.grouping]
gridsize = 2
"""
FAULTS = '[base.faults]\nmodel_probe = "unnormalized"\nobject_big_off = true\ninfer_ignores_scale = true\n'


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s: Scenario) -> dict[str, Any]:
    backend = load_backend("tf")
    calls: dict[str, list[dict[str, Any]]] = {"train": [], "infer": []}
    real_train, real_infer = backend.train_pinn, backend.infer_pinn
    monkeypatch.setattr(backend, "train_pinn", lambda data, config, **kw: (
        calls["train"].append({"data": data, "config": config, **kw}) or real_train(data, config, **kw)))
    monkeypatch.setattr(backend, "infer_pinn", lambda weights, config, **kw: (
        calls["infer"].append({"config": config, **kw}) or real_infer(weights, config, **kw)))
    layout = RunLayout(tmp_path / "run")
    layout.initialize(parse_study("", source="<test>"), scenario_ids=[scenario_keys(s).scenario])
    ctx = StageContext(layout.root)
    outcomes = {o.stage: o for o in run_scenario_inline(ctx, s)}
    assert all(o.status == "ok" for o in outcomes.values()), {k: o.error for k, o in outcomes.items()}
    keys = scenario_keys(s)
    diag = {(r["stage"], r["name"]): r["value"] for o in outcomes.values() for r in o.rows.get("diagnostics", [])}
    return {"calls": calls, "diag": diag, "sim": ctx.layout.outputs.read("simulate", keys.simulate, SimulatedData),
            "bundle": ctx.layout.outputs.read("train", keys.train, Bundle),
            "pred": ctx.layout.outputs.read("infer", keys.infer, Prediction)}


def test_tf_arm_faults_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_study(SPEC, source="<test>").scenarios[0]
    got = _run(tmp_path, monkeypatch, s)
    sim, bundle, diag = got["sim"], got["bundle"], got["diag"]
    fit, stage_infer = got["calls"]["train"][0], got["calls"]["infer"][-1]
    np.testing.assert_array_equal(fit["data"].probe, sim.probe)
    assert fit["config"].object_big and stage_infer["config"].object_big
    assert (stage_infer["norm_factor"], stage_infer["log_scale"]) == (bundle.norm_factor, bundle.log_scale)
    assert diag[("train", "model_probe_energy_ratio")] == diag[("infer", "model_probe_energy_ratio")] == 1.0
    assert diag[("train", "initial_log_scale")] == pytest.approx(math.log(sim.scale))
    assert diag[("infer", "infer_object_scale")] == pytest.approx(math.exp(bundle.log_scale) / sim.scale)
    # the patch scores: the trained network and the untrained one of the same seed (0 epochs)
    untrained = got["calls"]["train"][1]
    assert untrained["config"].epochs == 0 and untrained["seed"] == fit["seed"]
    assert diag[("train", "patch_score_patches")] == 100  # 25 groups x 4 members
    assert math.isfinite(diag[("train", "patch_score_trained")]) and diag[("train", "patch_score_gain_se")] > 0


def test_tf_arm_faults_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_study(SPEC + FAULTS, source="<test>").scenarios[0]
    got = _run(tmp_path, monkeypatch, s)
    sim, bundle, diag = got["sim"], got["bundle"], got["diag"]
    fit, stage_infer = got["calls"]["train"][0], got["calls"]["infer"][-1]
    np.testing.assert_allclose(fit["data"].probe, sim.probe / sim.probe_factor, rtol=1e-6)
    np.testing.assert_allclose(stage_infer["probe"], sim.probe / sim.probe_factor, rtol=1e-6)
    assert diag[("train", "model_probe_energy_ratio")] == pytest.approx(1 / sim.probe_factor**2, rel=1e-6)
    assert not fit["config"].object_big and bundle.meta["config"]["object_big"] is False
    assert not stage_infer["config"].object_big and diag[("train", "train_object_big")] == 0.0
    assert stage_infer["log_scale"] == bundle.meta["initial_log_scale"] != bundle.log_scale
    assert stage_infer["norm_factor"] != bundle.norm_factor
    assert diag[("infer", "infer_ignores_scale")] == 1.0 and diag[("infer", "infer_object_scale")] == pytest.approx(1.0)
    assert got["pred"].patches.shape == (25, 4, 32, 32)
