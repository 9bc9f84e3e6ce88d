"""Result tables of a run: Parquet parts under ``<run>/tables/<table>/`` with versioned Arrow schemas.

Layout and commit rule: the rows of one scenario are written as one part per table,
``tables/<table>/<scenario_id>.parquet`` (temp file + ``os.replace``), and the ``scenarios`` part is
written **last**: it commits the others. Readers take only parts whose scenario has a committed
``scenarios`` part, so a driver killed between two writes leaves nothing that is read; re-running
rewrites the same file names, so every scenario has exactly one set of rows.

Integrity: every part is written durably (fsynced, renamed into place) with a CRC32 on each parquet
page, and each unit (scenario, pair of arms, the run-level tables) has a commit record
``<run>/commits/<unit>.json`` with the size and SHA-256 of every part it wrote, written before the
part that commits it. :meth:`TableStore.check` compares the parts with their records.
"""

from __future__ import annotations

import io
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from ptycho_dist.errors import CorruptDataError, StorageError
from ptycho_dist.evaluation import BIAS_KEYS, METRIC_KEYS
from ptycho_dist.storage.files import sha256_bytes, sha256_file, write_bytes_atomic, write_text_atomic
from ptycho_dist.study.registry import pair_tables, stage_names
from ptycho_dist.study.spec import Scenario

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "STAGES",
    "table_schema",
    "scenario_param_columns",
    "flatten_scenario",
    "schema_to_json",
    "TableStore",
    "PAIR_TABLES",
    "RUN_TABLES",
    "PartCheck",
    "json_row",
    "TABLE_REPAIR_HINT",
    "COMMITS",
    "RUN_UNIT",
]

#: 3: arrays under the stage names; parity columns ``grouping_gridsize`` and ``dose_nphotons``; a
#: ``dataset`` column in metrics, bias and diagnostics. 4: ``flags`` in scenarios (quality flags),
#: ``faults_*`` parameter columns, the run-level ``expectations`` table. 5: the iterative arm:
#: ``key_/seconds_/cached_iterative`` and the ``iterative_*`` and ``data_interpolation`` parameter columns
#: in scenarios (``history`` rows of the iterative arm: ``epoch`` = iteration, ``train_loss`` = data error)
SCHEMA_VERSION = "5"
#: stages with ``key_``/``seconds_``/``cached_`` columns in ``scenarios`` (data and arm scope)
STAGES = stage_names("data", "arm")


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Arrow type and nullability of a spec field annotation."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _arrow_type(inner[0])[0], True
    if origin is Literal:
        return (pa.int64() if isinstance(args[0], int) else pa.string()), False
    if origin is tuple:
        return pa.list_(_arrow_type(args[0])[0]), False
    simple = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    if annotation in simple:
        return simple[annotation], False
    raise StorageError(f"no Arrow type for spec annotation {annotation!r}")


def _optional_model(annotation: Any) -> type[BaseModel] | None:
    """The model of an ``X | None`` annotation whose X is a spec model (e.g. ``data.test_scan``)."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            return inner[0]
    return None


def scenario_param_columns(model: type[BaseModel] = Scenario, prefix: str = "",
                           optional: bool = False) -> list[pa.Field]:
    """One typed column per leaf field of the scenario, named ``section_field`` (e.g. ``dose_nphotons``);
    the fields of an optional section (``data.test_scan``) are nullable columns, null when it is unset."""
    fields: list[pa.Field] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            fields.extend(scenario_param_columns(ann, f"{prefix}{name}_", optional))
        elif (sub := _optional_model(ann)) is not None:
            fields.extend(scenario_param_columns(sub, f"{prefix}{name}_", True))
        else:
            typ, nullable = _arrow_type(ann)
            fields.append(pa.field(f"{prefix}{name}", typ, nullable=nullable or optional))
    return fields


def flatten_scenario(scenario: Scenario) -> dict[str, Any]:
    """The scenario as one flat row matching :func:`scenario_param_columns`."""
    out: dict[str, Any] = {}

    def walk(data: Mapping[str, Any], prefix: str) -> None:
        for k, v in data.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}_")
            elif v is not None or f"{prefix}{k}" in _PARAM_NAMES:  # an unset optional section: null columns
                out[f"{prefix}{k}"] = v

    walk(scenario.to_dict(), "")
    return out


_PARAM_NAMES = frozenset(f.name for f in scenario_param_columns())

#: Arrow types of the metric columns that are not float64 (the columns are evaluation's METRIC_KEYS)
_METRIC_TYPES = {"target": pa.string(), "channel": pa.string(), "frc_undefined": pa.bool_(), "n_pixels": pa.int64()}
#: the dataset a row belongs to: train:0 … (training objects), test:0 … (held-out test objects)
_DATASET = ("dataset", pa.string())
_METRIC_COLUMNS = [(name, _METRIC_TYPES.get(name, pa.float64())) for name in METRIC_KEYS] + [_DATASET]
_BIAS_COLUMNS = [(name, pa.float64()) for name in BIAS_KEYS] + [_DATASET]
_HISTORY_COLUMNS = [
    ("backend", pa.string()), ("epoch", pa.int64()), ("train_loss", pa.float64()), ("val_loss", pa.float64()),
    ("lr", pa.float64()), ("intensity_scale", pa.float64()), ("nonfinite", pa.bool_()),
]
_PARITY_COLUMNS = (
    [("pair_id", pa.string()), ("scenario_a", pa.string()), ("scenario_b", pa.string()),
     ("backend_a", pa.string()), ("backend_b", pa.string()), ("relative_sign_a", pa.int64()),
     ("relative_sign_b", pa.int64()), ("grouping_gridsize", pa.int64()), ("dose_nphotons", pa.float64()),
     ("training_seed", pa.int64()), ("seed_cell", pa.string())]
    + [(f"fwd_{what}_max_{kind}_{d}", pa.float64()) for d in ("ab", "ba") for what in ("obj", "amp")
       for kind in ("abs", "rel")]
    + [("forward_parity_ok", pa.bool_()), ("forward_parity_tolerance", pa.float64()),
       ("patch_variance_ratio", pa.float64()), ("stitched_amp_mae", pa.float64()),
       ("stitched_amp_ssim", pa.float64()), ("stitched_phase_mae", pa.float64())]
    + [(f"{c}_{m}_{x}", pa.float64()) for c in ("amp", "phase") for m in ("ssim", "mae", "psnr") for x in ("a", "b")]
    + [(f"delta_{c}_{m}", pa.float64()) for c in ("amp", "phase") for m in ("ssim", "mae", "psnr")]
    + [("intensity_scale_ratio", pa.float64()), ("norm_factor_ratio", pa.float64())]
)
_EXPECT_COLUMNS = [("name", pa.string()), ("description", pa.string()), ("query", pa.string()),
                   ("condition", pa.string()), ("label", pa.string()), ("value", pa.string()),
                   ("value_number", pa.float64()), ("passed", pa.bool_()), ("status", pa.string()),
                   ("message", pa.string()), ("evaluated_at", pa.timestamp("us", tz="UTC"))]
_DIAG_COLUMNS = [("stage", pa.string()), ("name", pa.string()), ("value", pa.float64()), ("text", pa.string()),
                 ("dataset", pa.string())]


def _scenarios_schema() -> list[pa.Field]:
    head = [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("study", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("failed_stage", pa.string()),
        pa.field("diverged_epoch", pa.int64()),
        pa.field("flags", pa.string()),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
    ]
    keys = [pa.field(f"key_{s}", pa.string()) for s in STAGES]
    secs = [pa.field(f"seconds_{s}", pa.float64()) for s in STAGES]
    hits = [pa.field(f"cached_{s}", pa.bool_()) for s in STAGES]
    return head + keys + secs + hits + scenario_param_columns()


def _with_id(columns: Sequence[tuple[str, pa.DataType]]) -> list[pa.Field]:
    return [pa.field("scenario_id", pa.string(), nullable=False)] + [pa.field(n, t) for n, t in columns]


TABLES: dict[str, list[pa.Field]] = {
    "scenarios": _scenarios_schema(),
    "metrics": _with_id(_METRIC_COLUMNS),
    "bias": _with_id(_BIAS_COLUMNS),
    "diagnostics": _with_id(_DIAG_COLUMNS),
    "history": _with_id(_HISTORY_COLUMNS),
    "parity": [pa.field(n, t, nullable=n != "pair_id") for n, t in _PARITY_COLUMNS],
    "expectations": [pa.field(n, t, nullable=n not in ("name", "status")) for n, t in _EXPECT_COLUMNS],
}
#: tables written per pair of arms (part = pair id), not per scenario: those of pair-scope stages
PAIR_TABLES = pair_tables()
#: tables of the whole run (one part, ``run.parquet``, replaced as a whole): expectation results
RUN_TABLES = ("expectations",)
#: folder of the commit records (``<run>/commits/<unit>.json``); the run-level tables' record
COMMITS, RUN_UNIT = "commits", "_run"
#: what a message about a damaged table part tells the user to do
TABLE_REPAIR_HINT = "run `ptycho-dist verify RUN --repair`"


def table_schema(name: str) -> pa.Schema:
    """The Arrow schema of table ``name``, with the schema version in its metadata."""
    if name not in TABLES:
        raise StorageError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    meta = {b"ptycho_dist.table": name.encode(), b"ptycho_dist.schema_version": SCHEMA_VERSION.encode()}
    return pa.schema(TABLES[name], metadata=meta)


def schema_to_json(name: str) -> dict[str, Any]:
    """JSON description of a table schema (the files in ``schemas/tables/``)."""
    schema = table_schema(name)
    return {
        "table": name,
        "schema_version": SCHEMA_VERSION,
        "fields": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema],
    }


def _to_table(name: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    schema = table_schema(name)
    known = set(schema.names)
    for row in rows:
        extra = set(row) - known
        if extra:
            raise StorageError(f"table {name!r}: unknown columns {sorted(extra)} (schema v{SCHEMA_VERSION})")
    try:
        return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StorageError(f"table {name!r}: rows do not match the schema: {exc}") from exc


@dataclass(frozen=True)
class PartCheck:
    """The state of one table part: ``ok``, ``missing`` (the unit's commit record lists it, the file is
    gone), ``corrupt`` (size or SHA-256 differ from the record, or it does not decode) or
    ``unverified`` (no commit record: written by an older version, but readable)."""

    table: str
    unit: str
    path: str
    state: str
    problem: str = ""


def _encode(table: pa.Table) -> bytes:
    """A parquet file (zstd, CRC32 on every page) as bytes."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
    return buf.getvalue()


def json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row as JSON-safe data (timestamps as ISO text)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _row_from_json(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    schema = table_schema(table)
    out = dict(row)
    for f in schema:
        if pa.types.is_timestamp(f.type) and isinstance(out.get(f.name), str):
            out[f.name] = datetime.fromisoformat(out[f.name])
    return out


class TableStore:
    """The ``tables/`` folder of one run, and the commit records of its units (``commits/``).

    A unit's commit record ``commits/<unit>.json`` lists the parts it wrote with their sizes and
    SHA-256 (what :meth:`check` compares) and, for a scenario, its ``scenarios`` row (so that the part
    can be rebuilt with the same run-specific fields). It is written after the other parts and before
    the part that commits the unit.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "tables"
        self.commits = Path(run_dir) / COMMITS

    def _part(self, table: str, scenario_id: str) -> Path:
        return self.path / table / f"{scenario_id}.parquet"

    def _record_path(self, unit: str) -> Path:
        return self.commits / f"{unit}.json"

    def write_scenario(self, scenario_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Write every table's rows of one scenario; the commit record, then the ``scenarios`` row
        last (the commit)."""
        if len(tables.get("scenarios", ())) != 1:
            raise StorageError(f"scenario {scenario_id}: exactly one 'scenarios' row is required")
        encoded: dict[str, tuple[bytes, int]] = {}
        for name in TABLES:
            if name == "scenarios" or name in PAIR_TABLES or name in RUN_TABLES:
                continue
            rows = [{"scenario_id": scenario_id, **r} for r in tables.get(name, ())]
            if rows:
                encoded[name] = (_encode(_to_table(name, rows)), len(rows))
        head = _encode(_to_table("scenarios", tables["scenarios"]))
        # a rewrite uncommits first: a driver killed during it leaves the unit to be redone, never
        # an old scenarios row over new parts
        self._part("scenarios", scenario_id).unlink(missing_ok=True)
        self._record_path(scenario_id).unlink(missing_ok=True)
        for name in TABLES:
            part = self._part(name, scenario_id)
            if name in encoded:
                write_bytes_atomic(part, encoded[name][0])
            elif name != "scenarios" and name not in PAIR_TABLES and name not in RUN_TABLES:
                part.unlink(missing_ok=True)
        encoded["scenarios"] = (head, 1)
        self._write_record(scenario_id, "scenario", encoded, row=json_row(tables["scenarios"][0]))
        write_bytes_atomic(self._part("scenarios", scenario_id), head)

    def _write_record(self, unit: str, kind: str, parts: Mapping[str, tuple[bytes, int]],
                      row: Mapping[str, Any] | None = None) -> None:
        record: dict[str, Any] = {"unit": unit, "kind": kind, "parts": {
            name: {"bytes": len(data), "sha256": sha256_bytes(data), "rows": n} for name, (data, n) in parts.items()}}
        if row is not None:
            record["scenarios_row"] = row
        write_text_atomic(self._record_path(unit), json.dumps(record, indent=1, allow_nan=True) + "\n")

    def record(self, unit: str) -> dict[str, Any] | None:
        """The commit record of ``unit`` (None when there is none or it cannot be read)."""
        try:
            data = json.loads(self._record_path(unit).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("parts"), dict) else None

    def committed_row(self, unit: str) -> dict[str, Any] | None:
        """The ``scenarios`` row recorded when ``unit`` was committed (typed as in the table)."""
        rec = self.record(unit)
        row = rec.get("scenarios_row") if rec else None
        return _row_from_json("scenarios", row) if isinstance(row, dict) else None

    @staticmethod
    def _write(path: Path, table: pa.Table) -> None:
        write_bytes_atomic(path, _encode(table))

    def write_pair(self, table: str, pair_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write the rows of one pair of arms (written only after both arms' scenarios are committed)."""
        if table not in PAIR_TABLES:
            raise StorageError(f"table {table!r} is not a per-pair table")
        data = _encode(_to_table(table, rows))
        self._write_record(pair_id, "pair", {table: (data, len(rows))})
        write_bytes_atomic(self._part(table, pair_id), data)

    def write_run_table(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows of a run-level table (:data:`RUN_TABLES`) in one atomic write."""
        if table not in RUN_TABLES:
            raise StorageError(f"table {table!r} is not a run-level table")
        data = _encode(_to_table(table, rows))
        self._write_record(RUN_UNIT, "run", {table: (data, len(rows))})
        write_bytes_atomic(self._part(table, "run"), data)

    def remove_unit(self, unit: str) -> None:
        """Uncommit ``unit``: its committing part first, then the others and its record."""
        for name in ("scenarios", *PAIR_TABLES, *[t for t in TABLES if t != "scenarios" and t not in PAIR_TABLES]):
            self._part(name, unit).unlink(missing_ok=True)
        self._record_path(unit).unlink(missing_ok=True)

    def remove_run_table(self, table: str) -> None:
        """Remove a run-level table's part and its record (it is empty until written again)."""
        if table not in RUN_TABLES:
            raise StorageError(f"table {table!r} is not a run-level table")
        self._part(table, "run").unlink(missing_ok=True)
        self._record_path(RUN_UNIT).unlink(missing_ok=True)

    def has_pair(self, table: str, pair_id: str) -> bool:
        """True when the pair's part of ``table`` exists."""
        return self._part(table, pair_id).exists()

    def pair_ids(self) -> set[str]:
        """Ids of the pairs whose parts of every per-pair table are written."""
        ids: set[str] | None = None
        for table in PAIR_TABLES:
            folder = self.path / table
            found = {p.stem for p in folder.glob("*.parquet")} if folder.exists() else set()
            ids = found if ids is None else ids & found
        return ids or set()

    def committed_ids(self) -> set[str]:
        """Scenario ids whose ``scenarios`` row is committed."""
        folder = self.path / "scenarios"
        return {p.stem for p in folder.glob("*.parquet")} if folder.exists() else set()

    def parts(self, table: str) -> list[Path]:
        """The committed part files of ``table`` (parts of uncommitted scenarios are left out)."""
        table_schema(table)
        folder = self.path / table
        if not folder.exists():
            return []
        if table in PAIR_TABLES or table in RUN_TABLES:
            return sorted(folder.glob("*.parquet"))
        ids = self.committed_ids()
        return sorted(p for p in folder.glob("*.parquet") if p.stem in ids)

    def read(self, table: str, *, skip: Iterable[str] = ()) -> pa.Table:
        """All committed rows of ``table`` as one Arrow table (empty with the schema if none); the
        parts of the units in ``skip`` are left out."""
        left_out = set(skip)
        parts = [p for p in self.parts(table) if p.stem not in left_out]
        if not parts:
            return table_schema(table).empty_table()
        return pa.concat_tables([self.read_part(p, table) for p in parts])

    @staticmethod
    def read_part(path: Path, table: str) -> pa.Table:
        """One part file of ``table``, read with the table's current schema (a part that does not
        decode is a :class:`~ptycho_dist.errors.CorruptDataError` naming it)."""
        try:
            return pq.read_table(path, schema=table_schema(table))
        except (pa.ArrowException, OSError) as exc:
            raise CorruptDataError(f"{path}: damaged table part ({type(exc).__name__}: {str(exc)[:120]}); "
                                   f"{TABLE_REPAIR_HINT}", path=str(path)) from exc

    def status_rows(self, ids: Iterable[str] | None = None, *, skip: Iterable[str] = ()) -> list[dict[str, Any]]:
        """``scenarios`` rows (all, or those of ``ids``) as dicts, leaving out the units in ``skip``."""
        rows = self.read("scenarios", skip=skip).to_pylist()
        if ids is None:
            return rows
        wanted = set(ids)
        return [r for r in rows if r["scenario_id"] in wanted]

    def check_part(self, table: str, path: Path, *, deep: bool = False,
                   record: Mapping[str, Any] | None = None) -> PartCheck:
        """The state of one part file (:class:`PartCheck`) against its unit's commit record: without
        ``deep`` its size, with ``deep`` its SHA-256 and a full read with page checksums verified."""
        unit = path.stem
        rec = record if record is not None else self.record(RUN_UNIT if table in RUN_TABLES else unit)
        want = (rec or {}).get("parts", {}).get(table)
        rel = str(path.relative_to(self.path.parent))
        if not path.exists():
            return PartCheck(table, unit, rel, "missing", f"{rel}: missing (its commit record lists it)")
        if want is not None:
            size = path.stat().st_size
            if size != want["bytes"]:
                return PartCheck(table, unit, rel, "corrupt", f"{rel}: {size} bytes, {want['bytes']} written")
            if not deep:
                return PartCheck(table, unit, rel, "ok")
            if sha256_file(path) != want["sha256"]:
                return PartCheck(table, unit, rel, "corrupt", f"{rel}: SHA-256 does not match its commit record")
        try:
            if deep:
                pq.read_table(path, schema=table_schema(table), page_checksum_verification=True)
            else:
                pq.read_metadata(path)
        except (pa.ArrowException, OSError) as exc:
            return PartCheck(table, unit, rel, "corrupt", f"{rel}: does not decode ({type(exc).__name__}: "
                             f"{str(exc)[:100]})")
        return PartCheck(table, unit, rel, "ok" if want is not None else "unverified")

    def check(self, *, deep: bool = False) -> list[PartCheck]:
        """Every committed part of every table, and the parts that committed units' records list but
        that are gone (a lost ``scenarios`` part leaves a record without its commit: ``missing``)."""
        out: list[PartCheck] = []
        records: dict[str, dict[str, Any] | None] = {}

        def rec(unit: str) -> dict[str, Any] | None:
            if unit not in records:
                records[unit] = self.record(unit)
            return records[unit]

        committed = self.committed_ids()
        for table in TABLES:
            for path in self.parts(table):
                unit = RUN_UNIT if table in RUN_TABLES else path.stem
                out.append(self.check_part(table, path, deep=deep, record=rec(unit) or {}))
        seen = {(c.table, c.unit) for c in out}
        if self.commits.exists():
            for p in sorted(self.commits.glob("*.json")):
                unit = p.stem
                r = rec(unit)
                if r is None:
                    out.append(PartCheck("commits", unit, str(p.relative_to(self.path.parent)), "corrupt",
                                         f"{p.relative_to(self.path.parent)}: unreadable commit record"))
                    continue
                if r.get("kind") == "scenario" and unit not in committed:
                    out.append(PartCheck("scenarios", unit, str(self._part("scenarios", unit).relative_to(
                        self.path.parent)), "missing", f"{self._part('scenarios', unit).relative_to(self.path.parent)}: "
                        "missing (the commit record lists it; or the commit was interrupted)"))
                    continue
                for table in r["parts"]:
                    part_unit = "run" if r.get("kind") == "run" else unit
                    if (table, part_unit) not in seen and table in TABLES:
                        out.append(self.check_part(table, self._part(table, part_unit), deep=deep, record=r))
        return out
