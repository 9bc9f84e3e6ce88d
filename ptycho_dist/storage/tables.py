"""Result tables of a run: Parquet parts under ``<run>/tables/<table>/`` with versioned Arrow schemas.

Layout and commit rule: the rows of one scenario are written as one part per table,
``tables/<table>/<scenario_id>.parquet`` (temp file + ``os.replace``), and the ``scenarios`` part is
written **last**: it commits the others. Readers take only parts whose scenario has a committed
``scenarios`` part, so a driver killed between two writes leaves nothing that is read; re-running
rewrites the same file names, so every scenario has exactly one set of rows.
"""

from __future__ import annotations

import io
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from ptycho_dist.errors import StorageError
from ptycho_dist.evaluation import BIAS_KEYS, METRIC_KEYS
from ptycho_dist.storage.files import write_bytes_atomic
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


class TableStore:
    """The ``tables/`` folder of one run."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "tables"

    def _part(self, table: str, scenario_id: str) -> Path:
        return self.path / table / f"{scenario_id}.parquet"

    def write_scenario(self, scenario_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Write every table's rows of one scenario; the ``scenarios`` row last (the commit)."""
        if len(tables.get("scenarios", ())) != 1:
            raise StorageError(f"scenario {scenario_id}: exactly one 'scenarios' row is required")
        for name in TABLES:
            if name == "scenarios" or name in PAIR_TABLES or name in RUN_TABLES:
                continue
            rows = [{"scenario_id": scenario_id, **r} for r in tables.get(name, ())]
            part = self._part(name, scenario_id)
            if rows:
                self._write(part, _to_table(name, rows))
            else:
                part.unlink(missing_ok=True)
        self._write(self._part("scenarios", scenario_id), _to_table("scenarios", tables["scenarios"]))

    @staticmethod
    def _write(path: Path, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        write_bytes_atomic(path, buf.getvalue())

    def write_pair(self, table: str, pair_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write the rows of one pair of arms (written only after both arms' scenarios are committed)."""
        if table not in PAIR_TABLES:
            raise StorageError(f"table {table!r} is not a per-pair table")
        self._write(self._part(table, pair_id), _to_table(table, rows))

    def write_run_table(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows of a run-level table (:data:`RUN_TABLES`) in one atomic write."""
        if table not in RUN_TABLES:
            raise StorageError(f"table {table!r} is not a run-level table")
        self._write(self._part(table, "run"), _to_table(table, rows))

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

    def read(self, table: str) -> pa.Table:
        """All committed rows of ``table`` as one Arrow table (empty with the schema if none)."""
        parts = self.parts(table)
        if not parts:
            return table_schema(table).empty_table()
        return pa.concat_tables([self.read_part(p, table) for p in parts])

    @staticmethod
    def read_part(path: Path, table: str) -> pa.Table:
        """One part file of ``table``, read with the table's current schema."""
        return pq.read_table(path, schema=table_schema(table))

    def status_rows(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """``scenarios`` rows (all, or those of ``ids``) as dicts."""
        rows = self.read("scenarios").to_pylist()
        if ids is None:
            return rows
        wanted = set(ids)
        return [r for r in rows if r["scenario_id"] in wanted]
