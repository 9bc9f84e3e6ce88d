"""User-facing benchmarks (``ptycho-dist bench NAME``).

Every benchmark measures the project's figure and a baseline *in the same run* and reports a ratio
oriented so that greater is better (throughput / baseline throughput; baseline memory / memory).
A benchmark module exposes ``run(*, quick: bool = False) -> list[BenchRecord]`` and registers
itself in :data:`REGISTRY` below.
"""

from __future__ import annotations

import importlib
import inspect
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BenchRecord", "REGISTRY", "run_bench", "throughput", "peak_memory", "ratio_record"]

#: bench name -> module path (imported lazily: a bench may need torch or Ray)
REGISTRY: dict[str, str] = {
    "simulate": "ptycho_dist.bench.simulate",
    "stitch": "ptycho_dist.bench.stitch",
    "runner": "ptycho_dist.bench.runner",
    "train": "ptycho_dist.bench.train",
}


@dataclass(frozen=True)
class BenchRecord:
    """One measured figure and its same-run baseline (DESIGN.md §2)."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_record(bench: str, metric: str, value: float, unit: str, baseline: str,
                 baseline_value: float, *, higher_is_better: bool = True) -> BenchRecord:
    """Build a record whose ``ratio`` is oriented so that greater is better."""
    if higher_is_better:
        ratio = value / baseline_value if baseline_value else float("nan")
    else:
        ratio = baseline_value / value if value else float("nan")
    return BenchRecord(bench, metric, float(value), unit, baseline, float(baseline_value), float(ratio))


def throughput(fn: Callable[[], object], n_items: int, *, repeats: int = 3, warmup: int = 1) -> float:
    """Best-of-``repeats`` items per second of ``fn`` (which processes ``n_items`` per call)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_items / best


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python/numpy while ``fn`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return int(peak)


def run_bench(name: str, *, quick: bool = False, **options: Any) -> list[BenchRecord]:
    """Run the benchmark called ``name`` and return its records; ``options`` (those not None) go to
    its ``run`` (e.g. ``scenarios`` for ``runner``)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    module = importlib.import_module(REGISTRY[name])
    given = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(module.run).parameters)
    unknown = sorted(set(given) - accepted)
    if unknown:
        from ptycho_dist.errors import SpecError

        raise SpecError(f"bench {name}: does not take --{unknown[0].replace('_', '-')}")
    return list(module.run(quick=quick, **given))
