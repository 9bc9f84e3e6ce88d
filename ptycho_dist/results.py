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

from ptycho_dist.errors import SpecError
from ptycho_dist.storage.outputs import StageOutput
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import PAIR_TABLES, RUN_TABLES, TABLES, table_schema

__all__ = ["Results", "open", "QueryRefused", "check_read_only", "lock_down", "QUERY_STATEMENTS"]

T = TypeVar("T", bound=StageOutput)


@dataclass(frozen=True)
class Results:
    """Read access to one run directory."""

    layout: RunLayout
    scenario_ids: frozenset[str]

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    def parts(self, name: str) -> list[Path]:
        """Committed parquet parts of table ``name`` for the scenarios of the current study file."""
        parts = self.layout.tables.parts(name)
        if name in PAIR_TABLES or name in RUN_TABLES:
            return parts
        return [p for p in parts if p.stem in self.scenario_ids]

    def table(self, name: str) -> pa.Table:
        """All rows of table ``name`` as Arrow (the empty table with its schema when there are none)."""
        parts = self.parts(name)
        if not parts:
            return table_schema(name).empty_table()
        return pa.concat_tables([self.layout.tables.read_part(p, name) for p in parts])

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table (parquet read with union_by_name),
        locked down (:func:`lock_down`): it reads the run's files and nothing else, writes nothing
        and installs nothing."""
        con = duckdb.connect()
        for name in TABLES:
            parts = self.parts(name)
            if parts:
                files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}], union_by_name=true)")
            else:
                empty = table_schema(name).empty_table()
                con.register(f"_empty_{name}", empty)
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")
        lock_down(con, self.layout.root)
        return con

    def sql(self, query: str) -> pa.Table:
        """Run ``query`` over the table views; returns Arrow.

        Raises
        ------
        QueryRefused
            For a statement other than a query (:data:`QUERY_STATEMENTS`): the connection is
            read-only. DuckDB refuses file access outside the run folder itself
            (``duckdb.PermissionException``)."""
        check_read_only(query)
        con = self.connect()
        try:
            rel = con.sql(query)
            if rel is None:
                return pa.table({})
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
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
    ids = layout.read_study_json().get("scenario_ids", [])
    return Results(layout, frozenset(builtins.list(ids)))
