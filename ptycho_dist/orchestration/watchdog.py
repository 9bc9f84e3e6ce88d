"""The local Ray dies with the driver that started it, however the driver ends.

``ray.init()`` starts the head's processes (GCS, raylet, monitor, log monitor, dashboard) with
``PR_SET_PDEATHSIG``, so they die with the driver; but the raylet's own children (the dashboard agent
and the runtime-env agent) notice only by polling and then spend about a minute trying to report to
the dead GCS, and a driver killed with SIGKILL runs no clean-up at all. :class:`RayGuard` starts a small
watchdog process (``python -m ptycho_dist.orchestration.watchdog``) that:

- records, every :data:`POLL_SECONDS` while the driver lives, the Ray processes below it (descendants
  started after the watchdog whose command line names Ray, and everything below those), with their
  start times; it is started just before ``ray.init()`` and only when that call starts a local Ray;
- waits on a pipe from the driver: end of file means the driver exited or was killed (the kernel
  closes the pipe either way, no polling);
- then sends SIGTERM to every recorded process still running (same pid *and* start time: a reused
  pid is never signalled), and SIGKILL after :data:`GRACE_SECONDS` to what is left, and exits.

On a normal exit the driver calls ``ray.shutdown()`` first and closes the pipe, so the watchdog
finds nothing (or only stragglers) to stop. Only processes of this driver's local Ray are ever
signalled, by PID, never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["RayGuard", "process_table", "ray_descendants", "POLL_SECONDS", "GRACE_SECONDS"]

POLL_SECONDS = 0.5
GRACE_SECONDS = 2.0

#: pid -> (parent pid, start time, command line)
ProcessTable = dict[int, tuple[int, str, str]]


def _proc_table() -> ProcessTable:
    out: ProcessTable = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if fields[0] == "Z":  # a zombie: already dead
            continue
        out[int(d.name)] = (int(fields[1]), fields[19], cmd)
    return out


def _ps_table() -> ProcessTable:  # pragma: no cover - platforms without /proc (macOS)
    proc = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "lstart=", "-o", "command="],
                          capture_output=True, text=True, check=False)
    out: ProcessTable = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 7)
        if len(parts) >= 7 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = (int(parts[1]), " ".join(parts[2:7]), parts[7] if len(parts) > 7 else "")
    return out


def process_table() -> ProcessTable:
    """Every process: pid -> (parent pid, start time, command line)."""
    return _proc_table() if Path("/proc/self/stat").exists() else _ps_table()


def _is_ray(cmd: str) -> bool:
    """A Ray process: its binary or script lives in the ray package, or it is a worker (``ray::…``)."""
    return "ray::" in cmd or "/ray/" in cmd


def ray_descendants(root: int, table: ProcessTable | None = None, *, since: str | None = None) -> dict[int, str]:
    """Ray processes below ``root`` (pid -> start time): descendants whose command line names Ray
    (started at or after ``since``, in the table's start-time unit, when given) and every process
    below one of those (a worker's own children)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    after = (lambda start: int(start) >= int(since)) if since is not None and since.isdigit() else (lambda s: True)
    out: dict[int, str] = {}
    stack = [(root, False)]
    while stack:
        pid, inside = stack.pop()
        for c in children.get(pid, []):
            start, cmd = table[c][1], table[c][2]
            is_ray = inside or (_is_ray(cmd) and after(start))
            if is_ray:
                out[c] = start
            stack.append((c, is_ray))
    return out


def _signal_alive(recorded: dict[int, str], sig: int) -> int:
    table = process_table()
    n = 0
    for pid, start in recorded.items():
        if pid in table and table[pid][1] == start:
            try:
                os.kill(pid, sig)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
    return n


def watch(parent: int, pipe: IO[bytes]) -> None:
    """The watchdog's loop (in its own process): record the Ray processes below ``parent`` until
    ``pipe`` reaches end of file, then stop those still running."""
    recorded: dict[int, str] = {}
    done = threading.Event()
    me = process_table().get(os.getpid())
    since = me[1] if me is not None else None  # only processes started after the watchdog

    def wait_for_eof() -> None:
        try:
            while pipe.read(1):
                pass
        finally:
            done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    while not done.is_set():
        recorded.update(ray_descendants(parent, since=since))
        done.wait(POLL_SECONDS)
    if _signal_alive(recorded, signal.SIGTERM):
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(
                pid in (t := process_table()) and t[pid][1] == s for pid, s in recorded.items()):
            time.sleep(0.1)
        _signal_alive(recorded, signal.SIGKILL)


class RayGuard:
    """The watchdog of the local Ray this driver started (a context manager; :meth:`close` after
    ``ray.shutdown()``)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RayGuard:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ptycho_dist.orchestration.watchdog", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the driver's process group: a Ctrl-C or group kill spares it
            close_fds=True)
        return self

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def close(self, *, wait: float = GRACE_SECONDS + 3) -> None:
        """Close the pipe (the watchdog stops what is left of the local Ray) and wait for it."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:  # pragma: no cover - it exits on its own shortly
            pass

    def __enter__(self) -> RayGuard:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


if __name__ == "__main__":  # the watchdog process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(sys.argv[1]), sys.stdin.buffer)
