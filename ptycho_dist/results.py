"""Open a finished (or running) study: tables as Arrow, SQL through DuckDB, stage outputs by key.

>>> run = ptycho_dist.results.open("runs/quickstart")            # doctest: +SKIP
>>> run.table("metrics").to_pandas()                               # doctest: +SKIP
>>> run.sql("select status, count(*) from scenarios group by 1")   # doctest: +SKIP
>>> run.output("stitch", key, Reconstruction).canvas               # doctest: +SKIP
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from ptycho_dist.errors import CorruptDataError, SpecError
from ptycho_dist.storage.outputs import StageOutput
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import (PAIR_TABLES, RUN_TABLES, RUN_UNIT, TABLE_REPAIR_HINT, TABLES, PartCheck,
                                       table_schema)

__all__ = ["Results", "open", "QueryRefused", "check_read_only", "lock_down", "QUERY_STATEMENTS"]

T = TypeVar("T", bound=StageOutput)


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

    def parts(self, name: str) -> list[Path]:
        """Committed parquet parts of table ``name`` for the scenarios (and pairs) of the current
        study version."""
        parts = self.layout.tables.parts(name)
        if name in RUN_TABLES:
            return parts
        if name in PAIR_TABLES:
            return parts if self.pair_ids is None else [p for p in parts if p.stem in self.pair_ids]
        return [p for p in parts if p.stem in self.scenario_ids]

    def _pair_filter(self, name: str) -> str:
        """A SQL condition keeping the rows of the current study's arms in a per-pair table."""
        if name not in PAIR_TABLES or self.pair_ids is not None:
            return ""
        ids = ", ".join("'" + i.replace("'", "''") + "'" for i in sorted(self.scenario_ids)) or "NULL"
        return f" WHERE scenario_a IN ({ids}) AND scenario_b IN ({ids})"

    def table(self, name: str) -> pa.Table:
        """All rows of table ``name`` as Arrow (the empty table with its schema when there are none)."""
        parts = self.parts(name)
        if not parts:
            return table_schema(name).empty_table()
        table = pa.concat_tables([self.layout.tables.read_part(p, name) for p in parts])
        if name in PAIR_TABLES and self.pair_ids is None:
            keep = [r["scenario_a"] in self.scenario_ids and r["scenario_b"] in self.scenario_ids
                    for r in table.select(["scenario_a", "scenario_b"]).to_pylist()]
            table = table.filter(pa.array(keep, type=pa.bool_()))
        return table

    def _current(self, c: PartCheck) -> bool:
        """Whether a table part belongs to the current study version."""
        if c.table in RUN_TABLES or c.unit in (RUN_UNIT, "run"):
            return True
        if c.table in PAIR_TABLES:
            return self.pair_ids is None or c.unit in self.pair_ids
        return c.unit in self.scenario_ids or c.unit in (self.pair_ids or ())

    def damaged(self) -> list[PartCheck]:
        """Table parts of the current study that are damaged (quick check: sizes against the commit
        records, footers of parts without one)."""
        return [c for c in self.layout.tables.check(deep=False) if c.state in ("corrupt", "missing") and self._current(c)]

    def require_intact(self) -> None:
        """Raise :class:`~ptycho_dist.errors.CorruptDataError` naming the first damaged table part."""
        bad = self.damaged()
        if bad:
            more = f" (and {len(bad) - 1} more damaged part(s))" if len(bad) > 1 else ""
            raise CorruptDataError(f"{self.run_dir}: {bad[0].problem}{more}; {TABLE_REPAIR_HINT}",
                                   path=bad[0].path)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table (parquet read with union_by_name),
        locked down (:func:`lock_down`): it reads the run's files and nothing else, writes nothing
        and installs nothing."""
        con = duckdb.connect()
        for name in TABLES:
            parts = self.parts(name)
            if parts:
                files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}], union_by_name=true)"
                            + self._pair_filter(name))
            else:
                empty = table_schema(name).empty_table()
                con.register(f"_empty_{name}", empty)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")
        lock_down(con, self.layout.root)
        return con

    def sql(self, query: str) -> pa.Table:
        """Run ``query`` over the table views; returns Arrow. A query that fails on a damaged table
        part is a :class:`~ptycho_dist.errors.CorruptDataError` naming it.

        Raises
        ------
        QueryRefused
            For a statement other than a query (:data:`QUERY_STATEMENTS`): the connection is
            read-only. DuckDB refuses file access outside the run folder itself
            (``duckdb.PermissionException``)."""
        check_read_only(query)
        try:
            con = self.connect()
        except duckdb.Error:  # a view over a part that does not decode
            self.require_intact()
            raise
        try:
            rel = con.sql(query)
            if rel is None:
                return pa.table({})
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        except duckdb.Error:
            self.require_intact()
            raise
        finally:
            con.close()

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
    """Open the run at ``run_dir`` (the folder holding ``study.json``)."""
    layout = RunLayout(Path(run_dir))
    info = layout.read_study_json()
    ids = info.get("scenario_ids", [])
    pairs = info.get("pair_ids")
    return Results(layout, frozenset(builtins.list(ids)), None if pairs is None else frozenset(pairs))
