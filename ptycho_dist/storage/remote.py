"""Runs on object storage (``--out s3://bucket/prefix``, ``gs://bucket/prefix``): a local **mirror**
folder and the objects under ``<url>/<study>/``.

A run on object storage is computed and read on a local mirror, a folder laid out exactly as a local
run (:class:`~ptycho_dist.storage.run.RunLayout`), and kept in step with the store by
:class:`RemoteRun`:

* **down** (:meth:`RemoteRun.pull`): what the mirror lacks or holds in another version is downloaded
  (most names are immutable once written, so each is downloaded once; ``study.json``, the schema
  file and the lock are compared by their ETag and downloaded again when they changed);
* **up** (:meth:`RemoteRun.push`): files new or changed since the last sync are uploaded in commit
  order -- table parts before their commit record, a group's files before its marker ``zarr.json``,
  a pack before its index, ``study.json`` last -- and then the objects of files the mirror removed
  (segments made obsolete by compaction, loose groups moved into a pack) are deleted;
* the **lock** (:class:`RemoteLock`) is the object ``run.lock``, created with a create-only put
  (``If-None-Match``); its heartbeat is a conditional update on its ETag (``If-Match``), so a writer
  that lost it notices.

Workers on other nodes share no file system with the driver: each uses its own node's mirror, downloads
the outputs a task reads before it runs (:meth:`RemoteRun.fetch_outputs`) and uploads the output it
wrote after (:meth:`RemoteRun.upload_output`, the marker last).

The mirror is ``$PTYCHO_DIST_CACHE/<sha256(url)[:16]>/<study>`` (default cache
``~/.cache/ptycho_dist/mirrors``). Credentials come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``; ``GOOGLE_APPLICATION_CREDENTIALS``),
read by obstore; nothing of them is written into the run or the mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ptycho_dist.errors import RunLockedError, StorageError
from ptycho_dist.storage.lock import LOCK_NAME, HEARTBEAT_SECONDS, LockInfo, process_start

__all__ = ["is_remote", "normalize_url", "RemoteRun", "RemoteLock", "mirror_base", "SCHEMES",
           "PER_PROCESS_ENV", "local_run_dir"]

SCHEMES = ("s3", "gs")
#: test switch: every process uses its own mirror (the cache folder gets the pid), so that nothing
#: is shared through the file system between the driver and the workers of a local Ray
PER_PROCESS_ENV = "PTYCHO_DIST_MIRROR_PER_PROCESS"
_SYNC_FILE = ".sync.json"


def normalize_url(location: str | os.PathLike[str]) -> str | None:
    """``s3://bucket/prefix`` (or ``gs://``) without a trailing slash, for a location on object
    storage (a ``Path`` that collapsed ``s3://`` to ``s3:/`` included); None for a local path."""
    text = os.fspath(location)
    for scheme in SCHEMES:
        for head in (f"{scheme}://", f"{scheme}:/"):
            if text.startswith(head):
                rest = text[len(head):].strip("/")
                if not rest:
                    raise StorageError(f"{text}: no bucket in the URL (expected {scheme}://bucket/prefix)")
                return f"{scheme}://{rest}"
    return None


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names object storage (``s3://`` or ``gs://``)."""
    return normalize_url(location) is not None


def mirror_base() -> Path:
    """The folder of the mirrors (``$PTYCHO_DIST_CACHE`` or ``~/.cache/ptycho_dist/mirrors``)."""
    base = os.environ.get("PTYCHO_DIST_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "ptycho_dist" / "mirrors"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ("<?xml", "Debug source"):
        if marker in text:
            text = text.split(marker)[0].strip()
    return text[:400]


def _store_error(url: str, what: str, exc: BaseException) -> StorageError:
    return StorageError(f"{url}: {what} failed: {type(exc).__name__}: {_one_line(exc)} "
                        "(check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, "
                        "AWS_REGION or GOOGLE_APPLICATION_CREDENTIALS, and that the bucket exists)")


def _rank(rel: str) -> int:
    """Upload order: data first, then markers, packs, pack indexes, commit records, study.json."""
    parts = rel.split("/")
    if rel == "study.json":
        return 5
    if parts[0] == "commits":
        return 4
    if parts[0] == "arrays.zarr" and len(parts) == 3 and parts[1] == ".packs":
        return 3 if parts[2].startswith("index-") else 2
    if parts[0] == "arrays.zarr" and len(parts) == 4 and parts[3] == "zarr.json":
        return 1  # the marker of a group: after its arrays
    if parts[0] == "models" and parts[-1] == "bundle.json":
        return 1
    return 0


def _syncable(rel: str) -> bool:
    """Files that belong to the run: hidden entries (``.staging``, temporary files) and the local lock are not."""
    if rel == LOCK_NAME:
        return False
    return all(not p.startswith(".") or p == ".packs" for p in rel.split("/"))


class RemoteRun:
    """One run on object storage: the store under ``<url>`` and its local mirror folder ``root``."""

    def __init__(self, url: str) -> None:
        norm = normalize_url(url)
        if norm is None:
            raise StorageError(f"{url}: not an object storage URL (s3://... or gs://...)")
        self.url = norm
        name = norm.rsplit("/", 1)[-1]
        digest = hashlib.sha256(norm.encode()).hexdigest()[:16]
        if os.environ.get(PER_PROCESS_ENV):
            digest += f"-{os.getpid()}"
        self.root = mirror_base() / digest / name
        self._sync_path = self.root.parent / f"{_SYNC_FILE[:-5]}-{name}.json"
        self._store_obj: Any = None
        self._synced: dict[str, dict[str, Any]] | None = None

    @classmethod
    def for_study(cls, out: str, name: str) -> RemoteRun:
        norm = normalize_url(out)
        assert norm is not None
        return cls(f"{norm}/{name}")

    # -- the store ---------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        if self._store_obj is None:
            from obstore.store import from_url

            options: Any = {}
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
            if self.url.startswith("s3://") and endpoint.startswith("http://"):
                options["allow_http"] = True
            try:
                self._store_obj = from_url(self.url, client_options=options or None)
            except Exception as exc:  # noqa: BLE001 - an unusable URL or configuration: one line
                raise _store_error(self.url, "opening the store", exc) from None
        return self._store_obj

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import obstore.exceptions as oe

        try:
            return fn(self.store, *args, **kwargs)
        except (oe.AlreadyExistsError, oe.PreconditionError, FileNotFoundError):
            raise
        except oe.BaseError as exc:
            raise _store_error(self.url, what, exc) from None
        except OSError as exc:
            raise _store_error(self.url, what, exc) from None

    def listing(self, prefix: str | None = None) -> dict[str, dict[str, Any]]:
        """Relative path -> object metadata (size, e_tag) of every object under the run (or ``prefix``)."""
        import obstore

        def collect(store: Any, prefix: str | None) -> dict[str, dict[str, Any]]:
            # the listing is lazy: its requests (and their errors) happen while iterating
            return {str(meta["path"]): dict(meta) for chunk in obstore.list(store, prefix) for meta in chunk}

        return dict(self._call(f"listing {prefix or ''}", collect, prefix))

    def check_access(self) -> bool:
        """List the run's prefix (a StorageError naming the cause when the store refuses); True when
        the run already holds objects."""
        return bool(self.listing())

    def get_bytes(self, rel: str) -> tuple[bytes, str | None]:
        import obstore

        result = self._call(f"reading {rel}", obstore.get, rel)
        return bytes(result.bytes()), result.meta.get("e_tag")

    def put_bytes(self, rel: str, data: bytes, mode: Any = None) -> str | None:
        import obstore

        res = self._call(f"writing {rel}", obstore.put, rel, data, mode=mode)
        return res.get("e_tag") if isinstance(res, dict) else None

    def delete(self, rels: Iterable[str]) -> None:
        import obstore

        names = list(rels)
        for i in range(0, len(names), 500):
            self._call("deleting", obstore.delete, names[i:i + 500])

    # -- the sync record -------------------------------------------------------------------
    @property
    def synced(self) -> dict[str, dict[str, Any]]:
        """Relative path -> {"e_tag", "size", "mtime_ns"} of what was last downloaded or uploaded."""
        if self._synced is None:
            try:
                self._synced = dict(json.loads(self._sync_path.read_text()))
            except (OSError, ValueError):
                self._synced = {}
        return self._synced

    def _save(self) -> None:
        from ptycho_dist.storage.files import write_json_atomic

        self._sync_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._sync_path, self.synced)

    def _local_files(self) -> dict[str, os.stat_result]:
        out: dict[str, os.stat_result] = {}
        if not self.root.exists():
            return out
        for dirpath, dirs, names in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            dirs[:] = [d for d in dirs if not d.startswith(".") or d == ".packs"]
            for n in names:
                rel = n if rel_dir == "." else f"{rel_dir}/{n}"
                if _syncable(rel):
                    out[rel] = os.stat(os.path.join(dirpath, n))
        return out

    def _download(self, rel: str) -> None:
        data, etag = self.get_bytes(rel)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        st = path.stat()
        self.synced[rel] = {"e_tag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    # -- down --------------------------------------------------------------------------------
    def pull(self, *, prune: bool = False, with_lock: bool = False, prefix: str | None = None) -> int:
        """Download what the mirror lacks or holds in another version; ``prune``: also remove the
        mirror's files that the store no longer has (never while this process has files not
        uploaded yet). Returns the number of files downloaded."""
        remote = self.listing(prefix)
        self.root.mkdir(parents=True, exist_ok=True)
        local = self._local_files()
        count = 0
        for rel in sorted(remote, key=_rank):  # markers and records after what they vouch for
            if rel == LOCK_NAME:
                continue
            meta, have = remote[rel], self.synced.get(rel)
            if rel in local and have is not None and have.get("e_tag") == meta.get("e_tag") and \
                    have.get("size") == local[rel].st_size and have.get("mtime_ns") == local[rel].st_mtime_ns:
                continue
            if rel in local and have is None and local[rel].st_size == meta.get("size") and _rank(rel) != 5 \
                    and rel not in ("tables/_schema.json", "arrays.zarr/zarr.json"):
                # written here by a worker sharing this mirror: immutable names, same size
                self.synced[rel] = {"e_tag": meta.get("e_tag"), "size": local[rel].st_size,
                                    "mtime_ns": local[rel].st_mtime_ns}
                continue
            self._download(rel)
            count += 1
        lock_path = self.root / LOCK_NAME
        if with_lock:
            if LOCK_NAME in remote:
                try:
                    data, _etag = self.get_bytes(LOCK_NAME)
                    lock_path.write_bytes(data)
                except FileNotFoundError:
                    lock_path.unlink(missing_ok=True)
            else:
                lock_path.unlink(missing_ok=True)
        if prune and prefix is None:
            for rel in set(local) - set(remote):
                (self.root / rel).unlink(missing_ok=True)
                self.synced.pop(rel, None)
        self._save()
        return count

    # -- up ----------------------------------------------------------------------------------
    def push(self, *, delete: bool = True) -> int:
        """Upload the mirror's files that are new or changed since the last sync, in commit order,
        then delete the objects of files the mirror removed (``delete``). Returns the number uploaded."""
        local = self._local_files()
        changed = [rel for rel, st in local.items()
                   if (have := self.synced.get(rel)) is None or have.get("size") != st.st_size
                   or have.get("mtime_ns") != st.st_mtime_ns]
        for rel in sorted(changed, key=lambda r: (_rank(r), r)):
            self._upload(rel)
        if delete:
            gone = sorted(rel for rel in self.synced if rel not in local)
            if gone:
                self.delete(gone)
                for rel in gone:
                    self.synced.pop(rel, None)
        self._save()
        return len(changed)

    def _upload(self, rel: str) -> None:
        path = self.root / rel
        data = path.read_bytes()
        st = path.stat()
        etag = self.put_bytes(rel, data)
        self.synced[rel] = {"e_tag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    # -- workers -----------------------------------------------------------------------------
    def fetch_outputs(self, nodes: Iterable[tuple[str, str]]) -> None:
        """Make the outputs ``(stage, key)`` readable in this mirror: a loose group (its files, the
        files its marker vouches for, the marker last), or else the newest pack index and the pack
        holding it."""
        need_packs = False
        for stage, key in nodes:
            group = f"arrays.zarr/{stage}/{key}"
            if (self.root / group / "zarr.json").exists():
                continue
            objects = self.listing(f"{group}/")
            if f"{group}/zarr.json" not in objects:
                need_packs = True
                continue
            marker = f"{group}/zarr.json"
            data, _ = self.get_bytes(marker)
            vouched = json.loads(data).get("attributes", {}).get("ptycho_dist_complete", {}).get("files", [])
            for rec in vouched:
                if not (self.root / rec["path"]).exists():
                    self._fetch_one(rec["path"])
            for rel in sorted(r for r in objects if r != marker):
                self._fetch_one(rel)
            target = self.root / marker
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".zarr.json.{uuid.uuid4().hex[:8]}.part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        if need_packs:
            self.fetch_packs()

    def fetch_packs(self) -> None:
        """The newest pack index and the packs it names that this mirror lacks."""
        listing = self.listing("arrays.zarr/.packs/")
        indexes = sorted(r for r in listing if r.rsplit("/", 1)[-1].startswith("index-"))
        if not indexes:
            return
        newest = indexes[-1]
        data, _ = self.get_bytes(newest)
        index = json.loads(data)
        for pack in sorted(set(index.get("outputs", {}).values())):
            rel = f"arrays.zarr/.packs/{pack}"
            if not (self.root / rel).exists():
                self._fetch_one(rel)
        target = self.root / newest
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def _fetch_one(self, rel: str) -> None:
        data, _ = self.get_bytes(rel)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def upload_output(self, stage: str, key: str) -> int:
        """Upload the loose group ``<stage>/<key>`` of this mirror: the files its marker vouches for
        (model bundles), its arrays, its marker ``zarr.json`` last; and the stage's engine log."""
        group = self.root / "arrays.zarr" / stage / key
        marker = group / "zarr.json"
        if not marker.exists():
            return 0
        rels: list[str] = []
        vouched = json.loads(marker.read_bytes()).get("attributes", {}).get("ptycho_dist_complete", {}).get("files", [])
        rels.extend(str(rec["path"]) for rec in vouched)
        for dirpath, _dirs, names in os.walk(group):
            for n in sorted(names):
                rel = os.path.relpath(os.path.join(dirpath, n), self.root)
                if rel != os.path.relpath(marker, self.root) and _syncable(rel):
                    rels.append(rel)
        bundle = self.root / "models" / key / "bundle.json"
        if bundle.exists():  # weights first, bundle.json last
            for p in sorted((self.root / "models" / key).iterdir(), key=lambda q: q.name == "bundle.json"):
                rels.append(os.path.relpath(p, self.root))
        log = self.root / "logs" / f"{stage}-{key[:16]}.engine.log"
        if log.exists():
            rels.append(os.path.relpath(log, self.root))
        rels.append(os.path.relpath(marker, self.root))
        for rel in dict.fromkeys(rels):
            self.put_bytes(rel, (self.root / rel).read_bytes())
        return len(rels)


def local_run_dir(run_dir: str | os.PathLike[str], *, with_lock: bool = True) -> Path:
    """The local folder of a run: ``run_dir`` itself, or for a URL its mirror, synced down first."""
    if not is_remote(run_dir):
        return Path(run_dir)
    remote = RemoteRun(os.fspath(run_dir))
    if not remote.check_access():
        raise StorageError(f"{remote.url}: not a ptycho-dist run (no objects under it)")
    remote.pull(prune=True, with_lock=with_lock)
    return remote.root


class RemoteLock:
    """The lock object ``<run>/run.lock`` of a run on object storage (see :class:`~ptycho_dist.storage.lock.RunLock`
    for the rules: a live holder is never broken; a stale one by heartbeat only with ``break_stale``).

    Created with a create-only put; the heartbeat rewrites it only if its ETag is still the one this
    holder wrote (a conditional put), so a holder whose lock was taken over stops refreshing it."""

    def __init__(self, remote: RemoteRun, *, break_stale: bool = False, command: str = "run",
                 notify: Any = None) -> None:
        self.remote = remote
        self.break_stale = break_stale
        self.command = command
        self.notify = notify
        self.token = uuid.uuid4().hex
        self.since = time.time()
        self.etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _record(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                           "since": self.since, "heartbeat": time.time(), "token": self.token,
                           "command": self.command}).encode()

    def acquire(self) -> RemoteLock:
        import obstore.exceptions as oe

        where = f"{self.remote.url}/{LOCK_NAME}"
        for _ in range(5):
            try:
                self.etag = self.remote.put_bytes(LOCK_NAME, self._record(), mode="create")
                self._start()
                return self
            except oe.AlreadyExistsError:
                pass
            try:
                data, etag = self.remote.get_bytes(LOCK_NAME)
            except FileNotFoundError:
                continue
            try:
                holder = LockInfo.from_dict(json.loads(data))
            except (ValueError, KeyError, TypeError):
                holder = LockInfo("?", -1, None, 0.0, 0.0, "?")
            reason = holder.stale_reason()
            if reason is None:
                raise RunLockedError(f"{where}: locked by another writer ({holder.describe()}"
                                     f"{', ' + holder.command if holder.command else ''}); wait for it to finish "
                                     "or stop it, or choose another --out")
            if not (holder.certainly_dead() or self.break_stale):
                raise RunLockedError(f"{where}: locked by {holder.describe()}, which looks stale ({reason}); "
                                     "if that run is really gone, re-run with --break-lock")
            try:  # take it over only if it is still the lock judged stale
                self.etag = self.remote.put_bytes(LOCK_NAME, self._record(),
                                                  mode={"e_tag": etag} if etag else "overwrite")
            except (oe.PreconditionError, FileNotFoundError):
                continue
            except oe.NotSupportedError:  # pragma: no cover - a store without conditional updates
                self.remote.delete([LOCK_NAME])
                continue
            if self.notify is not None:
                self.notify(f"{where}: took over the stale lock of {holder.describe()} ({reason})")
            self._start()
            return self
        raise RunLockedError(f"{where}: could not take the lock (other writers keep taking it)")

    def _start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="ptycho-dist-remote-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.refresh()

    def refresh(self) -> None:
        """Rewrite the heartbeat if the lock object is still the one this holder wrote."""
        import obstore.exceptions as oe

        if self.etag is None or self.lost:
            return
        try:
            self.etag = self.remote.put_bytes(LOCK_NAME, self._record(), mode={"e_tag": self.etag})
        except (oe.PreconditionError, FileNotFoundError):
            self.lost = True  # taken over by another writer
        except oe.NotSupportedError:  # pragma: no cover - no conditional updates: overwrite if still ours
            if self.owned():
                self.etag = self.remote.put_bytes(LOCK_NAME, self._record())
        except StorageError:  # the store unreachable for a while: the next beat tries again
            pass

    def owned(self) -> bool:
        try:
            data, _ = self.remote.get_bytes(LOCK_NAME)
        except FileNotFoundError:
            return False
        try:
            return bool(json.loads(data).get("token") == self.token)
        except ValueError:
            return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.etag is not None and not self.lost and self.owned():
            self.remote.delete([LOCK_NAME])
        self.etag = None

    def __enter__(self) -> RemoteLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
