"""The layout of one run directory (DESIGN.md §6)::

    <out>/<study-name>/
      study.json      resolved spec, versions, git revision, start/end times
      arrays.zarr/    stage outputs (zarr v3), <stage>/<key>, see storage.arrays and storage.outputs
      models/<key>/   model bundles (weights + bundle.json)
      tables/<name>/  Parquet parts, see storage.tables
      report/         static report
      logs/           per-stage tracebacks of failures; engine logs (``*.engine.log``)

Paths are derived from the study name (validated: letters, digits, ``_.-``) and from keys, never from
other user strings.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ptycho_dist import __version__
from ptycho_dist.errors import StorageError
from ptycho_dist.storage.arrays import ArrayStore
from ptycho_dist.storage.files import write_json_atomic, write_text_atomic
from ptycho_dist.storage.outputs import OutputStore
from ptycho_dist.storage.tables import TableStore
from ptycho_dist.study import Study

__all__ = ["RunLayout", "library_versions", "git_revision"]

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


@dataclass(frozen=True)
class RunLayout:
    """Paths and small files of one run directory."""

    root: Path

    @classmethod
    def for_study(cls, out: str | Path, name: str) -> RunLayout:
        return cls(Path(out) / name)

    @property
    def arrays(self) -> ArrayStore:
        return ArrayStore(self.root)

    @property
    def outputs(self) -> OutputStore:
        """Typed stage outputs (``arrays.zarr/<stage>/<key>`` and the model bundles)."""
        return OutputStore(self.arrays, self.models)

    @property
    def tables(self) -> TableStore:
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

    def initialize(self, study: Study, *, scenario_ids: list[str]) -> None:
        """Create the folders and the array store; record the resolved study and the start time."""
        for folder in (self.root, self.logs, self.models, self.tables.path, self.report):
            folder.mkdir(parents=True, exist_ok=True)
        self.arrays.initialize()
        previous = self.read_study_json() if self.study_json.exists() else {}
        write_json_atomic(self.study_json, {
            "ptycho_dist_version": __version__,
            "git_revision": git_revision(Path(__file__).parent),
            "libraries": library_versions(),
            "source": study.source,
            "started_at": time.time(),
            "first_started_at": previous.get("first_started_at", time.time()),
            "finished_at": None,
            "scenario_ids": scenario_ids,
            "spec": study.to_dict(),
        })

    def read_study_json(self) -> dict[str, Any]:
        """The recorded ``study.json`` (StorageError when the folder is not a run)."""
        try:
            return dict(json.loads(self.study_json.read_text()))
        except FileNotFoundError:
            raise StorageError(f"{self.root}: not a ptycho-dist run directory (no study.json)") from None
        except json.JSONDecodeError as exc:
            raise StorageError(f"{self.study_json}: unreadable: {exc}") from exc

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
