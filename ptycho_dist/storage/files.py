"""Durable file writes: write to a temporary name in the same folder, fsync, ``os.replace``.

Files are created with mode ``0o666`` minus the process umask, as ``open()`` does (a shared run folder
stays readable by the colleagues the umask allows); the temporary name is created with ``O_EXCL``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["write_bytes_atomic", "write_text_atomic", "write_json_atomic", "fsync_dir", "fsync_tree",
           "sha256_bytes", "sha256_file", "TEMP_SUFFIX"]

#: suffix of the temporary files of :func:`write_bytes_atomic` (a crash can leave one behind; never read)
TEMP_SUFFIX = ".tmp"


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where folders cannot
    be opened (some platforms and file systems)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. EINVAL on file systems that do not sync folders
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync every file below ``path``, then ``path`` itself: the data written there is on disk.

    The folders below are not synced one by one (a dozen per zarr group, each as slow as a file):
    what they would lose in a crash is caught anyway by the manifest a completion marker holds."""
    root = Path(path)
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(root)


def write_bytes_atomic(path: str | Path, data: bytes, *, sync_dir: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one, its
    data on disk when this returns (fsynced before the rename); with ``sync_dir`` the rename too (the
    folder is fsynced)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(p.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text variant of :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Pretty JSON variant of :func:`write_bytes_atomic` (NaN refused)."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, block: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at ``path`` (read in blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
