"""The study runner on a local Ray: caching, resume, failures as rows, retries after a dead worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ptycho_dist.cli import main
from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.orchestration.tasks import FaultInjection
from ptycho_dist.report.summary import metrics_overview
from ptycho_dist.results import open as open_run
from ptycho_dist.storage.specs import load_study
from ptycho_dist.study import parse_study

pytestmark = pytest.mark.ray

from runner_specs import TINY


def _study(tmp_path: Path, name: str = "tiny", replicates: int = 1, extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, replicates=replicates) + extra)
    return path


def _marker_times(run_dir: Path) -> dict[str, float]:
    """When the completion marker of every complete stage output (loose or packed) was written."""
    from ptycho_dist.storage.arrays import ArrayStore

    store = ArrayStore(run_dir)
    return {f"{stage}/{key}": store.written_at(stage, key) for stage, key in store.outputs()
            if store.is_complete(stage, key)}


def _zarr_mtimes(run_dir: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (run_dir / "arrays.zarr").rglob("*") if p.is_file()}


def test_run_then_rerun_recomputes_nothing(ray_session: object, tmp_path: Path) -> None:
    study = load_study(_study(tmp_path, replicates=2))
    first = run_study(study, RunOptions(out=tmp_path / "runs", progress=False))
    assert first.status["ok"] == 8 and first.stages_run["simulate"] == 4 and first.stages_run["evaluate"] == 8
    run = open_run(first.run_dir)
    assert run.sql("select count(*) as n from scenarios").column("n").to_pylist() == [8]
    per = run.sql("select count(*) as n from metrics group by scenario_id").column("n").to_pylist()
    assert per == [4] * 8  # stitched + patch targets x amplitude + phase
    ssim = run.sql("select min(ssim) as s from metrics where target='stitched' and channel='amplitude'")
    assert ssim.column("s")[0].as_py() > 0.9  # the oracle arm recovers the object
    # the oracle's patches are the truth: structure_r = 1 in every scenario and in the overview
    sr = run.sql("select min(value) as lo from diagnostics where name = 'patch_amp_structure_r'")
    assert sr.column("lo")[0].as_py() == pytest.approx(1.0, abs=1e-6)
    overview = metrics_overview(run).to_pylist()
    assert len(overview) == 4 and all(r["replicates"] == 2 for r in overview)
    assert all(r["structure_r"] == pytest.approx(1.0, abs=1e-6) for r in overview)
    before = _zarr_mtimes(first.run_dir)
    second = run_study(study, RunOptions(out=tmp_path / "runs", progress=False))
    assert sum(second.stages_run.values()) == 0 and second.already_done == 8
    assert _zarr_mtimes(first.run_dir) == before
    # tables open with DuckDB outside the tool
    con = duckdb.connect()
    n = con.execute(f"select count(*) from read_parquet('{first.run_dir}/tables/scenarios/*.parquet')").fetchone()
    assert n == (8,)


def test_periodic_compaction_and_packing_during_a_run(ray_session: object, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit every unit alone and compact every second segment: the tables are compacted and the
    consumed outputs packed while tasks still run, and the results are those of a plain run."""
    from ptycho_dist.orchestration import driver
    from ptycho_dist.storage.arrays import ArrayStore
    from ptycho_dist.storage.tables import TableStore

    study = load_study(_study(tmp_path, replicates=2))
    plain = run_study(study, RunOptions(out=tmp_path / "plain", progress=False))
    packs: list[int] = []
    real_pack = ArrayStore.pack

    def counting_pack(self: ArrayStore, only: object = None) -> int:
        n = real_pack(self, only)  # type: ignore[arg-type]
        packs.append(n if only is not None else -n)
        return n

    monkeypatch.setattr(driver, "COMMIT_UNITS", 1)
    monkeypatch.setattr(driver, "COMPACT_SEGMENTS", 2)
    monkeypatch.setattr(ArrayStore, "pack", counting_pack)
    busy = run_study(study, RunOptions(out=tmp_path / "busy", progress=False, max_in_flight=2))
    assert busy.status["ok"] == 8
    assert any(n > 0 for n in packs), packs  # packed during the run, not only at its end
    q = "select * exclude (finished_at) from metrics join scenarios using (scenario_id) order by all"
    cols = [c for c in open_run(plain.run_dir).sql(q).column_names if not c.startswith(("seconds_", "cached_"))]
    rows = [open_run(r.run_dir).sql(q).select(cols).to_pylist() for r in (plain, busy)]
    assert rows[0] == rows[1]
    assert TableStore(busy.run_dir).files() <= 8 and len(list((busy.run_dir / "arrays.zarr").glob("*/*/zarr.json"))) == 0
    again = run_study(study, RunOptions(out=tmp_path / "busy", progress=False))
    assert sum(again.stages_run.values()) == 0


def test_infeasible_scenario_is_a_failed_row(ray_session: object, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(TINY.format(name="infeasible", replicates=1).replace('[1, 2]', '[1, 3]')
                    .replace("n_positions = 64", "n_positions = 64\n[base.grouping]\nn_groups = 64"))
    assert main(["run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    run = open_run(tmp_path / "runs" / "infeasible")
    rows = run.sql("select grouping_gridsize as g, status, failed_stage, error from scenarios order by g").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert all(r["failed_stage"] == "group" and "GroupingError" in r["error"] for r in rows[2:])
    assert list((tmp_path / "runs" / "infeasible" / "logs").glob("group-*.log"))
    capsys.readouterr()
    assert main(["run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress", "--strict"]) == 1
    assert main(["status", str(tmp_path / "runs" / "infeasible")]) == 0
    assert "GroupingError" in capsys.readouterr().out


def test_dead_worker_is_retried(ray_session: object, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    study = load_study(_study(tmp_path, name="faulty"))
    summary = run_study(study, RunOptions(out=tmp_path / "runs", progress=False,
                                          fault_injection=FaultInjection("simulate", str(marker))))
    assert marker.exists()  # a worker really died
    assert summary.status["ok"] == 4 and summary.stages_run["simulate"] == 2
    run = open_run(summary.run_dir)
    assert run.sql("select count(*) as n, count(distinct scenario_id) as d from scenarios").to_pylist() == [{"n": 4, "d": 4}]


def test_driver_killed_then_resumed(ray_session: object, tmp_path: Path) -> None:
    import ray

    spec = _study(tmp_path, name="resume", replicates=3)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    cmd = [sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", str(tmp_path / "runs"),
           "--no-progress", "--max-in-flight", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from ptycho_dist.storage.segments import SegmentIndex

    run_dir = tmp_path / "runs" / "resume"

    def committed() -> int:
        return len(SegmentIndex.load(run_dir).units_of_kind("scenario"))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and committed() < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = committed()
    assert 2 <= done_before < 12, "the driver should be killed mid-run"
    time.sleep(1)  # a task of the killed driver may still be placing its output
    finished = _marker_times(tmp_path / "runs" / "resume")
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the stale lock of host {socket.gethostname()}, pid {proc.pid}" in rerun.stderr
    after = _marker_times(tmp_path / "runs" / "resume")
    assert finished and all(after[k] == v for k, v in finished.items())  # finished stages were not recomputed
    run = open_run(tmp_path / "runs" / "resume")
    counts = run.sql("select scenario_id, count(*) as n from scenarios group by 1").column("n").to_pylist()
    assert len(counts) == 12 and set(counts) == {1}
    for table in ("metrics", "bias"):
        per = run.sql(f"select count(*) as n from {table} group by scenario_id").column("n").to_pylist()
        assert len(per) == 12 and len(set(per)) == 1


def test_study_keys_shared_between_scenarios() -> None:
    study = parse_study(TINY.format(name="x", replicates=1), source="x.toml")
    from ptycho_dist.orchestration.driver import plan_study
    from ptycho_dist.storage.run import RunLayout

    plan = plan_study(study, RunLayout(Path("/nonexistent/never")))
    stages = [stage for stage, _ in plan.nodes]
    assert stages.count("simulate") == 2 and stages.count("group") == 4 and stages.count("evaluate") == 4


def test_two_worker_ray_train_through_the_runner(ray_session: object, tmp_path: Path) -> None:
    spec = tmp_path / "ddp.toml"
    spec.write_text(TINY.format(name="ddp", replicates=1).split("[axes]")[0] + """
[base.model]
backend = "torch"
filters = [8, 16]
[base.training]
epochs = 2
batch_size = 8
[base.resources]
train_workers = 2
""")
    summary = run_study(load_study(spec), RunOptions(out=tmp_path / "runs", progress=False))
    assert summary.status["ok"] == 1, summary.failures
    run = open_run(summary.run_dir)
    bundles = list((summary.run_dir / "models").glob("*/bundle.json"))
    assert len(bundles) == 1
    assert '"train_workers": 2' in bundles[0].read_text()
    assert run.sql("select count(*) as n from history").column("n").to_pylist() == [2]
