"""Result tables of a run: Parquet parts under ``<run>/tables/<table>/`` with versioned Arrow schemas.

Layout and commit rule (:mod:`ptycho_dist.storage.segments`): rows are committed in segments, a
batch of units (scenarios, pairs of arms, the run-level tables) written as one part per table,
``tables/<table>/<segment>.parquet`` (temp file + fsync + ``os.replace``), then the segment's commit
record ``commits/<segment>.json`` **last**: it commits the parts. Readers take only parts of
committed segments and, for each unit, the rows of the latest segment that names it, so a driver
killed between two writes leaves nothing that is read, and every unit has exactly one set of rows.
:meth:`TableStore.compact` merges the segments into one (a run that finishes has one part per table).

Integrity: every part is written durably with a CRC32 on each parquet page, and the record holds
the size and SHA-256 of every part. :meth:`TableStore.check` compares the parts with their records.
"""

from __future__ import annotations

import io
import json
import os
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
from ptycho_dist.evaluation.columns import BIAS_KEYS, METRIC_KEYS
from ptycho_dist.storage import segments as _seg
from ptycho_dist.storage.files import TEMP_SUFFIX, sha256_bytes, sha256_file, write_bytes_atomic, write_text_atomic
from ptycho_dist.storage.segments import UNIT_COLUMN, PartCheck, SegmentIndex, Source, new_segment_name
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
    "Unit",
    "schema_catalog",
    "duckdb_type",
    "SCHEMA_FILE",
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

    def late(model: BaseModel, prefix: str) -> None:  # fields to_dict leaves out at their defaults
        for name in getattr(type(model), "late_fields", ()):
            out.setdefault(f"{prefix}{name}", getattr(model, name))
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                late(value, f"{prefix}{name}_")

    late(scenario, "")
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
COMMITS, RUN_UNIT = _seg.COMMITS, _seg.RUN_UNIT
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



class Unit(typing.NamedTuple):
    """The rows of one unit to commit: ``kind`` is ``scenario``, ``pair`` or ``run``."""

    id: str
    kind: str
    tables: Mapping[str, Sequence[Mapping[str, Any]]]


def _table_kind(table: str) -> str:
    return "run" if table in RUN_TABLES else "pair" if table in PAIR_TABLES else "scenario"


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type of our schemas (for empty views built without pyarrow)."""
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    names = {pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
             pa.float32(): "FLOAT", pa.int32(): "INTEGER"}
    if t in names:
        return names[t]
    raise StorageError(f"no DuckDB type for Arrow type {t}")


def schema_catalog() -> dict[str, dict[str, Any]]:
    """table -> {"kind": scenario/pair/run, "columns": [[name, DuckDB type], ...]}."""
    return {name: {"kind": _table_kind(name), "columns": [[f.name, duckdb_type(f.type)] for f in table_schema(name)]}
            for name in TABLES}


#: the file beside the tables that lists their columns with DuckDB types (read by the light commands)
SCHEMA_FILE = "_schema.json"


class TableStore:
    """The ``tables/`` folder of one run and the commit records of its segments (``commits/``).

    Writes: :meth:`write_units` commits a batch of units as one segment; :meth:`write_scenario`,
    :meth:`write_pair` and :meth:`write_run_table` are one-unit batches. :meth:`remove_unit` writes a
    tombstone. :meth:`compact` merges every segment into one. One writer at a time (the run lock).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir)
        self.path = self.root / "tables"
        self.commits = self.root / COMMITS
        self._index: SegmentIndex | None = None

    # --- the index ---------------------------------------------------------------------------------

    @property
    def index(self) -> SegmentIndex:
        """The segment index (loaded on first use; every write of this store keeps it current)."""
        if self._index is None:
            self._index = SegmentIndex.load(self.root)
        return self._index

    def reload(self) -> SegmentIndex:
        self._index = SegmentIndex.load(self.root)
        return self._index

    def _part(self, table: str, segment: str) -> Path:
        return self.path / table / f"{segment}.parquet"

    @staticmethod
    def _write(path: Path, table: pa.Table) -> None:
        write_bytes_atomic(path, _encode(table))

    def write_schema_file(self) -> None:
        """Write ``tables/_schema.json``: every table's columns as (name, DuckDB type)."""
        cat = schema_catalog()
        body = {"schema_version": SCHEMA_VERSION, "kinds": {n: c["kind"] for n, c in cat.items()},
                "tables": {n: c["columns"] for n, c in cat.items()}}
        write_text_atomic(self.path / SCHEMA_FILE, json.dumps(body) + "\n")

    # --- writes ------------------------------------------------------------------------------------

    def write_units(self, units: Sequence[Unit]) -> str | None:
        """Commit ``units`` as one segment (parts first, the record last); returns its name (None
        for an empty batch). A unit named twice keeps its last rows."""
        last: dict[str, Unit] = {}
        for u in units:
            if u.kind == "scenario" and len(u.tables.get("scenarios", ())) != 1:
                raise StorageError(f"scenario {u.id}: exactly one 'scenarios' row is required")
            if u.kind not in ("scenario", "pair", "run"):
                raise StorageError(f"unit {u.id}: unknown kind {u.kind!r}")
            last[u.id] = u
        if not last:
            return None
        rows: dict[str, list[dict[str, Any]]] = {}
        for u in last.values():
            for name, part in u.tables.items():
                if name not in TABLES:
                    raise StorageError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
                if _table_kind(name) != u.kind:
                    raise StorageError(f"table {name!r} is not written by a {u.kind} unit")
                col = UNIT_COLUMN.get(u.kind)
                rows.setdefault(name, []).extend(
                    {col: u.id, **r} if col == "scenario_id" else dict(r) for r in part)
        encoded = {name: (_encode(_to_table(name, r)), len(r)) for name, r in rows.items() if r}
        return self._commit_segment({u.id: u.kind for u in last.values()}, encoded)

    def _commit_segment(self, units: Mapping[str, str], encoded: Mapping[str, tuple[bytes, int]], *,
                        removed: Sequence[str] = (), base: bool = False) -> str:
        index = self.index
        name = new_segment_name(index.last_name())
        for table, (data, _n) in encoded.items():
            write_bytes_atomic(self._part(table, name), data)
        record: dict[str, Any] = {"segment": name, "units": dict(units), "parts": {
            t: {"bytes": len(d), "sha256": sha256_bytes(d), "rows": n} for t, (d, n) in encoded.items()}}
        if removed:
            record["removed"] = list(removed)
        if base:
            record["base"] = name
        write_text_atomic(self.commits / f"{name}.json", json.dumps(record, separators=(",", ":")) + "\n")
        self._index = None  # reloaded on next use (cheap after compaction; the driver batches writes)
        return name

    def write_scenario(self, scenario_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Commit the rows of one scenario (a one-unit segment)."""
        self.write_units([Unit(scenario_id, "scenario", {k: v for k, v in tables.items()
                                                        if _table_kind(k) == "scenario"})])

    def write_pair(self, table: str, pair_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Commit the rows of one pair of arms (written only after both arms' scenarios are committed)."""
        if table not in PAIR_TABLES:
            raise StorageError(f"table {table!r} is not a per-pair table")
        self.write_units([Unit(pair_id, "pair", {table: rows})])

    def write_run_table(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows of a run-level table (:data:`RUN_TABLES`) in one commit."""
        if table not in RUN_TABLES:
            raise StorageError(f"table {table!r} is not a run-level table")
        self.write_units([Unit(RUN_UNIT, "run", {table: rows})])

    def remove_unit(self, unit: str) -> None:
        """Uncommit ``unit`` (a tombstone segment; its rows are no longer read)."""
        if unit in self.index.live:
            self._commit_segment({}, {}, removed=[unit])

    def remove_run_table(self, table: str) -> None:
        """Remove the run-level tables' rows (empty until written again)."""
        if table not in RUN_TABLES:
            raise StorageError(f"table {table!r} is not a run-level table")
        self.remove_unit(RUN_UNIT)

    def compact(self, *, skip: Iterable[str] = ()) -> int:
        """Merge every live unit into one segment (one part per table), then delete the files of the
        older segments; returns the number of files removed. Units in ``skip`` (whose parts are
        damaged) are left out and stay uncommitted. Atomic: the new record names itself as the base,
        so the older segments are obsolete from the moment it is written."""
        index = self.reload()
        left_out = set(skip)
        if len([s for s in index.segments if s.parts or s.removed]) <= 1 and not left_out and \
                not any(s.legacy for s in index.segments) and not self._garbage(index):
            return 0
        units = {u: k for u, k in index.kinds.items() if u not in left_out}
        encoded: dict[str, tuple[bytes, int]] = {}
        for table in TABLES:
            parts = [self._read_source(s, table) for s in index.sources(table, _table_kind(table), skip=left_out)]
            parts = [p for p in parts if p.num_rows]
            if parts:
                merged = pa.concat_tables(parts)
                encoded[table] = (_encode(merged), merged.num_rows)
        self._commit_segment(units, encoded, base=True)
        return self._delete_obsolete()

    def _garbage(self, index: SegmentIndex) -> list[Path]:
        """Files of the tables and records that no current segment refers to (obsolete segments,
        parts of a segment whose record was never written)."""
        keep = {str(self.root / s.part_path(t)) for s in index.segments for t in s.parts}
        keep |= {str(self.root / s.record_path) for s in index.segments if s.record_path}
        keep.add(str(self.path / SCHEMA_FILE))
        out: list[Path] = []
        for folder in (self.path, self.commits):
            if not folder.exists():
                continue
            for dirpath, _dirs, names in os.walk(folder):
                for n in names:
                    p = os.path.join(dirpath, n)
                    if p not in keep and not n.endswith(TEMP_SUFFIX):
                        out.append(Path(p))
        return out

    def _delete_obsolete(self) -> int:
        index = self.reload()
        if any(s.legacy for s in index.segments):
            return 0
        garbage = self._garbage(index)
        for p in garbage:
            p.unlink(missing_ok=True)
        return len(garbage)

    # --- reads -------------------------------------------------------------------------------------

    def record(self, unit: str) -> dict[str, Any] | None:
        """The commit record of the segment holding ``unit`` (None when it is not committed)."""
        seg = self.index.segment(self.index.live.get(unit, ""))
        if seg is None:
            return None
        return {"segment": seg.name, "units": dict(seg.units), "parts": dict(seg.parts)}

    def committed_row(self, unit: str) -> dict[str, Any] | None:
        """The committed ``scenarios`` row of ``unit`` (None when there is none or it cannot be read)."""
        seg = self.index.segment(self.index.live.get(unit, ""))
        if seg is None or "scenarios" not in seg.parts:
            return None
        try:
            table = self.read_part(self.root / seg.part_path("scenarios"), "scenarios")
        except CorruptDataError:
            return None
        for row in table.to_pylist():
            if row["scenario_id"] == unit:
                return dict(row)
        return None

    def _read_source(self, src: Source, table: str) -> pa.Table:
        part = self.read_part(src.path, table)
        if src.drop:
            col = UNIT_COLUMN[_table_kind(table)]
            keep = pa.array([v not in src.drop for v in part.column(col).to_pylist()], type=pa.bool_())
            part = part.filter(keep)
        return part

    def has_pair(self, table: str, pair_id: str) -> bool:
        """True when the pair's rows of ``table`` are committed."""
        seg = self.index.segment(self.index.live.get(pair_id, ""))
        return seg is not None and self.index.kinds.get(pair_id) == "pair" and table in seg.parts

    def pair_ids(self) -> set[str]:
        """Ids of the committed pairs."""
        return self.index.units_of_kind("pair")

    def committed_ids(self) -> set[str]:
        """Scenario ids whose rows are committed."""
        return self.index.units_of_kind("scenario")

    def sources(self, table: str, *, skip: Iterable[str] = ()) -> list[Source]:
        """The committed part files of ``table`` with the units to leave out of each."""
        table_schema(table)
        return self.index.sources(table, _table_kind(table), skip=skip)

    def parts(self, table: str) -> list[Path]:
        """The committed part files of ``table``."""
        return [s.path for s in self.sources(table)]

    def read(self, table: str, *, skip: Iterable[str] = ()) -> pa.Table:
        """All committed rows of ``table`` as one Arrow table (empty with the schema if none); the
        rows of the units in ``skip`` are left out."""
        parts = [self._read_source(s, table) for s in self.sources(table, skip=skip)]
        if not parts:
            return table_schema(table).empty_table()
        return pa.concat_tables(parts)

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

    # --- integrity ---------------------------------------------------------------------------------

    def check_part(self, table: str, path: Path, *, deep: bool = False,
                   record: Mapping[str, Any] | None = None, segment: str | None = None,
                   units: tuple[str, ...] = ()) -> PartCheck:
        """The state of one part file (:class:`PartCheck`) against its segment's record: without
        ``deep`` its size, with ``deep`` its SHA-256 and a full read with page checksums verified."""
        unit = segment or path.stem
        want = (record or {}).get("parts", {}).get(table) or None
        rel = str(path.relative_to(self.root))
        if not path.exists():
            return PartCheck(table, unit, rel, "missing", f"{rel}: missing (its commit record lists it)", units)
        if want is not None:
            size = path.stat().st_size
            if size != want["bytes"]:
                return PartCheck(table, unit, rel, "corrupt", f"{rel}: {size} bytes, {want['bytes']} written", units)
            if not deep:
                return PartCheck(table, unit, rel, "ok", "", units)
            if sha256_file(path) != want["sha256"]:
                return PartCheck(table, unit, rel, "corrupt", f"{rel}: SHA-256 does not match its commit record",
                                 units)
        try:
            if deep:
                pq.read_table(path, schema=table_schema(table), page_checksum_verification=True)
            else:
                pq.read_metadata(path)
        except (pa.ArrowException, OSError) as exc:
            return PartCheck(table, unit, rel, "corrupt", f"{rel}: does not decode ({type(exc).__name__}: "
                             f"{str(exc)[:100]})", units)
        return PartCheck(table, unit, rel, "ok" if want is not None else "unverified", "", units)

    def check(self, *, deep: bool = False) -> list[PartCheck]:
        """Every part of every committed segment against its record (a lost part is ``missing``),
        and the records that do not parse (``corrupt``). ``units`` of a check are the units whose
        current rows the part holds (what a damaged part loses)."""
        index = self.reload()
        out: list[PartCheck] = []
        for rel in index.unreadable:
            out.append(PartCheck("commits", Path(rel).stem, rel, "corrupt", f"{rel}: unreadable commit record"))
        for seg in index.segments:
            live = tuple(sorted(u for u in seg.units if index.live.get(u) == seg.name))
            if not live:
                continue
            record = {"parts": seg.parts} if seg.record_path else None
            for table in seg.parts:
                if table not in TABLES:
                    continue
                out.append(self.check_part(table, self.root / seg.part_path(table), deep=deep, record=record,
                                           segment=seg.name, units=live))
        return out

    def files(self) -> int:
        """Number of files under ``tables/`` and ``commits/``."""
        n = 0
        for folder in (self.path, self.commits):
            for _d, _s, names in os.walk(folder):
                n += len(names)
        return n
