"""``bench simulate`` in quick mode: record shape and internal consistency (not speed)."""

from __future__ import annotations

import math

import pytest

from ptycho_dist.bench import REGISTRY, run_bench
from ptycho_dist.bench import simulate as bench_simulate


def test_registered() -> None:
    assert REGISTRY["simulate"] == "ptycho_dist.bench.simulate"


def test_quick_run_returns_consistent_records() -> None:
    records = run_bench("simulate", quick=True)
    assert [r.metric for r in records] == ["patterns_per_s", "patterns_per_s_noise_free",
                                           "poisson_draws_per_s"]
    for r in records:
        assert r.bench == "simulate" and r.unit == "patterns/s" and r.baseline == "fft_only"
        assert math.isfinite(r.value) and r.value > 0
        assert math.isfinite(r.baseline_value) and r.baseline_value > 0
        assert r.ratio == pytest.approx(r.value / r.baseline_value)
        assert set(r.to_dict()) == {"bench", "metric", "value", "unit", "baseline",
                                    "baseline_value", "ratio"}
    assert len({r.baseline_value for r in records}) == 1  # one baseline per run


@pytest.mark.parametrize(("side", "count"), [(16, 256), (64, 4096)])
def test_workload_definition(side: int, count: int) -> None:
    obj, probe, positions = bench_simulate._workload(side)
    assert obj.shape == (392, 392) and probe.shape == (64, 64)
    assert positions.shape == (count, 2)
    assert positions.min() == pytest.approx(32.0) and positions.max() == pytest.approx(360.0)
