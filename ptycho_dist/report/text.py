"""Text output of the light commands (``query``, ``status``): no Arrow, no evaluation code.

``ptycho-dist query`` and ``status`` must answer in well under a second on a run of ten thousand
scenarios, so this module imports only rich and what reads the run (DuckDB through
:class:`~ptycho_dist.results.Results`, the lock file); rows are plain Python values.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ptycho_dist.results import Results
from ptycho_dist.storage.lock import read_lock

__all__ = ["format_rows", "rows_to_rich", "render_status"]


def _csv_value(v: Any) -> str:
    """One CSV field as pyarrow's writer spells it: strings quoted, numbers and booleans bare,
    nulls empty, nested values as quoted JSON text."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):  # shortest round-trip digits, exponent without leading zeros (1e-7)
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(v))
    if isinstance(v, list | tuple | dict):
        v = json.dumps(v, default=str)
    return '"' + str(v).replace('"', '""') + '"'


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Render a query result (column names, rows of Python values) as an aligned text table, CSV or
    JSON (a list of records)."""
    if fmt == "csv":
        lines = [",".join(_csv_value(c) for c in columns)]
        lines += [",".join(_csv_value(v) for v in row) for row in rows]
        return "\n".join(lines) + "\n"
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=1) + "\n"
    console = Console(file=io.StringIO(), width=200, soft_wrap=True)
    console.print(rows_to_rich(columns, rows))
    return console.file.getvalue()  # type: ignore[attr-defined]


def rows_to_rich(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                 float_fmt: str = "{:.4g}") -> Table:
    """A rich table of rows (floats shortened)."""
    out = Table(*columns, title=title)
    for row in rows:
        out.add_row(*(float_fmt.format(v) if isinstance(v, float) else ("" if v is None else str(v)) for v in row))
    return out


def render_status(run: Results) -> Group:
    """Per-stage counts (computed / cache hits) and failures with their messages."""
    info = run.study()
    every, _ = run.sql_rows("select * from scenarios limit 0")
    stages = [c[len("key_"):] for c in every if c.startswith("key_")]
    wanted = ["scenario_id", "status", "failed_stage", "error", "flags", "model_backend",
              *(f"key_{s}" for s in stages), *(f"cached_{s}" for s in stages if f"cached_{s}" in every)]
    cols, values = run.sql_rows("select " + ", ".join(f'"{c}"' for c in wanted) + " from scenarios")
    rows = [dict(zip(cols, v, strict=True)) for v in values]
    n_total = len(run.scenario_ids)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    holder = read_lock(run.run_dir)
    if holder is not None:
        stale = holder.stale_reason()
        finished = f"locked by {holder.describe()}" + (f", stale: {stale}" if stale else ", running")
    else:
        finished = "finished" if info.get("finished_at") else "interrupted"
    version = f", version {info['version']}" if int(info.get("version", 1)) > 1 else ""
    head = Text(f"{run.run_dir}: {n_total} scenarios{version}; recorded: {done}; pending: {n_total - len(rows)} "
                f"({finished})")
    table = Table("stage", "scenarios using it", "computed in the run that recorded them", "cache hits", title="stages")
    for stage in stages:
        used = [r for r in rows if r[f"key_{stage}"] is not None and r.get(f"cached_{stage}") is not None]
        if used:
            hits = sum(1 for r in used if r[f"cached_{stage}"])
            table.add_row(stage, str(len(used)), str(len(used) - hits), str(hits))
    parts: list[Any] = [head, table]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        t = Table("scenario", "status", "stage", "error", title="not ok")
        for r in failed:
            t.add_row(r["scenario_id"], r["status"], r["failed_stage"] or "", r["error"] or "")
        parts.append(t)
    flagged = [r for r in rows if r.get("flags")]
    if flagged:
        t = Table("scenario", "arm", "flags", title="ok but flagged (quality flags)")
        for r in flagged:
            t.add_row(r["scenario_id"], r["model_backend"], r["flags"])
        parts.append(t)
    return Group(*parts)
