"""[[expect]] on a real run: the expectations table, --strict, ``check`` and ``check --spec``."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_specs import TINY

from ptycho_dist.cli import main
from ptycho_dist.results import open as open_run

pytestmark = pytest.mark.ray

PASSING = """
[[expect]]
name = "oracle_reproduces_the_object"
description = "the oracle arm stitches the true patches: SSIM above 0.9 for every scenario (random scans: sub-pixel positions)"
query = '''select s.grouping_gridsize as gridsize, s.scan_kind as scan, m.ssim as value
           from scenarios s join metrics m using (scenario_id)
           where m.target = 'stitched' and m.channel = 'amplitude' '''
condition = "> 0.9"
"""

FAILING = """
[[expect]]
name = "deliberately_wrong"
description = "a condition the run cannot meet: --strict must fail on it"
query = "select scan_kind, count(*) as value from scenarios group by 1"
condition = "= 3"

[[expect]]
name = "unknown_table"
query = "select value from no_such_table"
condition = "> 0"
"""


def _study(tmp_path: Path, name: str, expectations: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, replicates=1) + expectations)
    return path


def test_expectations_strict_and_check(ray_session: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _study(tmp_path, "expect_run", PASSING + FAILING)
    out = tmp_path / "runs"
    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--num-cpus", "2"]) == 0  # not strict
    run_dir = out / "expect_run"
    run = open_run(run_dir)
    rows = {(r["name"], r["label"]): r for r in run.table("expectations").to_pylist()}
    passing = [r for (n, _), r in rows.items() if n == "oracle_reproduces_the_object"]
    assert len(passing) == 4 and all(r["passed"] and r["status"] == "passed" for r in passing)
    assert {r["label"] for r in passing} == {f"gridsize={g}, scan={k}" for g in (1, 2) for k in ("grid", "random")}
    wrong = [r for (n, _), r in rows.items() if n == "deliberately_wrong"]
    assert sorted(r["label"] for r in wrong) == ["scan_kind=grid", "scan_kind=random"]
    assert all(r["status"] == "failed" and r["value_number"] == 2.0 for r in wrong)
    broken = rows[("unknown_table", "")]
    assert broken["status"] == "broken" and "no_such_table" in broken["message"]
    # a broken expectation loses nothing: every scenario and its metrics are there
    assert run.table("scenarios").num_rows == 4 and run.table("metrics").num_rows == 16
    assert "Expectations" in (run_dir / "report" / "index.html").read_text()

    capsys.readouterr()
    assert main(["check", str(run_dir)]) == 0
    assert main(["check", str(run_dir), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "deliberately_wrong" in err and "unknown_table" in err
    # expectations edited after the run are checked without recomputing: only the passing one
    fixed = _study(tmp_path, "expect_run_fixed", PASSING)
    assert main(["check", str(run_dir), "--spec", str(fixed), "--strict"]) == 0
    assert {r["name"] for r in open_run(run_dir).table("expectations").to_pylist()} == {"oracle_reproduces_the_object"}
    # the run resumed with --strict recomputes nothing and fails on the study's own expectations
    recorded = open_run(run_dir).sql("select scenario_id, finished_at from scenarios order by 1").to_pylist()
    assert main(["run", str(spec), "--out", str(out), "--no-progress", "--strict"]) == 1
    assert open_run(run_dir).sql("select scenario_id, finished_at from scenarios order by 1").to_pylist() == recorded
    assert len(open_run(run_dir).table("expectations")) == 7
