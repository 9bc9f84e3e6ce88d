"""``bench train`` (quick mode) and its data, simulated with the package's physics."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist import physics
from ptycho_dist.bench.train import bench_data


def test_bench_data_is_the_physics_simulation() -> None:
    data = bench_data(32, 50, nphotons=2e4, rng=1)
    assert data.counts.shape == (50, 1, 32, 32) and data.counts.dtype == np.float32
    assert data.relative.shape == (50, 1, 2) and not np.any(data.relative)   # gridsize 1
    probe, _ = physics.normalize_probe(physics.disk_probe(32))
    np.testing.assert_array_equal(data.probe, probe)
    totals = data.counts.sum(axis=(-2, -1), dtype=np.float64)
    # mean total counts = nphotons over all 289 positions; 50 of them are within a few percent
    assert totals.mean() == pytest.approx(2e4, rel=0.1)
    again = bench_data(32, 50, nphotons=2e4, rng=1)
    np.testing.assert_array_equal(again.counts, data.counts)


def test_run_quick_records() -> None:
    pytest.importorskip("torch")
    from ptycho_dist.bench.train import run

    records = run(quick=True)
    assert [r.metric for r in records] == ["train_samples_per_s", "infer_samples_per_s"]
    for r in records:
        assert r.bench == "train" and r.unit == "samples/s"
        assert r.value > 0 and r.baseline_value > 0
        assert r.ratio == pytest.approx(r.value / r.baseline_value)
        assert "eager PyTorch loop" in r.baseline
