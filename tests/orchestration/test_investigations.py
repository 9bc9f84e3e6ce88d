"""The investigations library at CI size: studies whose expectations assert that each fault is caught.

The three oracle-arm studies run as a user runs them (``run --strict``) and every one of their
expectations must pass; then the collapse study shows that its expectations are load-bearing: with the
faulty arm removed, or with a condition the diagnostic does not meet, ``--strict`` and ``check`` fail.
The model-arm studies (torch and tf arms, a few minutes each on 2 cores) are ``slow``; the NaN
divergence study (torch only, small) runs by default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ptycho_dist.cli import main
from ptycho_dist.results import open as open_run

pytestmark = pytest.mark.ray

LIBRARY = Path(__file__).resolve().parents[2] / "studies" / "investigations"
ORACLE_STUDIES = ("collapsed_offsets", "legacy_canvas", "patch_vs_stitched")
MODEL_STUDIES = ("relative_sign", "probe_normalization", "object_big", "intensity_scale")
#: a scenario with any fault switch on
FAULTY = ("faults_collapse_offsets or faults_legacy_canvas or faults_patch_only_evaluation or faults_relative_sign = -1"
          " or faults_model_probe != 'data' or faults_object_big_off or faults_infer_ignores_scale")


def _run_library_study(tmp_path: Path, name: str) -> None:
    spec = LIBRARY / f"{name}.toml"
    declared = tomllib.loads(spec.read_text())["expect"]
    assert main(["run", str(spec), "--out", str(tmp_path), "--no-progress", "--strict"]) == 0
    run = open_run(tmp_path / name)
    rows = run.table("expectations").to_pylist()
    assert {r["name"] for r in rows} == {e["name"] for e in declared}
    assert rows and all(r["status"] == "passed" for r in rows), [r for r in rows if not r["passed"]]
    # the faulty arm is in the run, and at least one expectation is about it
    faulty = run.sql(f"select count(*) as n from scenarios where {FAULTY}").to_pylist()
    assert faulty[0]["n"] >= 1
    assert any("faults_" in e["query"] for e in declared)


@pytest.mark.parametrize("name", [n for n in ORACLE_STUDIES if n != "collapsed_offsets"])
def test_oracle_investigation_catches_its_fault(ray_session: object, tmp_path: Path, name: str) -> None:
    _run_library_study(tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_STUDIES)
def test_model_investigation_catches_its_fault(ray_session: object, tmp_path: Path, name: str) -> None:
    _run_library_study(tmp_path, name)


def test_nan_divergence_study(ray_session: object, tmp_path: Path) -> None:
    # no fault switch: the faulty configuration is a too-large learning rate, expected to diverge
    spec = LIBRARY / "nan_divergence.toml"
    assert main(["run", str(spec), "--out", str(tmp_path), "--no-progress", "--strict"]) == 0
    run = open_run(tmp_path / "nan_divergence")
    rows = run.table("expectations").to_pylist()
    assert {r["name"] for r in rows} == {e["name"] for e in tomllib.loads(spec.read_text())["expect"]}
    assert all(r["status"] == "passed" for r in rows), [r for r in rows if r["status"] != "passed"]
    status = run.sql("select training_lr as lr, status, diverged_epoch from scenarios order by all").to_pylist()
    assert [(r["lr"], r["status"], r["diverged_epoch"]) for r in status] == \
        [(0.001, "ok", None)] * 2 + [(10.0, "ok", None)] * 2 + [(50.0, "diverged", 0)] * 2


def test_collapse_study_and_a_condition_it_does_not_meet(ray_session: object, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _run_library_study(tmp_path, "collapsed_offsets")
    run_dir = str(tmp_path / "collapsed_offsets")
    # a condition the diagnostic does not meet fails `check --strict` on the finished run, without recomputing
    text = (LIBRARY / "collapsed_offsets.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace('condition = "= 1"', 'condition = "> 1"', 1))
    capsys.readouterr()
    assert main(["check", run_dir, "--spec", str(wrong)]) == 0  # reported, not strict
    assert main(["check", run_dir, "--spec", str(wrong), "--strict"]) == 1
    assert "collapse_one_position" in capsys.readouterr().err
    rows = open_run(run_dir).table("expectations").to_pylist()
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["name"] for r in failed} == {"collapse_one_position"} and {r["value"] for r in failed} == {"1"}
    assert main(["check", run_dir, "--strict"]) == 0  # the study's own expectations hold again


def test_collapse_expectations_fail_without_the_faulty_arm(ray_session: object, tmp_path: Path) -> None:
    text = (LIBRARY / "collapsed_offsets.toml").read_text()
    # the same study without its faulty arm: the expectations about the fault find nothing to check
    assert '"faults.collapse_offsets" = [false, true]' in text
    healthy = tmp_path / "healthy.toml"
    healthy.write_text(text.replace('"faults.collapse_offsets" = [false, true]', '"faults.collapse_offsets" = [false]')
                       .replace('name = "collapsed_offsets"', 'name = "collapse_removed"'))
    assert main(["run", str(healthy), "--out", str(tmp_path), "--no-progress", "--strict"]) == 1
    rows = open_run(tmp_path / "collapse_removed").table("expectations").to_pylist()
    broken = {r["name"] for r in rows if r["status"] == "broken"}
    assert "collapse_one_position" in broken and all("no rows" in r["message"] for r in rows if r["status"] == "broken")
    assert all(r["passed"] for r in rows if r["name"].startswith("corrected"))
