"""Faults a run folder survives, through the CLI on a local Ray: a second writer, a full disk in the
driver, an edited study, damaged arrays and table parts (verify, --repair, status/query/report), a
complete stage whose arrays are gone, concurrent runs, and a driver killed (SIGKILL, SIGTERM) with
the processes of its local Ray, by PID."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptycho_dist.cli import main
from ptycho_dist.orchestration.repair import verify_run
from ptycho_dist.orchestration.watchdog import ray_descendants
from ptycho_dist.results import open as open_run
from ptycho_dist.storage.arrays import ArrayStore
from ptycho_dist.storage.lock import LOCK_NAME, RunLock, read_lock
from ptycho_dist.storage.outputs import Reconstruction
from ptycho_dist.storage.tables import TableStore
from runner_specs import TINY

ROWS = {"scenarios": "select * from scenarios order by scenario_id",
        "metrics": "select * from metrics order by all", "bias": "select * from bias order by all"}


def _spec(tmp_path: Path, name: str = "integ", extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, replicates=1) + extra)
    return path


def _rows(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    run = open_run(run_dir)
    return {t: run.sql(q).to_pylist() for t, q in ROWS.items()}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "INFO worker.py" not in line
             and "authentication" not in line]
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(ray_session: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny run (4 oracle scenarios), copied by the tests that damage or edit it."""
    base = tmp_path_factory.mktemp("integrity")
    assert main(["run", str(_spec(base)), "--out", str(base / "runs"), "--no-progress"]) == 0
    return base / "runs" / "integ"


def _copy(run: Path, tmp_path: Path, *, loose: bool = False) -> Path:
    """A copy of ``run``; with ``loose``, its packed stage outputs unpacked into loose groups (the
    layout of a run killed before it compacted)."""
    dst = tmp_path / "runs" / run.name
    shutil.copytree(run, dst)
    if loose:
        packs = dst / "arrays.zarr" / ".packs"
        for pack in packs.glob("pack-*.zip"):
            with zipfile.ZipFile(pack) as zf:
                zf.extractall(dst / "arrays.zarr")
        shutil.rmtree(packs)
    return dst


def _packed_entry(run_dir: Path, stage: str, key: str, array: str) -> tuple[Path, int, int]:
    """(pack, offset, size) of the first chunk of ``array`` of a packed output."""
    pack = ArrayStore(run_dir).pack_of(stage, key)
    assert pack is not None, f"{stage}/{key} is not packed"
    with zipfile.ZipFile(pack) as zf:
        info = sorted((i for i in zf.infolist() if i.filename.startswith(f"{stage}/{key}/{array}/c/")),
                      key=lambda i: i.filename)[0]
        with pack.open("rb") as fh:
            fh.seek(info.header_offset)
            head = fh.read(30)
        name_len, extra_len = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
        return pack, info.header_offset + 30 + name_len + extra_len, info.compress_size


def _flip_packed(run_dir: Path, stage: str, key: str, array: str) -> None:
    pack, offset, size = _packed_entry(run_dir, stage, key, array)
    data = bytearray(pack.read_bytes())
    data[offset + size // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


def test_a_second_writer_exits_2_naming_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path)
    with RunLock(tmp_path / "runs" / "integ"):
        assert main(["run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"locked by another writer (host {socket.gethostname()}, pid {os.getpid()}, since " in line
    assert not (tmp_path / "runs" / "integ" / "study.json").exists()  # nothing was touched


@pytest.mark.ray
def test_enospc_in_the_driver_is_one_line_then_the_run_resumes(ray_session: object, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import ptycho_dist.storage.tables as tables

    real = tables.write_bytes_atomic

    def full_disk(path: Path, data: bytes) -> None:
        if "metrics" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(tables, "write_bytes_atomic", full_disk)
    spec = _spec(tmp_path, "enospc")
    args = ["run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress", "--max-in-flight", "1"]
    assert main(args) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("ptycho-dist run: OS error: [Errno 28] No space left on device") and "resume" in line
    run_dir = tmp_path / "runs" / "enospc"
    assert read_lock(run_dir) is None  # released
    monkeypatch.undo()
    assert main(args) == 0
    rows = open_run(run_dir).sql("select status, count(*) as n from scenarios group by 1").to_pylist()
    assert rows == [{"status": "ok", "n": 4}]
    assert verify_run(run_dir).ok


@pytest.mark.ray
def test_an_edited_study_is_refused_unless_a_new_version(finished_run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(finished_run, tmp_path)
    edited = _spec(tmp_path, "integ", extra='"dose.nphotons" = [1e7]\n')
    args = ["run", str(edited), "--out", str(tmp_path / "runs"), "--no-progress"]
    before = json.loads((run_dir / "study.json").read_text())
    assert main(args) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds another version of study 'integ'" in line and "axes" in line and "--new-version" in line
    assert json.loads((run_dir / "study.json").read_text()) == before
    assert main([*args, "--new-version"]) == 0
    assert json.loads((run_dir / "study.v1.json").read_text()) == {**before, "scenarios_file": "study.v1.scenarios.json"}
    run = open_run(run_dir)
    rows = run.sql("select dose_nphotons as d, count(*) as n from scenarios group by 1").to_pylist()
    assert rows == [{"d": 1e7, "n": 4}]  # the folder holds 8 scenarios, the current version 4
    assert len(TableStore(run_dir).committed_ids()) == 8
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert "4 scenarios, version 2" in capsys.readouterr().out


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.ray
def test_verify_finds_damage_and_repair_fixes_it(finished_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run is compacted and packed: damage inside a pack and in the one metrics part."""
    run_dir = _copy(finished_run, tmp_path)
    before = _rows(run_dir)
    stitch_key = before["scenarios"][0]["key_stitch"]
    canvas = open_run(run_dir).output("stitch", stitch_key, Reconstruction).canvas
    _flip_packed(run_dir, "stitch", stitch_key, "canvas")
    [metrics] = TableStore(run_dir).parts("metrics")
    _truncate(metrics)
    capsys.readouterr()
    assert main(["verify", str(run_dir)]) == 1
    out = capsys.readouterr().out.replace("\n", " ")
    assert "2 damaged" in out
    for name in ("stitch", "tables/metrics/seg-"):  # (a long path wraps in the table)
        assert name in out
    for command in (["status", str(run_dir)], ["report", str(run_dir)],
                    ["query", str(run_dir), "select count(*) from metrics"]):
        assert main(command) == 1, command
        line = _one_line(capsys.readouterr().err)
        assert "damaged" in line and "verify RUN --repair" in line and ".parquet" in line, line
    capsys.readouterr()
    assert main(["verify", str(run_dir), "--repair", "--no-progress"]) == 0
    out = capsys.readouterr().out
    # the one metrics part held the rows of all 4 scenarios: all are committed again
    assert "recomputed 1 stage output" in out and "committed again 4 unit" in out and "no damage found" in out
    assert main(["verify", str(run_dir)]) == 0
    assert main(["status", str(run_dir)]) == 0
    after = _rows(run_dir)
    assert after["metrics"] == before["metrics"] and after["bias"] == before["bias"]

    def without_run_fields(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if not k.startswith(("cached_", "seconds_")) and k != "finished_at"}

    for old, new in zip(before["scenarios"], after["scenarios"], strict=True):
        if old["key_stitch"] == stitch_key:  # its stitch ran again in the repair, and its row says so
            assert without_run_fields(new) == without_run_fields(old) and new["cached_stitch"] is False
        else:  # committed again from cache hits only: the row it had, run fields included
            assert new == old
    fixed = open_run(run_dir).output("stitch", stitch_key, Reconstruction).canvas
    np.testing.assert_array_equal(fixed, canvas)
    assert TableStore(run_dir).files() <= 10  # compacted again by the repair


@pytest.mark.ray
def test_loose_outputs_and_per_scenario_damage_are_found_and_repaired(finished_run: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A run killed before it compacted: loose groups, one segment per commit batch."""
    run_dir = _copy(finished_run, tmp_path, loose=True)
    before = _rows(run_dir)
    stitch_key = before["scenarios"][0]["key_stitch"]
    chunk = next(p for p in (run_dir / "arrays.zarr" / "stitch" / stitch_key / "canvas" / "c").rglob("*") if p.is_file())
    _flip(chunk)
    assert main(["verify", str(run_dir)]) == 1
    assert "stitch" in capsys.readouterr().out
    assert main(["verify", str(run_dir), "--repair", "--no-progress"]) == 0
    assert "recomputed 1 stage output" in capsys.readouterr().out
    assert verify_run(run_dir).ok and _rows(run_dir) == before


@pytest.mark.ray
def test_a_complete_stage_whose_arrays_are_gone_is_redone(finished_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished_run, tmp_path, loose=True)
    before = _rows(run_dir)
    row = before["scenarios"][0]
    sim = ArrayStore(run_dir).group_dir("simulate", row["key_simulate"])
    for chunk in (sim / "counts" / "c").rglob("*"):
        if chunk.is_file():
            chunk.unlink()  # zarr alone would read zeros: served silently
    TableStore(run_dir).remove_unit(row["scenario_id"])  # so that the run redoes it
    spec = _spec(tmp_path)
    assert main(["run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    summary = json.loads((run_dir / "study.json").read_text())["summary"]
    assert summary["stages_run"] == {"simulate": 1} and summary["status"] == {"ok": 4}
    assert verify_run(run_dir).ok
    after = _rows(run_dir)
    assert after["metrics"] == before["metrics"]


@pytest.mark.ray
def test_a_damaged_input_fails_one_run_and_is_recomputed_by_the_next(finished_run: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(finished_run, tmp_path, loose=True)
    row = _rows(run_dir)["scenarios"][0]
    store = ArrayStore(run_dir)
    chunk = next(p for p in (store.group_dir("simulate", row["key_simulate"]) / "positions" / "c").rglob("*")
                 if p.is_file())
    _flip(chunk)  # same size: the cache check cannot see it, the reader's checksum does
    store.remove("group", row["key_group"])  # so that a stage reads the damaged input
    TableStore(run_dir).remove_unit(row["scenario_id"])
    args = ["run", str(_spec(tmp_path)), "--out", str(tmp_path / "runs"), "--no-progress"]
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"removed simulate/{row['key_simulate']}; the next run recomputes it" in err
    failed = open_run(run_dir).sql("select scenario_id, failed_stage, error from scenarios where status <> 'ok'")
    assert failed.column("scenario_id").to_pylist() == [row["scenario_id"]]
    assert failed.column("failed_stage").to_pylist() == ["group"]
    assert "positions: damaged" in failed.column("error")[0].as_py()
    assert main(args) == 0  # the next run recomputes the removed input: nothing fails any more
    assert open_run(run_dir).sql("select count(*) as n from scenarios where status = 'ok'").to_pylist() == [{"n": 4}]
    assert verify_run(run_dir).ok


def _marker_times(run_dir: Path) -> dict[str, float]:
    """When the completion marker of every complete stage output (loose or packed) was written."""
    store = ArrayStore(run_dir)
    return {f"{stage}/{key}": store.written_at(stage, key) for stage, key in store.outputs()
            if store.is_complete(stage, key)}


def _wait(condition: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@pytest.mark.slow
@pytest.mark.ray
def test_two_concurrent_runs_into_one_folder(ray_session: object, tmp_path: Path) -> None:
    import ray

    spec = _spec(tmp_path, "conc")
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    cmd = [sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", str(tmp_path / "runs"), "--no-progress"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "conc"
    assert _wait(lambda: (run_dir / LOCK_NAME).exists(), 120)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 2
    line = _one_line(second.stderr)
    assert f"locked by another writer (host {socket.gethostname()}, pid {first.pid}, since " in line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    report = verify_run(run_dir)
    assert report.ok and {c.state for c in report.outputs} == {"ok"}
    assert open_run(run_dir).sql("select count(*) as n from scenarios where status = 'ok'").to_pylist() == [{"n": 4}]


def _ray_pids(pid: int) -> dict[int, str]:
    return ray_descendants(pid)


def _alive(recorded: dict[int, str]) -> list[int]:
    from ptycho_dist.orchestration.watchdog import process_table

    table = process_table()
    return [p for p, start in recorded.items() if p in table and table[p][1] == start]


def _start_local_run(tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], dict[int, str], Path]:
    """A run with its own local Ray, in a subprocess; returns it once a scenario is committed, with
    the Ray processes below it (pid -> start time)."""
    spec = _spec(tmp_path, name, extra="")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", str(tmp_path / "runs"),
           "--no-progress", "--max-in-flight", "1", "--num-cpus", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "runs" / name / "tables" / "scenarios"
    recorded: dict[int, str] = {}

    def committed() -> bool:
        recorded.update(_ray_pids(proc.pid))
        return parts.exists() and any(parts.glob("*.parquet"))

    assert _wait(committed, 300, step=0.1), "no scenario committed"
    recorded.update(_ray_pids(proc.pid))
    assert any("raylet" in c for c in _cmdlines(recorded)), _cmdlines(recorded)
    return proc, recorded, tmp_path / "runs" / name


def _cmdlines(pids: dict[int, str]) -> list[str]:
    from ptycho_dist.orchestration.watchdog import process_table

    table = process_table()
    return [table[p][2] for p in pids if p in table]


@pytest.mark.slow
@pytest.mark.ray
def test_driver_sigkill_takes_its_local_ray_along_and_the_rerun_resumes(ray_session: object, tmp_path: Path) -> None:
    import ray

    proc, recorded, run_dir = _start_local_run(tmp_path, "killed")
    assert len(recorded) >= 5  # gcs, raylet, agents, workers...
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    t0 = time.monotonic()
    gone = _wait(lambda: not _alive(recorded), 20, step=0.2)
    left = _alive(recorded)
    for pid in left:  # clean up what this test started, by PID, before failing
        os.kill(pid, signal.SIGKILL)
    assert gone, f"Ray processes alive 20 s after the driver's SIGKILL: {left}"
    assert time.monotonic() - t0 < 20
    time.sleep(1)
    done = _marker_times(run_dir)
    committed = TableStore(run_dir).committed_ids()
    assert read_lock(run_dir) is not None  # a SIGKILL leaves the lock: the rerun takes it over
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    rerun = subprocess.run([sys.executable, "-m", "ptycho_dist.cli", "run", str(tmp_path / "killed.toml"),
                            "--out", str(tmp_path / "runs"), "--no-progress"], env=env, capture_output=True,
                           text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the stale lock of host {socket.gethostname()}, pid {proc.pid}" in rerun.stderr
    after = _marker_times(run_dir)
    assert all(after[k] == v for k, v in done.items())  # finished stages were not recomputed
    run = open_run(run_dir)
    counts = run.sql("select count(*) as n, count(distinct scenario_id) as d from scenarios").to_pylist()
    assert counts == [{"n": 4, "d": 4}]
    per = run.sql("select scenario_id, count(*) as n from metrics group by 1").column("n").to_pylist()
    assert per == [4] * 4
    summary = json.loads((run_dir / "study.json").read_text())["summary"]
    assert summary["already_done"] == len(committed)
    assert verify_run(run_dir).ok


@pytest.mark.slow
@pytest.mark.ray
def test_driver_sigterm_releases_the_lock_and_stops_its_ray(tmp_path: Path) -> None:
    proc, recorded, run_dir = _start_local_run(tmp_path, "termed")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    gone = _wait(lambda: not _alive(recorded), 20, step=0.2)
    left = _alive(recorded)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert gone, f"Ray processes alive 20 s after SIGTERM: {left}"
    assert read_lock(run_dir) is None
