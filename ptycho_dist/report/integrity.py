"""Terminal renderings of ``ptycho-dist verify`` and ``verify --repair``: per stage and per table,
counts of ok / unverified / corrupt / missing / unfinished outputs, and the damaged files by name."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ptycho_dist.orchestration.repair import DAMAGED, RepairResult, VerifyReport
from ptycho_dist.study.registry import STAGES
from ptycho_dist.storage.tables import TABLES

__all__ = ["render_verify", "render_repair"]

_STATES = ("ok", "unverified", "corrupt", "missing", "unfinished")
#: damaged files listed by name at most (the counts give the rest)
_LIST_AT_MOST = 20


def _counts_table(title: str, first: str, counts: dict[str, Counter[str]], order: tuple[str, ...]) -> Table:
    table = Table(first, *_STATES, title=title)
    for name in [n for n in order if n in counts] + sorted(set(counts) - set(order)):
        c = counts[name]
        table.add_row(name, *(_cell(state, c[state]) for state in _STATES))
    return table


def _cell(state: str, n: int) -> str:
    if n and state in DAMAGED:
        return f"[bold red]{n}[/]"
    return str(n) if n else "·"


def render_verify(report: VerifyReport) -> Group:
    """The verification of one run: a table per stage, a table per result table, the damaged files."""
    how = "checksums of every chunk and file" if report.deep else "sizes and markers only (--quick)"
    parts: list[Any] = [Text(f"{report.run_dir}: {how}")]
    parts.append(_counts_table("stage outputs (arrays.zarr, models/)", "stage", report.by_stage(), STAGES))
    parts.append(_counts_table("table parts (tables/, commits/)", "table", report.by_table(), tuple(TABLES)))
    damaged = [(c.stage, c.state, c.problem or f"arrays.zarr/{c.stage}/{c.key}") for c in report.damaged_outputs]
    damaged += [(c.table, c.state, c.problem or c.path) for c in report.damaged_parts]
    if damaged:
        table = Table("stage / table", "state", title="damaged")
        table.add_column("damaged file", overflow="fold")  # paths wrap, never cut
        for row in damaged[:_LIST_AT_MOST]:
            table.add_row(*row)
        parts.append(table)
        if len(damaged) > _LIST_AT_MOST:
            parts.append(Text(f"… and {len(damaged) - _LIST_AT_MOST} more"))
        parts.append(Text(f"{len(damaged)} damaged: run `ptycho-dist verify {report.run_dir} --repair`", style="bold red"))
    else:
        parts.append(Text("no damage found", style="green"))
    return Group(*parts)


def render_repair(result: RepairResult) -> Group:
    """What a repair did, and the verification after it."""
    lines = [f"removed {len(result.removed)} damaged output(s)" + (": " + ", ".join(result.removed[:5]) if result.removed else ""),
             f"recomputed {result.recomputed} stage output(s)",
             f"committed again {len(result.recommitted)} unit(s) from their stored stage rows"]
    if result.expectations_damaged:
        lines.append("re-evaluated the expectations (table expectations)")
    parts: list[Any] = [Text("repair: " + "; ".join(lines))]
    parts.append(render_verify(result.after))
    return Group(*parts)
