"""Held-out evaluation through the runner: two training objects, one test object with its own scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.report.summary import metrics_overview
from ptycho_dist.results import open as open_run
from ptycho_dist.study import parse_study, scenario_keys
from runner_specs import SMALL_BASE

pytestmark = pytest.mark.ray

SPEC = '[study]\nname = "heldout"\nseed = 2\n' + SMALL_BASE + """
[base.model]
filters = [8, 16]
[base.training]
epochs = 1
batch_size = 8
[base.data]
train_objects = 2
test_objects = 1
[base.data.test_scan]
step = 6.0
[axes]
"model.backend" = ["oracle", "torch"]
"""


def test_train_on_two_objects_evaluate_on_a_third(ray_session: object, tmp_path: Path) -> None:
    study = parse_study(SPEC, source="<heldout>")
    summary = run_study(study, RunOptions(out=tmp_path, progress=False))
    assert summary.status["ok"] == 2, summary.failures
    # train:0, train:1 and test:0 are three draws shared by both arms (the oracle needs train:1 not)
    assert summary.stages_run["simulate"] == 3 and summary.stages_run["train"] == 1
    assert summary.stages_run["evaluate"] == 4  # each arm on train:0 and on test:0
    run = open_run(summary.run_dir)
    rows = run.sql("select s.model_backend as arm, m.target, m.dataset, m.ssim from metrics m join scenarios s"
                   " using (scenario_id) where m.channel = 'amplitude' order by all").to_pylist()
    got = {(r["arm"], r["target"], r["dataset"]) for r in rows}
    assert got == {(arm, t, d) for arm in ("oracle", "torch")
                   for t, d in (("stitched", "test:0"), ("patch", "test:0"), ("train_stitched", "train:0"),
                                ("train_patch", "train:0"))}
    ssim = {(r["arm"], r["target"]): r["ssim"] for r in rows}
    assert ssim["oracle", "stitched"] > 0.9 and ssim["oracle", "train_stitched"] > 0.9
    # the test object is another draw than the training objects
    from ptycho_dist.storage.outputs import SimulatedData
    from ptycho_dist.study import scenario_tasks

    sims = {t.dataset: run.output("simulate", t.key, SimulatedData).object
            for t in scenario_tasks(study.scenarios[1]) if t.stage == "simulate"}
    assert set(sims) == {"train:0", "train:1", "test:0"}
    assert not np.allclose(sims["test:0"], sims["train:0"]) and not np.allclose(sims["train:1"], sims["train:0"])
    # the scenario row points at the test object; the test object has its own scan (step 6: more positions)
    for s in study.scenarios:
        k = scenario_keys(s)
        row = run.sql(f"select key_simulate, key_evaluate from scenarios where scenario_id = '{k.scenario}'").to_pylist()
        assert row == [{"key_simulate": k.simulate, "key_evaluate": k.evaluate}]
    n = run.sql("select dataset, value from diagnostics where name = 'n_patterns' and stage = 'simulate'"
                " order by dataset").to_pylist()
    assert {r["dataset"] for r in n} == {"train:0", "train:1", "test:0"}
    per = {r["dataset"]: r["value"] for r in n}
    assert per["test:0"] > per["train:0"] == per["train:1"] == 25
    trained = run.sql("select value from diagnostics where name = 'train_objects'").column("value").to_pylist()
    assert trained == [2.0]
    overview = {r["arm"]: r for r in metrics_overview(run).to_pylist()}
    assert overview["oracle"]["amp_ssim"] == pytest.approx(ssim["oracle", "stitched"])
