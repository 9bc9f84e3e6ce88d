"""The iterative arm on a local Ray: its own recycled worker pool, rows like any arm, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ptychi")

from ptycho_dist.orchestration.driver import RunOptions, run_study  # noqa: E402
from ptycho_dist.orchestration.tasks import remote_for, run_stage_task, run_stage_task_recycled, task_options  # noqa: E402
from ptycho_dist.report.html import write_report  # noqa: E402
from ptycho_dist.results import open as open_run  # noqa: E402
from ptycho_dist.study import parse_study  # noqa: E402
from ptycho_dist.study.plan import scenario_tasks  # noqa: E402

STUDY = """
[study]
name = "iterative_tiny"
seed = 5
[base.object]
size = 64
n_lines = 32
[base.probe]
n = 16
[base.scan]
step = 4.0
[base.stitch]
crop = 8
[base.iterative]
iterations = 10
[axes]
"model.backend" = ["oracle", "ptychi"]
"""


def test_iterative_tasks_get_their_own_recycled_pool() -> None:
    study = parse_study(STUDY, source="<t>")
    tasks = {t.stage: t for t in scenario_tasks(study.scenarios[1])}
    it = tasks["iterative"]
    assert remote_for(it) is run_stage_task_recycled and remote_for(tasks["evaluate"]) is run_stage_task
    opts = task_options(it, has_gpu=False)
    assert opts["runtime_env"]["env_vars"]["PTYCHO_DIST_BACKEND"] == "ptychi" and opts["num_gpus"] == 0.0
    assert task_options(it, has_gpu=True)["num_gpus"] == 1.0  # a GPU when the cluster has one: torch picks cuda


@pytest.mark.ray
def test_iterative_arm_runs_beside_the_oracle(ray_session: object, tmp_path: Path) -> None:
    study = parse_study(STUDY, source="<t>")
    summary = run_study(study, RunOptions(out=tmp_path / "runs", progress=False))
    assert summary.status["ok"] == 2 and summary.stages_run["iterative"] == 1 and summary.stages_run["simulate"] == 1
    run = open_run(summary.run_dir)
    rows = run.sql("""select s.model_backend, s.key_iterative is not null as has_it, m.ssim
                      from scenarios s join metrics m using (scenario_id)
                      where m.target = 'stitched' and m.channel = 'amplitude' order by 1""").to_pylist()
    assert [(r["model_backend"], r["has_it"]) for r in rows] == [("oracle", False), ("ptychi", True)]
    assert rows[1]["ssim"] > 0.5
    history = run.sql("select count(*) as n, min(backend) as b from history").to_pylist()[0]
    assert history == {"n": 10, "b": "ptychi"}
    assert list((summary.run_dir / "logs").glob("iterative-*.engine.log"))
    page = Path(write_report(run)).read_text()
    assert "Arms side by side" in page and "ptychi lsqml" in page
