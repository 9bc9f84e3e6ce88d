"""The model-side fault switches (docs/faults.md), torch arm, run stage by stage without Ray.

Each switch is off by default and changes nothing then (the keys of a scenario without the section,
the same outputs); on, it enters the keys of the stages that apply it and its effect is the
documented one. The train stage's patch scores (``learned_nothing``) and the object's units are
pinned here too. TF: tests/tf/test_tf_faults.py.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptycho_dist.models import PinnConfig, load_backend, normalization_factor
from ptycho_dist.pipeline import StageContext, run_scenario_inline
from ptycho_dist.pipeline.base import StageOutcome
from ptycho_dist.pipeline.model_stages import run_inference, score_subset
from ptycho_dist.pipeline.rows import quality_flags
from ptycho_dist.storage.outputs import Bundle, Groups, Prediction, SimulatedData
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import Scenario, parse_study, scenario_keys, scenario_tasks
from runner_specs import SMALL_BASE

MODEL = """
[base.model]
backend = "torch"
filters = [8, 16]
[base.training]
epochs = {epochs}
batch_size = 8
"""


def _scenario(faults: str = "", *, gridsize: int = 1, epochs: int = 1) -> Scenario:
    text = (SMALL_BASE + MODEL.format(epochs=epochs) + f"[base.grouping]\ngridsize = {gridsize}\n"
            + (f"[base.faults]\n{faults}\n" if faults else ""))
    return parse_study(text, source="<test>").scenarios[0]


class Ran:
    """Scenarios run inline in one run directory (shared stages are cache hits)."""

    def __init__(self, tmp_path: Path, *scenarios: Scenario) -> None:
        layout = RunLayout(tmp_path / "run")
        layout.initialize(parse_study("", source="<test>"),
                          scenario_ids=[scenario_keys(s).scenario for s in scenarios])
        self.ctx = StageContext(layout.root)
        self.outcomes: list[dict[str, StageOutcome]] = []
        for s in scenarios:
            outcomes = run_scenario_inline(self.ctx, s)
            assert all(o.status == "ok" for o in outcomes), [(o.stage, o.error) for o in outcomes]
            self.outcomes.append({o.stage: o for o in outcomes})

    def read(self, s: Scenario, stage: str, cls: type[Any]) -> Any:
        return self.ctx.layout.outputs.read(stage, getattr(scenario_keys(s), stage), cls)

    def diag(self, i: int, stage: str) -> dict[str, Any]:
        return {r["name"]: r["value"] if r["text"] is None else r["text"]
                for r in self.outcomes[i][stage].rows.get("diagnostics", [])}


class Spy:
    """Records the arguments of every torch ``train_pinn`` / ``infer_pinn`` call (and the result of
    ``infer_pinn``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        backend = load_backend("torch")
        self.train: list[dict[str, Any]] = []
        self.infer: list[dict[str, Any]] = []
        real_train, real_infer = backend.train_pinn, backend.infer_pinn

        def train(data, config, **kw):  # type: ignore[no-untyped-def]
            self.train.append({"data": data, "config": config, **kw})
            return real_train(data, config, **kw)

        def infer(weights, config, **kw):  # type: ignore[no-untyped-def]
            out = real_infer(weights, config, **kw)
            self.infer.append({"config": config, "result": out, **kw})
            return out

        monkeypatch.setattr(backend, "train_pinn", train)
        monkeypatch.setattr(backend, "infer_pinn", infer)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    return Spy(monkeypatch)


@pytest.fixture(scope="module")
def plain_gs2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ran, Spy, Scenario]:
    """A corrected torch arm at gridsize 2 (1 epoch), run once for the tests below that only read it."""
    with pytest.MonkeyPatch.context() as mp:
        recorded, s = Spy(mp), _scenario(gridsize=2)
        return Ran(tmp_path_factory.mktemp("plain"), s), recorded, s


# --- off by default -----------------------------------------------------------------------------

def test_model_faults_off_are_the_scenario_without_the_section():
    plain = _scenario()
    explicit = _scenario('relative_sign = 1\nmodel_probe = "data"\nobject_big_off = false\n'
                         'infer_ignores_scale = false')
    assert explicit.faults.active == ()
    assert scenario_keys(plain).stages == scenario_keys(explicit).stages


@pytest.mark.parametrize("faults, changed", [
    ('model_probe = "l2"', {"train", "infer", "stitch", "evaluate"}),
    ("object_big_off = true", {"train", "infer", "stitch", "evaluate"}),
    ("infer_ignores_scale = true", {"infer", "stitch", "evaluate"}),
])
def test_a_switch_enters_the_keys_of_its_stages_and_below_only(faults, changed):
    plain, faulty = scenario_keys(_scenario()).stages, scenario_keys(_scenario(faults)).stages
    assert {stage for stage in plain if plain[stage] != faulty[stage]} == changed


def test_faults_off_train_and_infer_use_the_data_probe_and_the_bundle_scales(plain_gs2):
    run, spy, s = plain_gs2
    sim, bundle = run.read(s, "simulate", SimulatedData), run.read(s, "train", Bundle)
    fit = spy.train[0]
    np.testing.assert_array_equal(fit["data"].probe, sim.probe)
    assert fit["config"] == PinnConfig.from_scenario(s) and fit["config"].object_big
    stage_infer = spy.infer[-1]
    np.testing.assert_array_equal(stage_infer["probe"], sim.probe)
    assert (stage_infer["norm_factor"], stage_infer["log_scale"]) == (bundle.norm_factor, bundle.log_scale)
    train, infer = run.diag(0, "train"), run.diag(0, "infer")
    assert train["model_probe_energy_ratio"] == infer["model_probe_energy_ratio"] == 1.0
    assert train["train_object_big"] == 1.0 and infer["infer_ignores_scale"] == 0.0
    assert infer["infer_log_scale"] == bundle.log_scale and infer["infer_norm_factor"] == bundle.norm_factor
    # the recorded start of the scale (log_scale_init = "dose": log s) and the bundle's scalars
    assert train["initial_log_scale"] == pytest.approx(math.log(sim.scale)) == bundle.meta["initial_log_scale"]
    assert bundle.meta["dose_scale"] == sim.scale and bundle.meta["model_probe"] == "data"


def test_the_object_is_reported_in_the_data_units(plain_gs2):
    run, spy, s = plain_gs2
    bundle, pred = run.read(s, "train", Bundle), run.read(s, "infer", Prediction)
    net = spy.infer[-1]["result"]
    factor = math.exp(bundle.log_scale) / bundle.meta["dose_scale"]
    assert factor != 1.0 and run.diag(0, "infer")["infer_object_scale"] == pytest.approx(factor)
    np.testing.assert_allclose(pred.patches, net.object_patches * factor, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(pred.amplitude, net.pred_amplitude)  # count units, as before


# --- on: the effect ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unnormalized", "l2"])
def test_model_probe_reaches_train_and_infer(tmp_path, spy, kind):
    s = _scenario(f'model_probe = "{kind}"')
    run = Ran(tmp_path, s)
    sim = run.read(s, "simulate", SimulatedData)
    energy = float(np.sum(np.abs(sim.probe.astype(np.complex128)) ** 2))
    want = sim.probe / sim.probe_factor if kind == "unnormalized" else sim.probe / math.sqrt(energy)
    ratio = 1 / sim.probe_factor**2 if kind == "unnormalized" else 1 / energy
    assert sim.probe_factor != pytest.approx(1.0)
    np.testing.assert_allclose(spy.train[0]["data"].probe, want, rtol=1e-6)
    np.testing.assert_allclose(spy.infer[-1]["probe"], want, rtol=1e-6)
    assert run.diag(0, "train")["model_probe_energy_ratio"] == pytest.approx(ratio, rel=1e-6)
    assert run.diag(0, "infer")["model_probe_energy_ratio"] == pytest.approx(ratio, rel=1e-6)
    assert run.read(s, "train", Bundle).meta["model_probe"] == kind


def test_object_big_off_trains_and_infers_without_the_overlap_constraint(tmp_path, spy):
    s = _scenario("object_big_off = true", gridsize=2)
    assert s.model.object_big
    run = Ran(tmp_path, s)
    bundle = run.read(s, "train", Bundle)
    assert spy.train[0]["config"] == dataclasses.replace(PinnConfig.from_scenario(s), object_big=False)
    assert bundle.meta["config"]["object_big"] is False and bundle.meta["object_big_off"] is True
    assert run.diag(0, "train")["train_object_big"] == 0.0
    assert spy.infer[-1]["config"].object_big is False  # inference follows the bundle
    # the same weights with the constraint on give other patches: the switch changes the function
    infer = next(t for t in scenario_tasks(s) if t.stage == "infer")
    corrected = _scenario(gridsize=2)
    on = run_inference(run.ctx, infer, corrected, own=False).result.object_patches
    off = run.read(s, "infer", Prediction).patches
    assert np.abs(on - off).max() > 1e-3 * np.abs(off).max()


def test_infer_ignores_scale_uses_the_start_and_the_data_normalization(tmp_path, spy):
    corrected, faulty = _scenario(epochs=2), _scenario("infer_ignores_scale = true", epochs=2)
    assert scenario_keys(corrected).train == scenario_keys(faulty).train  # one bundle
    run = Ran(tmp_path, corrected, faulty)
    bundle, sim = run.read(faulty, "train", Bundle), run.read(faulty, "simulate", SimulatedData)
    groups = run.read(faulty, "group", Groups)
    start = bundle.meta["initial_log_scale"]
    assert bundle.log_scale != start
    used = spy.infer[-1]
    want_norm = normalization_factor(np.sqrt(sim.counts[groups.indices].astype(np.float64)) / sim.scale)
    assert used["log_scale"] == start and used["norm_factor"] == pytest.approx(want_norm, rel=1e-12)
    assert used["norm_factor"] != bundle.norm_factor  # the training split's differs
    diag = run.diag(1, "infer")
    assert diag["infer_ignores_scale"] == 1.0 and diag["infer_log_scale"] == start
    # log_scale_init = "dose": the start is log s, so the object stays in the network's units
    assert diag["infer_object_scale"] == pytest.approx(1.0)
    assert run.diag(0, "infer")["infer_object_scale"] == pytest.approx(math.exp(bundle.log_scale - start))


def test_transplant_takes_the_partners_conventions(plain_gs2, spy):
    run, _, a = plain_gs2
    infer = next(t for t in scenario_tasks(a) if t.stage == "infer")
    own = run_inference(run.ctx, infer, a, own=False).result
    np.testing.assert_array_equal(own.object_patches, run.read(a, "infer", Prediction).patches)
    b = _scenario('model_probe = "l2"\nobject_big_off = true\nrelative_sign = -1\ninfer_ignores_scale = true',
                  gridsize=2)
    run_inference(run.ctx, infer, b, own=False)
    used, bundle = spy.infer[-1], run.read(a, "train", Bundle)
    assert used["config"].object_big is False
    assert float(np.sum(np.abs(used["probe"].astype(np.complex128)) ** 2)) == pytest.approx(1.0, rel=1e-6)
    groups = run.read(a, "group", Groups)
    np.testing.assert_array_equal(used["relative"], -groups.relative)
    assert used["log_scale"] == bundle.log_scale  # the transplant keeps the bundle's scales


# --- patch scores and learned_nothing ------------------------------------------------------------

def test_score_subset_is_evenly_spaced():
    np.testing.assert_array_equal(score_subset(5), np.arange(5))
    got = score_subset(1000, 4)
    np.testing.assert_array_equal(got, [0, 333, 666, 999])
    assert score_subset(1000).size == 128


def test_untrained_arm_scores_its_own_initialization_and_is_flagged(tmp_path, spy):
    s = _scenario(epochs=0)
    run = Ran(tmp_path, s)
    diag = run.diag(0, "train")
    assert diag["patch_score_patches"] == 25  # 25 groups, gridsize 1
    assert diag["patch_score_trained"] == diag["patch_score_untrained"] and diag["patch_score_gain_se"] == 0
    assert len(spy.train) == 1  # 0 epochs: the trained weights are the untrained ones
    rows = run.outcomes[0]["train"].rows["diagnostics"]
    assert quality_flags(rows, status="ok", model_arm=True) == ["learned_nothing"]


def test_trained_arm_scores_the_untrained_network_of_its_seed(tmp_path, spy):
    s = _scenario(epochs=2)
    run = Ran(tmp_path, s)
    fit, untrained = spy.train
    assert untrained["config"].epochs == 0 and untrained["seed"] == fit["seed"]
    init = load_backend("torch").train_pinn(fit["data"], dataclasses.replace(fit["config"], epochs=0),
                                            seed=fit["seed"])
    redrawn = load_backend("torch").train_pinn(untrained["data"], untrained["config"], seed=untrained["seed"])
    for name, w in init.weights.items():  # the scored untrained network is the fit's starting point
        np.testing.assert_array_equal(redrawn.weights[name], w)
    diag = run.diag(0, "train")
    assert diag["patch_score_trained"] != diag["patch_score_untrained"]
    assert diag["patch_score_gain_se"] > 0 and math.isfinite(diag["patch_score_gain_se"])


#: a small arm that learns on CPU (measured: patch_score_trained 0.72 against 0.00 untrained, SE 0.09;
#: stitched amplitude Pearson r 0.88): a smooth random object, N = 32, 576 positions, 20 epochs
LEARNS = """
[study]
seed = 1
[base.object]
kind = "grf"
correlation_length = 6.0
size = 128
[base.probe]
n = 32
[base.scan]
kind = "grid"
step = 4.0
n_positions = 576
[base.dose]
nphotons = 1e9
[base.model]
backend = "torch"
filters = [16, 32]
[base.training]
epochs = 20
batch_size = 16
[base.stitch]
crop = 16
"""


@pytest.mark.slow
def test_a_small_arm_that_learns_is_not_flagged(tmp_path):
    s = parse_study(LEARNS, source="<test>").scenarios[0]
    run = Ran(tmp_path, s)
    diag = run.diag(0, "train")
    gain = diag["patch_score_trained"] - diag["patch_score_untrained"]
    assert diag["patch_score_trained"] > 0.5 and gain > 4 * diag["patch_score_gain_se"]
    assert quality_flags(run.outcomes[0]["train"].rows["diagnostics"], status="ok", model_arm=True) == []
