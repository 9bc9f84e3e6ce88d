"""``bench train`` (quick mode) and its synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.bench.train import soft_disk_probe, synthetic_data, synthetic_object


def test_synthetic_data_dose_and_shapes() -> None:
    data = synthetic_data(n=32, gridsize=2, n_groups=50, nphotons=2e4, rng=1)
    assert data.counts.shape == (50, 4, 32, 32) and data.counts.dtype == np.float32
    assert data.relative.shape == (50, 4, 2)
    np.testing.assert_allclose(data.relative.mean(axis=1), 0.0, atol=1e-12)
    # 2 x 2 grid with step N/4 = 8 px: offsets +-4 px in x and y
    np.testing.assert_array_equal(np.unique(np.abs(data.relative)), [4.0])
    totals = data.counts.sum(axis=(-2, -1), dtype=np.float64)
    # mean total counts = nphotons within Poisson error of 200 patterns (sd ~ sqrt(2e4 / 200))
    assert abs(totals.mean() - 2e4) < 5 * np.sqrt(2e4 / 200)


def test_synthetic_object_and_probe() -> None:
    obj = synthetic_object(64, rng=0)
    assert obj.shape == (64, 64) and obj.dtype == np.complex64
    assert 0.3 - 1e-6 <= np.abs(obj).min() and np.abs(obj).max() <= 1 + 1e-6
    probe = soft_disk_probe(32)
    yy, xx = np.mgrid[:32, :32] - 16
    disk = np.hypot(xx, yy) <= 8
    assert np.mean(np.abs(probe[disk])) == pytest.approx(0.25, rel=1e-6)
    assert np.argmax(np.abs(probe)) == 16 * 32 + 16 or np.abs(probe[16, 16]) == np.abs(probe).max()


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
