"""Tests of the ``stitch`` benchmark (quick mode; the full run is marked slow)."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.bench import REGISTRY, BenchRecord, run_bench
from ptycho_dist.bench.stitch import dense_stitch, make_workload, run
from ptycho_dist.stitching import stitch


def test_dense_baseline_computes_the_same_canvas():
    work = make_workload(40, patch=32, object_side=96, crop=12, rng=3)
    mine = stitch(work.patches, work.positions, crop=12, shape=(96, 96))
    for batch in (None, 1, 7):
        ref = dense_stitch(work.patches, work.positions, crop=12, shape=(96, 96), batch=batch)
        ok = mine.coverage > 1e-3
        np.testing.assert_array_equal(np.isfinite(ref) & ok, ok)
        np.testing.assert_allclose(ref[ok], mine.canvas[ok], atol=1e-4)


def test_workload_keeps_patches_inside_the_object():
    work = make_workload(500, object_side=392, rng=1)
    assert work.patches.shape == (500, 64, 64) and work.patches.dtype == np.complex64
    assert work.positions.min() >= 32 and work.positions.max() <= 392 - 33
    assert not np.allclose(work.positions, np.round(work.positions))  # sub-pixel


def test_quick_run_records():
    assert REGISTRY["stitch"] == "ptycho_dist.bench.stitch"
    records = run(quick=True)
    assert [r.metric for r in records] == ["patches_per_s", "peak_bytes", "peak_bytes", "bytes_per_s"]
    assert all(isinstance(r, BenchRecord) and r.bench == "stitch" for r in records)
    rate, peak, loop_peak, moved = records
    assert moved.unit == "bytes/s" and moved.baseline.startswith("floor: numpy copy")
    assert f"({256 * 20 * 20 * 8} bytes)" in moved.baseline  # complex64 crops of 256 patches
    assert moved.ratio == pytest.approx(moved.value / moved.baseline_value)
    assert 0 < moved.ratio < 1  # stitching reads the crops at least once, like the copy
    assert rate.unit == "patches/s"
    assert rate.ratio == pytest.approx(rate.value / rate.baseline_value)
    assert peak.unit == "bytes" and peak.ratio == pytest.approx(peak.baseline_value / peak.value)
    assert "dense-loop" in loop_peak.baseline
    assert rate.ratio > 5  # measured ~60x in quick mode (256 patches, 128-px object)
    assert set(rate.to_dict()) == {"bench", "metric", "value", "unit", "baseline",
                                   "baseline_value", "ratio"}


@pytest.mark.slow
def test_full_run_meets_targets():
    rate, peak, _, _ = run_bench("stitch")
    assert rate.ratio >= 50  # measured ~580x on a 2-core CPU box
    assert peak.ratio >= 10  # measured ~65x against 256 live canvases
