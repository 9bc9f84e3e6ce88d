"""Open a finished (or running) study: tables as Arrow, SQL through DuckDB, stage outputs by key.

>>> run = ptycho_dist.results.open("runs/quickstart")            # doctest: +SKIP
>>> run.table("metrics").to_pandas()                               # doctest: +SKIP
>>> run.sql("select status, count(*) from scenarios group by 1")   # doctest: +SKIP
>>> run.output("stitch", key, Reconstruction).canvas               # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from ptycho_dist.errors import CorruptDataError, SpecError
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.segments import RUN_UNIT, UNIT_COLUMN, PartCheck, SegmentIndex, Source

if TYPE_CHECKING:  # the light commands (query, status) import neither the schemas nor zarr
    import pyarrow as pa

    from ptycho_dist.storage.outputs import StageOutput

__all__ = ["Results", "open", "QueryRefused", "check_read_only", "lock_down", "QUERY_STATEMENTS"]

T = TypeVar("T", bound="StageOutput")

#: what a message about a damaged table part tells the user to do (storage.tables.TABLE_REPAIR_HINT)
_REPAIR_HINT = "run `ptycho-dist verify RUN --repair`"


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


@dataclass(frozen=True)
class Results:
    """Read access to one run directory."""

    layout: RunLayout
    scenario_ids: frozenset[str]
    pair_ids: frozenset[str] | None = None
    """Pairs of arms of the current study (None for runs recorded before ``study.json`` listed them:
    then ``parity`` rows are filtered by their two scenario ids)."""

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    @property
    def index(self) -> SegmentIndex:
        """Which part files hold which units (read again when the set of commit records changed)."""
        try:
            stamp: Any = hash(tuple(sorted(os.listdir(self.layout.root / "commits"))))
        except FileNotFoundError:
            stamp = None
        cached = self.__dict__.get("_index")
        if cached is None or cached[0] != stamp:
            cached = (stamp, SegmentIndex.load(self.layout.root))
            self.__dict__["_index"] = cached
        return cached[1]

    @functools.cached_property
    def catalog(self) -> dict[str, dict[str, Any]]:
        """table -> {"kind": scenario/pair/run, "columns": [[name, DuckDB type], ...]}: from the run's
        ``tables/_schema.json`` when it has one (no schema code imported), else from the schemas."""
        try:
            recorded = json.loads((self.layout.root / "tables" / "_schema.json").read_text())
            kinds = recorded.get("kinds")
            if isinstance(kinds, dict):
                return {n: {"kind": kinds[n], "columns": cols} for n, cols in recorded["tables"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        from ptycho_dist.storage.tables import schema_catalog

        return schema_catalog()

    def _kind(self, name: str) -> str:
        if name not in self.catalog:
            from ptycho_dist.errors import StorageError

            raise StorageError(f"unknown table {name!r}; known: {', '.join(self.catalog)}")
        return str(self.catalog[name]["kind"])

    def _current(self, kind: str) -> frozenset[str] | None:
        """The units of the current study version of ``kind`` (None: every unit)."""
        if kind == "scenario":
            return self.scenario_ids
        if kind == "pair":
            return self.pair_ids
        return None

    def sources(self, name: str) -> list[Source]:
        """The part files of table ``name`` with the units to leave out of each: those overridden by
        a later segment, and those not of the current study version."""
        kind = self._kind(name)
        current = self._current(kind)
        out = []
        for src in self.index.sources(name, kind):
            drop = src.drop if current is None else src.drop | (src.units - current)
            if drop != src.units:
                out.append(Source(src.path, src.segment, src.units, frozenset(drop)))
        return out

    def parts(self, name: str) -> list[Path]:
        """Part files holding rows of table ``name`` for the current study version."""
        return [s.path for s in self.sources(name)]

    def _pair_filter(self, name: str) -> str:
        """A SQL condition keeping the rows of the current study's arms in a per-pair table."""
        if self._kind(name) != "pair" or self.pair_ids is not None:
            return ""
        ids = ", ".join(_sql_str(i) for i in sorted(self.scenario_ids)) or "NULL"
        return f" WHERE scenario_a IN ({ids}) AND scenario_b IN ({ids})"

    def table(self, name: str) -> pa.Table:
        """All rows of table ``name`` as Arrow (the empty table with its schema when there are none)."""
        import pyarrow as pa

        from ptycho_dist.storage.tables import TableStore, table_schema

        sources = self.sources(name)
        if not sources:
            return table_schema(name).empty_table()
        col = UNIT_COLUMN.get(self._kind(name))
        parts = []
        for src in sources:
            part = TableStore.read_part(src.path, name)
            if src.drop and col:
                part = part.filter(pa.array([v not in src.drop for v in part.column(col).to_pylist()], type=pa.bool_()))
            parts.append(part)
        table = pa.concat_tables(parts)
        if self._kind(name) == "pair" and self.pair_ids is None:
            keep = [r["scenario_a"] in self.scenario_ids and r["scenario_b"] in self.scenario_ids
                    for r in table.select(["scenario_a", "scenario_b"]).to_pylist()]
            table = table.filter(pa.array(keep, type=pa.bool_()))
        return table

    def _is_current(self, c: PartCheck) -> bool:
        """Whether a damaged table part holds rows of the current study version."""
        if c.table == "commits":
            return True
        kind = self.catalog.get(c.table, {}).get("kind")
        if kind == "run" or RUN_UNIT in c.affected:
            return True
        current = self._current(str(kind))
        return current is None or bool(set(c.affected) & current)

    def damaged(self) -> list[PartCheck]:
        """Table parts of the current study that are damaged (quick check: sizes against the commit
        records, footers of parts without one)."""
        return [c for c in self.index.quick_check() if self._is_current(c)]

    def require_intact(self) -> None:
        """Raise :class:`~ptycho_dist.errors.CorruptDataError` naming the first damaged table part."""
        bad = self.damaged()
        if bad:
            more = f" (and {len(bad) - 1} more damaged part(s))" if len(bad) > 1 else ""
            raise CorruptDataError(f"{self.run_dir}: {bad[0].problem}{more}; {_REPAIR_HINT}",
                                   path=bad[0].path)

    def _view_sql(self, name: str) -> str:
        sources = self.sources(name)
        if not sources:
            cols = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in self.catalog[name]["columns"])
            return f"SELECT {cols} LIMIT 0"
        col = UNIT_COLUMN.get(self._kind(name))
        plain = [s for s in sources if not s.drop or not col]
        selects = []
        if plain:
            files = ", ".join(_sql_str(str(s.path)) for s in plain)
            selects.append(f"SELECT * FROM read_parquet([{files}], union_by_name=true)")
        for s in sources:
            if s.drop and col:
                keep = s.units - s.drop
                if len(keep) < len(s.drop):
                    cond = f"{col} IN ({', '.join(_sql_str(u) for u in sorted(keep))})"
                else:
                    cond = f"{col} NOT IN ({', '.join(_sql_str(u) for u in sorted(s.drop))})"
                selects.append(f"SELECT * FROM read_parquet({_sql_str(str(s.path))}) WHERE {cond}")
        body = " UNION ALL BY NAME ".join(selects)
        pair = self._pair_filter(name)
        return f"SELECT * FROM ({body}){pair}" if pair else body

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table (parquet read with union_by_name),
        locked down (:func:`lock_down`): it reads the run's files and nothing else, writes nothing
        and installs nothing."""
        con = duckdb.connect()
        for name in self.catalog:
            con.execute(f"CREATE VIEW {name} AS {self._view_sql(name)}")
        lock_down(con, self.layout.root)
        return con

    def _run_query(self, query: str, fetch: Any) -> Any:
        check_read_only(query)
        try:
            con = self.connect()
        except duckdb.Error:  # a view over a part that does not decode
            self.require_intact()
            raise
        try:
            rel = con.sql(query)
            return fetch(rel)
        except duckdb.Error:
            self.require_intact()
            raise
        finally:
            con.close()

    def sql(self, query: str) -> pa.Table:
        """Run ``query`` over the table views; returns Arrow. A query that fails on a damaged table
        part is a :class:`~ptycho_dist.errors.CorruptDataError` naming it.

        Raises
        ------
        QueryRefused
            For a statement other than a query (:data:`QUERY_STATEMENTS`): the connection is
            read-only. DuckDB refuses file access outside the run folder itself
            (``duckdb.PermissionException``)."""
        def fetch(rel: Any) -> pa.Table:
            if rel is None:
                import pyarrow as pa

                return pa.table({})
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

        return self._run_query(query, fetch)

    def sql_rows(self, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like :meth:`sql`, as (column names, rows of Python values), without pyarrow."""
        def fetch(rel: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
            if rel is None:
                return [], []
            return list(rel.columns), rel.fetchall()

        return self._run_query(query, fetch)

    def output(self, stage: str, key: str, cls: type[T]) -> T:
        """The output of ``stage`` (a registry stage name: ``simulate``, ``stitch`` …) with ``key``
        (the ``key_<stage>`` column of ``scenarios``) as its typed output class ``cls``
        (:mod:`ptycho_dist.storage.outputs`: ``SimulatedData``, ``Reconstruction`` …)."""
        return self.layout.outputs.read(stage, key, cls)

    def study(self) -> dict[str, Any]:
        """The recorded ``study.json``."""
        return self.layout.read_study_json()


#: statement types a query may hold: SELECT covers DESCRIBE, SHOW, SUMMARIZE, FROM-first and WITH
QUERY_STATEMENTS = ("SELECT", "EXPLAIN")


class QueryRefused(SpecError):
    """A statement that would change something (COPY, ATTACH, INSTALL, SET, CREATE, DROP ...)."""


def check_read_only(query: str) -> None:
    """Refuse ``query`` unless every statement in it is a query (:data:`QUERY_STATEMENTS`).

    Raises
    ------
    QueryRefused
        One line naming the statement type that was refused.
    """
    for statement in duckdb.extract_statements(query):
        kind = statement.type.name
        if kind not in QUERY_STATEMENTS:
            raise QueryRefused(f"refused: {kind} statements are not allowed, queries are read-only "
                               "(SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)")


def lock_down(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Make ``con`` read-only for the outside world: file access limited to the run folder ``root``
    (no other reads, no writes elsewhere, no ATTACH of other files), no extension installs or
    loads, and the configuration locked so no later statement can undo it."""
    allowed = str(Path(root).resolve()).replace("'", "''")
    con.execute(f"SET allowed_directories = ['{allowed}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def open(run_dir: str | Path) -> Results:  # noqa: A001 - the natural name, as in builtins.open
    """Open the run at ``run_dir`` (the folder holding ``study.json``), or at a URL on object storage
    (``s3://bucket/prefix/<study>``, ``gs://...``): its local mirror is synced down first, then read."""
    from ptycho_dist.storage.remote import is_remote, local_run_dir

    if is_remote(run_dir):
        run_dir = local_run_dir(run_dir)
    layout = RunLayout(Path(run_dir))
    info = layout.read_study_json()
    ids = info.get("scenario_ids", [])
    pairs = info.get("pair_ids")
    return Results(layout, frozenset(builtins.list(ids)), None if pairs is None else frozenset(pairs))
