"""The layout of one run directory (DESIGN.md §6)::

    <out>/<study-name>/
      study.json      resolved spec and its SHA-256, version, package versions, git revision, start/end times
      study.v1.json … earlier versions of the study run into this folder (``run --new-version``)
      run.lock        the writer's lock (storage.lock), present while a run or repair is writing
      commits/        one commit record per segment of table rows (storage.segments)
      arrays.zarr/    stage outputs (zarr v3), <stage>/<key>, see storage.arrays and storage.outputs
      models/<key>/   model bundles (weights + bundle.json)
      tables/<name>/  Parquet parts, one per segment (one after compaction), see storage.tables
      tables/_schema.json  the tables' columns (for the light commands)
      report/         static report
      logs/           per-stage tracebacks of failures; engine logs (``*.engine.log``)

Paths are derived from the study name (validated: letters, digits, ``_.-``) and from keys, never from
other user strings.

A run folder belongs to one spec: ``study.json`` records the SHA-256 of the resolved spec
(:func:`spec_digest`), and initializing the folder with another spec is refused
(:class:`~ptycho_dist.errors.StudyMismatchError`) unless a new version is asked for; the previous
``study.json`` is then kept as ``study.v<N>.json``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptycho_dist import __version__
from ptycho_dist.errors import CorruptDataError, StorageError, StudyMismatchError
from ptycho_dist.storage.files import write_json_atomic, write_text_atomic

if TYPE_CHECKING:  # imported where used: the light commands (query, status) need none of them
    from ptycho_dist.storage.arrays import ArrayStore
    from ptycho_dist.storage.outputs import OutputStore
    from ptycho_dist.storage.tables import TableStore
    from ptycho_dist.study import Study

#: the resolved scenarios of the recorded study (beside study.json)
SCENARIOS_FILE = "study.scenarios.json"

__all__ = ["RunLayout", "library_versions", "git_revision", "spec_digest", "spec_differences"]

_LIBRARIES = ("numpy", "scipy", "scikit-image", "zarr", "pyarrow", "duckdb", "ray", "pydantic",
              "torch", "pytorch-lightning", "tensorflow-cpu", "tensorflow", "keras")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that affect results (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_revision(path: Path) -> str | None:
    """The git revision of the checkout holding ``path`` (None outside a git checkout)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a resolved study spec (:meth:`Study.to_dict`): the identity of
    what the study computes, independent of the file's formatting, comments and path."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def spec_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two resolved specs differ (the expanded scenario list left out)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            if prefix == "" and k == "scenarios":
                continue
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(path)
            else:
                out.extend(spec_differences(old[k], new[k], path))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old != new:
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in spec_differences(a, b, f"{prefix}[{i}]")]
    return [] if old == new else [prefix or "<spec>"]


@dataclass(frozen=True)
class RunLayout:
    """Paths and small files of one run directory."""

    root: Path

    @classmethod
    def for_study(cls, out: str | Path, name: str) -> RunLayout:
        return cls(Path(out) / name)

    @property
    def arrays(self) -> ArrayStore:
        from ptycho_dist.storage.arrays import ArrayStore

        return ArrayStore(self.root)

    @property
    def outputs(self) -> OutputStore:
        """Typed stage outputs (``arrays.zarr/<stage>/<key>`` and the model bundles)."""
        from ptycho_dist.storage.outputs import OutputStore

        return OutputStore(self.arrays, self.models)

    @property
    def tables(self) -> TableStore:
        from ptycho_dist.storage.tables import TableStore

        return TableStore(self.root)

    @property
    def study_json(self) -> Path:
        return self.root / "study.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def versions(self) -> list[Path]:
        """The earlier versions of ``study.json`` kept in the folder (``study.v1.json`` …), oldest first."""
        found = [(int(p.stem.split(".v")[1]), p) for p in self.root.glob("study.v*.json")
                 if not p.name.endswith(".scenarios.json")
                 if p.stem.split(".v")[-1].isdigit()]
        return [p for _, p in sorted(found)]

    def initialize(self, study: Study, *, scenario_ids: list[str], pair_ids: list[str] | None = None,
                   new_version: bool = False) -> None:
        """Create the folders and the array store; record the resolved study and the start time.

        A folder whose ``study.json`` holds another spec is refused
        (:class:`~ptycho_dist.errors.StudyMismatchError`, naming the fields that differ) unless
        ``new_version``: then the recorded ``study.json`` is kept as ``study.v<N>.json`` and this
        spec becomes version N + 1. Call it while holding the run lock.
        """
        spec = study.to_dict()
        digest = spec_digest(spec)
        previous = self.read_study_json(full=True) if self.study_json.exists() else {}
        version = int(previous.get("version", 1))
        if previous:
            recorded = previous.get("spec_sha256") or spec_digest(previous.get("spec", {}))
            if recorded != digest:
                if not new_version:
                    raise StudyMismatchError(self._mismatch(study, previous, recorded, spec, version))
                kept = self.read_study_json()
                if kept.get("scenarios_file"):  # its scenarios kept beside it, under its version
                    name = f"study.v{version}.scenarios.json"
                    write_text_atomic(self.root / name, (self.root / str(kept["scenarios_file"])).read_text())
                    kept["scenarios_file"] = name
                write_json_atomic(self.root / f"study.v{version}.json", kept)
                previous, version = {}, version + 1
        tables = self.tables
        for folder in (self.root, self.logs, self.models, tables.path, self.report):
            folder.mkdir(parents=True, exist_ok=True)
        tables.write_schema_file()
        self.arrays.initialize()
        self.arrays.clear_staging()
        # the resolved scenarios (thousands of dicts) go beside study.json, which the light commands
        # read: written first, so a study.json that names the file finds it complete
        light = {k: v for k, v in spec.items() if k != "scenarios"}
        write_json_atomic(self.root / SCENARIOS_FILE, {"spec_sha256": digest, "scenarios": spec["scenarios"]})
        write_json_atomic(self.study_json, {
            "ptycho_dist_version": __version__,
            "git_revision": git_revision(Path(__file__).parent),
            "libraries": library_versions(),
            "source": study.source,
            "version": version,
            "spec_sha256": digest,
            "started_at": time.time(),
            "first_started_at": previous.get("first_started_at", time.time()),
            "finished_at": None,
            "scenario_ids": scenario_ids,
            "pair_ids": list(pair_ids or []),
            "scenarios_file": SCENARIOS_FILE,
            "spec": light,
        })

    def _mismatch(self, study: Study, previous: dict[str, Any], recorded: str, spec: dict[str, Any],
                  version: int) -> str:
        diff = spec_differences(previous.get("spec", {}), spec)
        where = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        return (f"{study.source}: {self.root} holds another version of study {study.meta.name!r} "
                f"(version {version}, from {previous.get('source', '?')}, spec sha256 {recorded[:12]}); this spec "
                f"differs in {where or 'its resolved fields'}. Pass --new-version to make it version {version + 1} "
                f"of this folder (study.json is kept as study.v{version}.json; tables then show only the new "
                "version's scenarios), or choose another --out")

    def read_study_json(self, *, full: bool = False) -> dict[str, Any]:
        """The recorded ``study.json`` (StorageError when the folder is not a run); with ``full``, its
        ``spec`` with the resolved scenarios of ``study.scenarios.json`` put back (what
        :meth:`Study.from_dict` reads)."""
        try:
            data = dict(json.loads(self.study_json.read_text()))
        except FileNotFoundError:
            raise StorageError(f"{self.root}: not a ptycho-dist run directory (no study.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptDataError(f"{self.study_json}: unreadable ({exc})", path=str(self.study_json)) from exc
        name = data.get("scenarios_file")
        if full and name and "scenarios" not in data.get("spec", {}):
            path = self.root / str(name)
            try:
                extra = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise CorruptDataError(f"{path}: unreadable ({exc}); study.json names it", path=str(path)) from exc
            data["spec"] = {**data["spec"], "scenarios": extra["scenarios"]}
        return data

    def finish(self, summary: dict[str, Any]) -> None:
        """Record the end time and the run summary in ``study.json``."""
        data = self.read_study_json()
        data.update(finished_at=time.time(), summary=summary)
        write_json_atomic(self.study_json, data)

    def write_log(self, stage: str, key: str, text: str) -> Path:
        """Write the log (traceback) of a failed stage; returns its path."""
        path = self.logs / f"{stage}-{key[:16]}.log"
        write_text_atomic(path, text)
        return path

    def write_engine_log(self, stage: str, key: str, text: str) -> Path:
        """Write what an external engine printed while a stage ran (pty-chi's progress and log
        lines), ``logs/<stage>-<key16>.engine.log``; returns its path."""
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{stage}-{key[:16]}.engine.log"
        write_text_atomic(path, text)
        return path
