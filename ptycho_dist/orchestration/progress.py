"""A live progress display with one bar per stage of the registry (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ptycho_dist.study.registry import STAGES

__all__ = ["StageProgress"]


class StageProgress:
    """Bars per stage, advanced as stage tasks finish (cache hits counted separately)."""

    def __init__(self, totals: Mapping[str, int], *, enabled: bool = True) -> None:
        self._enabled = enabled and bool(totals)
        self._progress = Progress(
            TextColumn("{task.description:<%d}" % max(map(len, STAGES))), BarColumn(), MofNCompleteColumn(),
            TextColumn("cached {task.fields[cached]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False, disable=not self._enabled,
        )
        self._tasks = {s: self._progress.add_task(s, total=totals[s], cached=0) for s in STAGES if totals.get(s)}
        self._cached = dict.fromkeys(self._tasks, 0)

    def advance(self, stage: str, *, cached: bool) -> None:
        if cached:
            self._cached[stage] += 1
        self._progress.update(self._tasks[stage], advance=1, cached=self._cached[stage])

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.__exit__(exc_type, exc, tb)
