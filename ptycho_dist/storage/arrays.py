"""Zarr v3 array store of a run (``<run>/arrays.zarr``).

Every stage output is one zarr group ``<stage>/<key>`` (the stage names of the registry,
:data:`ptycho_dist.study.registry.STAGES`) holding named arrays with ``dimension_names`` (xarray and
tensorstore read them), chunked along their first (pattern/group) axis, compressed with Blosc/Zstd and
checksummed: every chunk ends with its CRC32C (zarr v3's ``crc32c`` codec, verified on every read).
The group's attributes carry the stage's small results (scalars, spec, rows) and the **completion
marker**, which holds a manifest of what it vouches for: per array its shape, dtype, number of chunk
files and bytes and the SHA-256 of its metadata, the SHA-256 of the other attributes, and the sizes and
SHA-256 of files stored beside the group (model bundles).

Writes are atomic and durable: a group is written under ``arrays.zarr/.staging/<random>``, marker
last, fsynced, then renamed to ``<stage>/<key>``. A group at its final path is therefore complete; one
whose marker is missing (a writer of an older version killed mid-way) or whose files no longer match
the manifest (a chunk lost or truncated) is never read as complete: it is redone by the next run.
:meth:`ArrayStore.check` with ``deep=True`` also decodes every chunk (checksums) and hashes the files,
which is what ``ptycho-dist verify`` does.
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import shutil
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from ptycho_dist.errors import CorruptDataError, StorageError
from ptycho_dist.storage.files import fsync_dir, fsync_tree, sha256_bytes, sha256_file, write_bytes_atomic
from ptycho_dist.study.registry import STAGES

__all__ = ["ArrayStore", "NamedArray", "StageGroup", "MARKER", "OutputCheck", "FileDigest", "STAGING",
           "REPAIR_HINT"]

#: attribute that marks a complete stage output
MARKER = "ptycho_dist_complete"
#: elements per chunk along the first axis (patterns, groups)
CHUNK_ITEMS = 256
#: folder of ``arrays.zarr`` where groups are written before they are renamed into place
STAGING = ".staging"
#: folder of ``arrays.zarr`` holding the packs (zip files of many groups) and their index
PACKS = ".packs"
#: what a message about damaged data tells the user to do
REPAIR_HINT = "run `ptycho-dist verify RUN --repair`"


@dataclass(frozen=True)
class NamedArray:
    """An array and the names of its dimensions."""

    data: np.ndarray
    dims: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.data.ndim != len(self.dims):
            raise StorageError(f"array of shape {self.data.shape} given {len(self.dims)} dimension names {self.dims}")


@dataclass(frozen=True)
class FileDigest:
    """Size and SHA-256 of a file stored beside a group (path relative to the run folder)."""

    path: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, run_dir: Path, path: Path) -> FileDigest:
        return cls(str(path.relative_to(run_dir)), path.stat().st_size, sha256_file(path))


@dataclass(frozen=True)
class OutputCheck:
    """The state of one stage output: ``ok``, ``missing``, ``unfinished`` (no marker), ``corrupt``
    (files that do not match the manifest or fail their checksum) or ``unverified`` (written by an
    older version, without a manifest, but readable). ``problem`` names the damaged file."""

    stage: str
    key: str
    state: str
    problem: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("ok", "unverified")


@dataclass(frozen=True)
class StageGroup:
    """A complete stage output read back: arrays are loaded lazily by name."""

    path: str
    attrs: Mapping[str, Any]
    _group: Any
    _where: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            arr = self._group[name]
        except KeyError:
            raise StorageError(f"{self.path}: no array {name!r}") from None
        except Exception as exc:  # noqa: BLE001 - unreadable metadata of a stored array
            raise self._corrupt(name, exc) from exc
        try:
            return np.asarray(arr[...])
        except Exception as exc:  # noqa: BLE001 - a chunk that fails its checksum or does not decode
            raise self._corrupt(name, exc) from exc

    def _corrupt(self, name: str, exc: BaseException) -> CorruptDataError:
        stage, _, key = self.path.partition("/")
        where = f"{self._where or self.path}/{name}"
        return CorruptDataError(f"{where}: damaged ({type(exc).__name__}: {str(exc)[:160]}); {REPAIR_HINT}",
                                path=where, stage=stage, key=key)

    def names(self) -> list[str]:
        return sorted(self._group.array_keys())


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    if not shape:
        return ()
    return (max(1, min(shape[0], CHUNK_ITEMS)), *shape[1:])


def _array_manifest(folder: Path) -> dict[str, Any]:
    """What an array folder holds: number of chunk files, their bytes, the metadata's SHA-256."""
    meta = (folder / "zarr.json").read_bytes()
    files, size = 0, 0
    chunk_root = folder / "c"
    for sub, _dirs, names in os.walk(chunk_root):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(sub, n))
    return {"files": files, "bytes": size, "meta_sha256": sha256_bytes(meta)}


def _packed_manifest(pack: zipfile.ZipFile, prefix: str) -> dict[str, Any]:
    """:func:`_array_manifest` of an array stored in a pack under ``prefix`` (``stage/key/name``)."""
    meta = pack.read(f"{prefix}/zarr.json")
    chunks = f"{prefix}/c/"
    infos = _entries_under(pack, chunks)
    return {"files": len(infos), "bytes": sum(i.file_size for i in infos), "meta_sha256": sha256_bytes(meta)}


def _entries_under(pack: zipfile.ZipFile, prefix: str) -> list[zipfile.ZipInfo]:
    """The entries of ``pack`` whose names start with ``prefix`` (a sorted name list, bisected)."""
    names = _sorted_names(pack)
    i = bisect.bisect_left(names, prefix)
    out = []
    while i < len(names) and names[i].startswith(prefix):
        out.append(pack.getinfo(names[i]))
        i += 1
    return out


_SORTED_NAMES: dict[int, list[str]] = {}


def _sorted_names(pack: zipfile.ZipFile) -> list[str]:
    key = id(pack)
    if key not in _SORTED_NAMES:
        _SORTED_NAMES[key] = sorted(pack.namelist())
    return _SORTED_NAMES[key]


class _Packs:
    """Read side of the packs of one store: the newest index and the open pack files (cached per
    process by path and modification time: packs are never rewritten, an index is replaced)."""

    _index_cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    _open: dict[str, tuple[zipfile.ZipFile, Any]] = {}

    @classmethod
    def index(cls, folder: Path) -> tuple[Path | None, dict[str, Any]]:
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith("index-") and n.endswith(".json"))
        except FileNotFoundError:
            return None, {"packs": {}, "outputs": {}}
        if not names:
            return None, {"packs": {}, "outputs": {}}
        path = folder / names[-1]
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = cls._index_cache.get(str(path))
        if hit is None or hit[0] != stamp:
            data = json.loads(path.read_text())
            cls._index_cache[str(path)] = (stamp, data)
            hit = cls._index_cache[str(path)]
        return path, hit[1]

    @classmethod
    def open(cls, path: Path) -> tuple[zipfile.ZipFile, Any]:
        """The pack as a zip file and as a read-only zarr store."""
        st = path.stat()
        key = f"{path}:{st.st_mtime_ns}:{st.st_size}"
        if key not in cls._open:
            if len(cls._open) >= 16:
                old_key = next(iter(cls._open))
                zf_old, store_old = cls._open.pop(old_key)
                _SORTED_NAMES.pop(id(zf_old), None)
            zf = zipfile.ZipFile(path, "r")
            store = zarr.storage.ZipStore(str(path), mode="r")
            cls._open[key] = (zf, store)
        return cls._open[key]


def _attrs_digest(attrs: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a group's attributes, the marker left out."""
    body = {k: v for k, v in attrs.items() if k != MARKER}
    return sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode())


class ArrayStore:
    """The zarr v3 store of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "arrays.zarr"

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def initialize(self) -> None:
        """Create the root and the top-level groups (idempotent; done by the driver before any task)."""
        root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
        for stage in STAGES:
            root.require_group(stage)

    def clear_staging(self) -> int:
        """Remove what writers that died left in the staging folder (only while no writer runs: the
        run lock is held); returns the number of entries removed."""
        folder = self.path / STAGING
        if not folder.exists():
            return 0
        entries = list(folder.iterdir())
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True)
        return len(entries)

    def group_dir(self, stage: str, key: str) -> Path:
        return self.path / stage / key

    def _open(self, stage: str, key: str) -> tuple[Any, dict[str, Any]] | OutputCheck:
        """The zarr group and its attributes, or why it cannot be used: the loose group when there
        is one, else the group in a pack."""
        folder = self.group_dir(stage, key)
        if not (folder / "zarr.json").exists():
            return self._open_packed(stage, key)
        try:
            group = zarr.open_group(str(self.path), path=f"{stage}/{key}", mode="r", zarr_format=3)
            attrs: dict[str, Any] = dict(group.attrs)
        except FileNotFoundError:  # zarr's GroupNotFoundError is one; packed meanwhile
            return self._open_packed(stage, key)
        except Exception as exc:  # noqa: BLE001 - metadata that is not a zarr group (damaged JSON...)
            return OutputCheck(stage, key, "corrupt", f"{self._rel(folder / 'zarr.json')}: unreadable "
                               f"({type(exc).__name__}: {str(exc)[:120]})")
        marker = attrs.get(MARKER)
        if not isinstance(marker, dict) or not marker.get("complete", False):
            return OutputCheck(stage, key, "unfinished", f"{self._rel(folder)}: no completion marker")
        return group, attrs

    def pack_of(self, stage: str, key: str) -> Path | None:
        """The pack holding ``<stage>/<key>`` (None when it is not packed)."""
        _path, index = _Packs.index(self.path / PACKS)
        name = index["outputs"].get(f"{stage}/{key}")
        return None if name is None else self.path / PACKS / name

    def _open_packed(self, stage: str, key: str) -> tuple[Any, dict[str, Any]] | OutputCheck:
        pack = self.pack_of(stage, key)
        if pack is None:
            return OutputCheck(stage, key, "missing")
        where = f"{self._rel(pack)}:{stage}/{key}"
        try:
            _zf, store = _Packs.open(pack)
            group = zarr.open_group(store, path=f"{stage}/{key}", mode="r", zarr_format=3)
            attrs = dict(group.attrs)
        except FileNotFoundError:
            return OutputCheck(stage, key, "missing", f"{where}: pack missing")
        except Exception as exc:  # noqa: BLE001 - a damaged pack (bad zip, CRC, JSON)
            return OutputCheck(stage, key, "corrupt", f"{where}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
        marker = attrs.get(MARKER)
        if not isinstance(marker, dict) or not marker.get("complete", False):
            return OutputCheck(stage, key, "unfinished", f"{where}: no completion marker")
        return group, attrs

    def _label(self, stage: str, key: str, group: Any) -> str:
        """The group's path for messages: ``arrays.zarr/<stage>/<key>`` or ``<pack>:<stage>/<key>``."""
        kind, loc = self._location(stage, key, group)
        return self._rel(self.group_dir(stage, key)) if kind == "loose" else f"{self._rel(loc[1])}:{stage}/{key}"

    def _location(self, stage: str, key: str, group: Any) -> tuple[str, Any]:
        """Where an opened group lives: ("loose", folder) or ("pack", (zipfile, pack path))."""
        if isinstance(group.store, zarr.storage.ZipStore):
            pack = Path(str(group.store.path))
            return "pack", (_Packs.open(pack)[0], pack)
        return "loose", self.group_dir(stage, key)

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.run_dir))

    def check(self, stage: str, key: str, *, deep: bool = False) -> OutputCheck:
        """The state of ``<stage>/<key>`` (:class:`OutputCheck`).

        Without ``deep``, only what costs no reading: the marker, and the files of every array and
        bundle file against the manifest (count and bytes), the attributes against their digest.
        With ``deep``, every chunk is decoded (its CRC32C checked) and every file hashed.
        """
        opened = self._open(stage, key)
        if isinstance(opened, OutputCheck):
            return opened
        return self._check_opened(stage, key, *opened, deep=deep)

    def _check_opened(self, stage: str, key: str, group: Any, attrs: dict[str, Any], *, deep: bool) -> OutputCheck:
        marker = attrs[MARKER]
        manifest = marker.get("manifest")
        if manifest is None:  # written by a version without manifests: only readability can be checked
            problem = self._decode_all(stage, key, group, list(group.array_keys())) if deep else ""
            return OutputCheck(stage, key, "corrupt" if problem else "unverified", problem)
        kind, where = self._location(stage, key, group)
        folder = self.group_dir(stage, key)
        label = self._rel(folder) if kind == "loose" else f"{self._rel(where[1])}:{stage}/{key}"
        if marker.get("attrs_sha256") not in (None, _attrs_digest(attrs)):
            return OutputCheck(stage, key, "corrupt", f"{label}/zarr.json: attributes do not match their digest")
        for name, want in manifest.items():
            if kind == "loose":
                problem = self._check_array(folder / name, want)
            else:
                problem = self._check_packed_array(where[0], f"{stage}/{key}/{name}", label + f"/{name}", want)
            if problem:
                return OutputCheck(stage, key, "corrupt", problem)
        for rec in marker.get("files", []):
            problem = self._check_file(FileDigest(**rec), deep=deep)
            if problem:
                return OutputCheck(stage, key, "corrupt", problem)
        if deep:
            problem = self._decode_all(stage, key, group, list(manifest))
            if problem:
                return OutputCheck(stage, key, "corrupt", problem)
        return OutputCheck(stage, key, "ok")

    def _check_array(self, folder: Path, want: Mapping[str, Any]) -> str:
        try:
            have = _array_manifest(folder)
        except FileNotFoundError:
            return f"{self._rel(folder)}: array missing"
        if have["meta_sha256"] != want["meta_sha256"]:
            return f"{self._rel(folder / 'zarr.json')}: metadata changed since it was written"
        if have["files"] != want["files"]:
            return f"{self._rel(folder / 'c')}: {have['files']} of {want['files']} chunk files"
        if have["bytes"] != want["bytes"]:
            return f"{self._rel(folder / 'c')}: {have['bytes']} bytes of chunks, {want['bytes']} written"
        return ""

    @staticmethod
    def _check_packed_array(pack: zipfile.ZipFile, prefix: str, label: str, want: Mapping[str, Any]) -> str:
        try:
            have = _packed_manifest(pack, prefix)
        except KeyError:
            return f"{label}: array missing"
        except (zipfile.BadZipFile, OSError) as exc:
            return f"{label}: unreadable ({type(exc).__name__}: {str(exc)[:100]})"
        if have["meta_sha256"] != want["meta_sha256"]:
            return f"{label}/zarr.json: metadata changed since it was written"
        if have["files"] != want["files"] or have["bytes"] != want["bytes"]:
            return f"{label}/c: {have['files']} chunk files, {have['bytes']} bytes; {want['files']}, {want['bytes']} written"
        return ""

    def _check_file(self, rec: FileDigest, *, deep: bool) -> str:
        path = self.run_dir / rec.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{rec.path}: missing"
        if size != rec.bytes:
            return f"{rec.path}: {size} bytes, {rec.bytes} written"
        if deep and sha256_file(path) != rec.sha256:
            return f"{rec.path}: SHA-256 does not match"
        return ""

    def _decode_all(self, stage: str, key: str, group: Any, names: list[str]) -> str:
        """Read every chunk of every array (one chunk row at a time); the first damaged file, or ''."""
        for name in names:
            try:
                arr = group[name]
            except Exception as exc:  # noqa: BLE001
                return f"{self._rel(self.group_dir(stage, key) / name / 'zarr.json')}: unreadable ({type(exc).__name__})"
            if not arr.shape:
                continue
            step = arr.chunks[0]
            for i, start in enumerate(range(0, arr.shape[0], step)):
                try:
                    np.asarray(arr[start:start + step])
                except Exception as exc:  # noqa: BLE001 - checksum mismatch, truncated or undecodable chunk
                    kind, loc = self._location(stage, key, group)
                    where = (self._rel(self.group_dir(stage, key) / name / "c" / str(i)) if kind == "loose"
                             else f"{self._rel(loc[1])}:{stage}/{key}/{name}/c/{i}")
                    return f"{where}…: {type(exc).__name__}: {str(exc)[:100]}"
        return ""

    def _open_complete(self, stage: str, key: str) -> tuple[Any, dict[str, Any]] | OutputCheck:
        """The group and attributes of a usable output (structural check), or its :class:`OutputCheck`."""
        opened = self._open(stage, key)
        if isinstance(opened, OutputCheck):
            return opened
        state = self._check_opened(stage, key, *opened, deep=False)
        return opened if state.usable else state

    def is_complete(self, stage: str, key: str) -> bool:
        """True when ``<stage>/<key>`` carries the completion marker and its files match the manifest."""
        return not isinstance(self._open_complete(stage, key), OutputCheck)

    def write(self, stage: str, key: str, arrays: Mapping[str, NamedArray], attrs: Mapping[str, Any],
              files: tuple[FileDigest, ...] = ()) -> None:
        """Write a stage output from scratch: arrays, then the attributes with the marker and its
        manifest, fsync, then rename into place (an earlier group at the same path is replaced).
        ``files`` are files stored beside the group that the marker vouches for too."""
        if stage not in STAGES:
            raise StorageError(f"unknown stage {stage!r}; expected one of {STAGES}")
        staging = self.path / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{stage}-{key[:16]}-{uuid.uuid4().hex[:12]}"
        try:
            self._write_group(tmp, arrays, attrs, files)
            self._place(tmp, self.group_dir(stage, key))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_group(self, tmp: Path, arrays: Mapping[str, NamedArray], attrs: Mapping[str, Any],
                     files: tuple[FileDigest, ...]) -> None:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for name, arr in arrays.items():
            data = np.ascontiguousarray(arr.data)
            z = group.create_array(
                name, shape=data.shape, dtype=data.dtype, chunks=_chunks(data.shape),
                dimension_names=arr.dims,
                compressors=(BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=data.dtype.itemsize),
                             Crc32cCodec()),
                config={"write_empty_chunks": True},  # every chunk is a file: a lost one is detected
            )
            z[...] = data
        body = json.loads(json.dumps(dict(attrs), allow_nan=True))  # as zarr stores them (tuples -> lists)
        marker = {"complete": True, "written_at": time.time(),
                  "manifest": {name: _array_manifest(tmp / name) for name in arrays},
                  "attrs_sha256": _attrs_digest(body),
                  "files": [vars(f) for f in files]}
        # one metadata write, after every array: the marker is never seen before the arrays are complete
        group.update_attributes({**body, MARKER: marker})
        fsync_tree(tmp)

    def _place(self, tmp: Path, final: Path) -> None:
        """Rename the written group ``tmp`` to ``final``, moving an earlier one aside first (retried
        when another writer of the same key placed its copy in between: both are complete)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            old = None
            if final.exists():
                old = tmp.with_name(f"{tmp.name}-old{attempt}")
                try:
                    os.rename(final, old)
                except FileNotFoundError:  # removed meanwhile
                    old = None
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == 4:
                    raise
                continue
            finally:
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            fsync_dir(final.parent)
            return

    def remove(self, stage: str, key: str) -> bool:
        """Remove the output ``<stage>/<key>``: a loose group is renamed away first (so it
        disappears at once), a packed one is dropped from the pack index."""
        loose = self._remove_loose(stage, key)
        packed = self._unpack(stage, key)
        return loose or packed

    def outputs(self) -> Iterator[tuple[str, str]]:
        """Every ``(stage, key)`` with a group folder in the store (complete or not) or in a pack."""
        seen: set[tuple[str, str]] = set()
        for stage in STAGES:
            folder = self.path / stage
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if entry.is_dir():
                        seen.add((stage, entry.name))
                        yield stage, entry.name
        _path, index = _Packs.index(self.path / PACKS)
        for name in sorted(index["outputs"]):
            stage, _, key = name.partition("/")
            if (stage, key) not in seen:
                yield stage, key

    def present(self) -> set[tuple[str, str]]:
        """Every ``(stage, key)`` stored loose or packed, complete or not (one listing per stage and
        the pack index: the scheduler's bulk cache check; only those present are opened)."""
        return set(self.outputs())

    def files(self) -> int:
        """Number of files in the store (loose groups, packs and their index)."""
        return sum(len(names) for _d, _s, names in os.walk(self.path))

    def pack(self, only: Iterable[tuple[str, str]] | None = None) -> int:
        """Move every complete loose group (or those of ``only``) into a new pack (one zip file, entries stored, not
        compressed again: the chunks are compressed), then remove the loose groups; returns the
        number of groups packed. Call it holding the run lock.

        The pack is written under a temporary name, fsynced and renamed; then a new index naming it
        is written (the commit); only then are the loose copies removed. A reader finds a group
        loose, or else through the newest index, so it is never without one. Groups that are
        unfinished or damaged stay loose (the next run redoes them)."""
        folder = self.path / PACKS
        if only is None:
            candidates = [(stage, e.name) for stage in STAGES if (self.path / stage).is_dir()
                          for e in sorted((self.path / stage).iterdir()) if e.is_dir()]
        else:
            candidates = [(stage, key) for stage, key in only if self.group_dir(stage, key).is_dir()]
        chosen = [(stage, key) for stage, key in candidates if self._loose_intact(stage, key)]
        if not chosen:
            return 0
        folder.mkdir(parents=True, exist_ok=True)
        index_path, index = _Packs.index(folder)
        seq = 1 + max((int(n.split("-")[1].split(".")[0]) for n in os.listdir(folder)
                       if n.startswith(("pack-", "index-")) and n.split("-")[1].split(".")[0].isdigit()), default=0)
        name = f"pack-{seq:06d}.zip"
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for stage, key in chosen:
                    group = self.group_dir(stage, key)
                    for dirpath, _dirs, names in os.walk(group):
                        for n in sorted(names):
                            f = os.path.join(dirpath, n)
                            zf.write(f, f"{stage}/{key}/{os.path.relpath(f, group)}")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        outputs = dict(index["outputs"])
        outputs.update({f"{stage}/{key}": name for stage, key in chosen})
        packs = dict(index["packs"])
        packs[name] = {"bytes": (folder / name).stat().st_size, "groups": len(chosen)}
        write_bytes_atomic(folder / f"index-{seq:06d}.json",
                           json.dumps({"packs": packs, "outputs": outputs}, separators=(",", ":")).encode(),
                           sync_dir=True)
        with ThreadPoolExecutor(max_workers=8) as pool:  # file system calls release the GIL
            list(pool.map(lambda sk: self._remove_loose(*sk), chosen))
        if index_path is not None:
            index_path.unlink(missing_ok=True)
        return len(chosen)

    def _loose_intact(self, stage: str, key: str) -> bool:
        """The quick check of a loose group without zarr: its marker, and its arrays' files against
        the manifest (what :meth:`check` does without ``deep``, at a fraction of the cost)."""
        folder = self.group_dir(stage, key)
        try:
            attrs = json.loads((folder / "zarr.json").read_bytes()).get("attributes", {})
        except (OSError, ValueError):
            return False
        marker = attrs.get(MARKER)
        if not isinstance(marker, dict) or not marker.get("complete") or marker.get("manifest") is None:
            return False
        if marker.get("attrs_sha256") not in (None, _attrs_digest(attrs)):
            return False
        return all(not self._check_array(folder / name, want) for name, want in marker["manifest"].items()) and \
            all(not self._check_file(FileDigest(**rec), deep=False) for rec in marker.get("files", []))

    def _remove_loose(self, stage: str, key: str) -> bool:
        folder = self.group_dir(stage, key)
        if not folder.exists():
            return False
        staging = self.path / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        gone = staging / f"removed-{stage}-{key[:16]}-{uuid.uuid4().hex[:12]}"
        os.rename(folder, gone)
        fsync_dir(folder.parent)
        shutil.rmtree(gone, ignore_errors=True)
        return True

    def _unpack(self, stage: str, key: str) -> bool:
        """Drop ``<stage>/<key>`` from the pack index (its bytes stay in the pack, unread)."""
        folder = self.path / PACKS
        index_path, index = _Packs.index(folder)
        name = f"{stage}/{key}"
        if index_path is None or name not in index["outputs"]:
            return False
        outputs = {k: v for k, v in index["outputs"].items() if k != name}
        seq = int(index_path.stem.split("-")[1]) + 1
        write_bytes_atomic(folder / f"index-{seq:06d}.json",
                           json.dumps({"packs": index["packs"], "outputs": outputs}, separators=(",", ":")).encode(),
                           sync_dir=True)
        index_path.unlink(missing_ok=True)
        return True

    def read_if_complete(self, stage: str, key: str) -> StageGroup | None:
        """The complete output ``<stage>/<key>``, or None when it is missing, unfinished or damaged
        (then it is recomputed)."""
        found = self._open_complete(stage, key)
        if isinstance(found, OutputCheck):
            return None
        return StageGroup(f"{stage}/{key}", found[1], found[0], self._label(stage, key, found[0]))

    def read(self, stage: str, key: str) -> StageGroup:
        """Open a complete stage output; an unfinished one is an error, never read; a damaged one a
        :class:`~ptycho_dist.errors.CorruptDataError` naming the file."""
        found = self._open_complete(stage, key)
        if isinstance(found, OutputCheck):
            if found.state == "corrupt":
                raise CorruptDataError(f"{found.problem}; {REPAIR_HINT}", path=found.problem.split(":")[0],
                                       stage=stage, key=key)
            raise StorageError(f"{self.path}/{stage}/{key}: missing or unfinished (no completion marker)")
        group, attrs = found
        return StageGroup(f"{stage}/{key}", attrs, group, self._label(stage, key, group))

    def written_at(self, stage: str, key: str) -> float:
        """When the completion marker of ``<stage>/<key>`` was written (seconds since the epoch)."""
        return float(self.read(stage, key).attrs[MARKER]["written_at"])
