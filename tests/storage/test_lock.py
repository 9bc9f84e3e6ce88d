"""The run lock: one writer per run folder; stale locks detected; released on exit, exception, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ptycho_dist.errors import RunLockedError
from ptycho_dist.storage import lock as lock_mod
from ptycho_dist.storage.lock import LOCK_NAME, RunLock, read_lock


def _fake_lock(run: Path, **fields: object) -> None:
    record = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": lock_mod.process_start(os.getpid()),
              "since": time.time(), "heartbeat": time.time(), "token": "other", "command": "ptycho-dist run x.toml"}
    record.update(fields)
    run.mkdir(parents=True, exist_ok=True)
    (run / LOCK_NAME).write_text(json.dumps(record))


def test_one_writer_and_the_holder_is_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunLock(run) as held:
        info = read_lock(run)
        assert info is not None and info.token == held.token and info.pid == os.getpid()
        assert info.host == socket.gethostname() and info.pid_start == lock_mod.process_start(os.getpid())
        with pytest.raises(RunLockedError) as err:
            RunLock(run).acquire()
        msg = str(err.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}, since " in msg and "\n" not in msg
    assert not (run / LOCK_NAME).exists()  # released
    assert list(run.iterdir()) == []  # no temporary file left


def test_released_on_exception(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path):
            1 / 0
    assert read_lock(tmp_path) is None


def test_dead_holder_on_this_host_is_taken_over_with_a_notice(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _fake_lock(tmp_path, pid=int(proc.stdout), pid_start="1")
    notes: list[str] = []
    with RunLock(tmp_path, notify=notes.append) as held:
        assert read_lock(tmp_path).token == held.token
    assert len(notes) == 1 and f"pid {int(proc.stdout)}" in notes[0] and "is not running" in notes[0]


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    _fake_lock(tmp_path, pid_start="12345")  # our pid, another start time: the holder is gone
    notes: list[str] = []
    with RunLock(tmp_path, notify=notes.append):
        pass
    assert notes and "is not running" in notes[0]


def test_stale_heartbeat_of_another_host_needs_break_lock(tmp_path: Path) -> None:
    old = time.time() - 3600
    _fake_lock(tmp_path, host="elsewhere", pid=4242, since=old, heartbeat=old)
    with pytest.raises(RunLockedError, match=r"host elsewhere, pid 4242.*looks stale \(no heartbeat for 3600 s.*--break-lock"):
        RunLock(tmp_path).acquire()
    notes: list[str] = []
    with RunLock(tmp_path, break_stale=True, notify=notes.append):
        pass
    assert notes and "took over the stale lock of host elsewhere" in notes[0]


def test_a_live_holder_is_never_broken(tmp_path: Path) -> None:
    _fake_lock(tmp_path, host="elsewhere", pid=4242)  # fresh heartbeat
    with pytest.raises(RunLockedError, match="locked by another writer"):
        RunLock(tmp_path, break_stale=True).acquire()
    old = time.time() - 3600
    _fake_lock(tmp_path, since=old, heartbeat=old)  # this host, a live pid: a suspended run, not a dead one
    with pytest.raises(RunLockedError, match="locked by another writer"):
        RunLock(tmp_path, break_stale=True).acquire()
    assert read_lock(tmp_path).token == "other"


def test_heartbeat_is_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_mod, "HEARTBEAT_SECONDS", 0.05)
    with RunLock(tmp_path):
        first = read_lock(tmp_path).heartbeat
        deadline = time.monotonic() + 5
        while read_lock(tmp_path).heartbeat == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert read_lock(tmp_path).heartbeat > first


def test_sigterm_releases_the_lock(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from ptycho_dist.orchestration.driver import terminate_on_sigterm
        from ptycho_dist.storage.lock import RunLock
        with terminate_on_sigterm(), RunLock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    assert read_lock(tmp_path) is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert read_lock(tmp_path) is None


def test_without_hard_links_the_lock_is_created_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(lock_mod.os, "link", no_links)
    with RunLock(tmp_path) as held:
        assert read_lock(tmp_path).token == held.token
        with pytest.raises(RunLockedError, match="locked by another writer"):
            RunLock(tmp_path).acquire()
    assert read_lock(tmp_path) is None
