"""One writer per run folder: ``<run>/run.lock``.

The lock file is created atomically: its content (host, pid, the process's start time, when it was
taken, a heartbeat, a random token) is written to a temporary file that is then hard-linked to
``run.lock``; ``os.link`` fails when the name exists, so exactly one writer gets it, and a reader never
sees a half-written lock (on file systems without hard links: ``O_CREAT | O_EXCL``, then the content;
a reader that finds it empty treats it as held, by an unknown holder). The holder refreshes the heartbeat every :data:`HEARTBEAT_SECONDS` from a
thread (atomic rewrite, only while the token is still its own) and removes the file on release.

A lock is **stale** when its holder is on this host and its process is gone (or the pid now belongs to
another process: the start times differ) -- a driver killed with SIGKILL -- or when its holder is on
another host and its heartbeat is older than :data:`STALE_AFTER_SECONDS` (it stopped refreshing). A
holder on this host whose process runs is live, whatever its heartbeat (a suspended run, say). A stale
lock of a dead process on this host is certain and is taken over with a notice; one judged only by its
heartbeat is reported and taken over only when asked (``break_stale=True``, ``run --break-lock``). A
live holder is never broken.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ptycho_dist.errors import RunLockedError
from ptycho_dist.storage.files import fsync_dir, write_json_atomic

__all__ = ["RunLock", "LockInfo", "LOCK_NAME", "HEARTBEAT_SECONDS", "STALE_AFTER_SECONDS", "read_lock",
           "process_start"]

LOCK_NAME = "run.lock"
#: how often the holder refreshes its heartbeat
HEARTBEAT_SECONDS = 10.0
#: a heartbeat older than this makes a lock stale (6 missed refreshes)
STALE_AFTER_SECONDS = 60.0


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``; None elsewhere
    or when there is no such process): with the pid, it names one process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:  # pragma: no cover - a /proc format we do not know
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if start is not None and Path("/proc").is_dir():
        return process_start(pid) == start
    return True


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its holder."""

    host: str
    pid: int
    pid_start: str | None
    since: float
    heartbeat: float
    token: str
    command: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LockInfo:
        return cls(str(data["host"]), int(data["pid"]), data.get("pid_start"), float(data["since"]),
                   float(data.get("heartbeat", data["since"])), str(data["token"]), str(data.get("command", "")))

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"host {self.host}, pid {self.pid}, since {since}"

    def stale_reason(self, *, now: float | None = None) -> str | None:
        """Why the holder is gone (None while it looks alive)."""
        now = time.time() if now is None else now
        if self.host == socket.gethostname():  # this host: the process table is the truth
            return None if _alive(self.pid, self.pid_start) else f"process {self.pid} is not running on {self.host}"
        age = now - self.heartbeat
        if age > STALE_AFTER_SECONDS:
            return f"no heartbeat for {age:.0f} s (more than {STALE_AFTER_SECONDS:.0f} s)"
        return None

    def certainly_dead(self) -> bool:
        """The holder ran on this host and its process is gone: nothing can still be writing."""
        return self.host == socket.gethostname() and not _alive(self.pid, self.pid_start)


def read_lock(run_dir: str | Path) -> LockInfo | None:
    """The lock of ``run_dir`` (None when it is not locked; an unreadable lock file is reported as a
    lock without a known holder, heartbeat from its modification time)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LockInfo.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return None
        return LockInfo("?", -1, None, mtime, mtime, "?")


class RunLock:
    """The lock of one run folder, as a context manager (acquired on enter, released on exit).

    Parameters
    ----------
    run_dir : path
        The run folder (created if needed).
    break_stale : bool
        Take over a lock that is stale by its heartbeat only (another host); a lock of a dead
        process on this host is always taken over.
    command : str
        What holds it (shown to the next writer).
    notify : callable, optional
        Called with one line when a stale lock is taken over.
    """

    def __init__(self, run_dir: str | Path, *, break_stale: bool = False, command: str = "run",
                 notify: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.break_stale = break_stale
        self.command = command
        self.notify = notify
        self.token = uuid.uuid4().hex
        self.info: LockInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, since: float) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                "since": since, "heartbeat": time.time(), "token": self.token, "command": self.command}

    def _try_create(self) -> bool:
        """Create the lock file whole and atomically (a hard link of a written file; where the file
        system has no hard links, ``O_CREAT | O_EXCL`` and then the content)."""
        tmp = self.run_dir / f".{LOCK_NAME}.{self.token}.tmp"
        record = self._record(time.time())
        write_json_atomic(tmp, record)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                raise
            return self._create_exclusive(record)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.run_dir)
        return True

    def _create_exclusive(self, record: dict[str, Any]) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record))
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.run_dir)
        return True

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`~ptycho_dist.errors.RunLockedError` naming the holder."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a holder may release (or another writer break) the lock meanwhile
            if self._try_create():
                self.info = LockInfo.from_dict(json.loads(self.path.read_text()))
                self._start_heartbeat()
                return self
            holder = read_lock(self.run_dir)
            if holder is None:
                continue
            reason = holder.stale_reason()
            if reason is None:
                raise RunLockedError(f"{self.run_dir}: locked by another writer ({holder.describe()}"
                                     f"{', ' + holder.command if holder.command else ''}); wait for it to finish "
                                     "or stop it (kill its pid), or choose another --out")
            if not (holder.certainly_dead() or self.break_stale):
                raise RunLockedError(f"{self.run_dir}: locked by {holder.describe()}, which looks stale ({reason}); "
                                     "if that run is really gone, re-run with --break-lock")
            self._break(holder, reason)
        raise RunLockedError(f"{self.run_dir}: could not take the lock (other writers keep taking it)")

    def _break(self, holder: LockInfo, reason: str) -> None:
        """Remove a stale lock: renamed aside first (one breaker wins), then put back if what was
        moved is not the lock that was judged stale (a fresh one taken meanwhile)."""
        aside = self.run_dir / f".{LOCK_NAME}.broken.{self.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = LockInfo.from_dict(json.loads(aside.read_text())).token
        except (ValueError, KeyError, TypeError):
            moved = holder.token  # unreadable: the lock that was judged
        if moved != holder.token:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        if self.notify is not None:
            self.notify(f"{self.run_dir}: took over the stale lock of {holder.describe()} ({reason})")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="ptycho-dist-run-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.refresh()

    def owned(self) -> bool:
        """True while the lock file is this holder's."""
        holder = read_lock(self.run_dir)
        return holder is not None and holder.token == self.token

    def refresh(self) -> None:
        """Rewrite the heartbeat (only while the lock is still ours)."""
        if self.info is None or not self.owned():
            return
        try:
            write_json_atomic(self.path, self._record(self.info.since))
        except OSError:  # a full disk: the next beat tries again; staleness needs 6 missed beats
            pass

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.info is not None and self.owned():
            self.path.unlink(missing_ok=True)
        self.info = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
