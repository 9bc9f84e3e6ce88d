"""Tests of ptycho_dist.evaluation.bias."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.evaluation.bias import amplitude_bias, phase_offset

from ._objects import smooth_object


def test_constant_amplitude_bias_is_reported(rng):
    truth = smooth_object(rng, (32, 32)).astype(np.complex128)
    region = np.ones(truth.shape, bool)
    row = amplitude_bias(truth / 12.0, truth, region, scalar=12.0 + 0j)
    for key in ("amp_ratio_mean", "amp_ratio_median", "amp_ratio_p05", "amp_ratio_p95"):
        assert row[key] == pytest.approx(1 / 12)
    assert row["ls_scale"] == pytest.approx(12.0) and row["ls_phase"] == 0.0
    assert row["amp_mae_rescaled"] == pytest.approx(0.0, abs=1e-12)
    assert row["amp_rmse_rescaled"] == pytest.approx(0.0, abs=1e-12)


def test_ratio_uses_only_strong_truth_pixels():
    truth = np.array([[1.0, 0.05], [1.0, 1.0]], dtype=np.complex128)
    rec = np.array([[2.0, 100.0], [2.0, 2.0]], dtype=np.complex128)
    row = amplitude_bias(rec, truth, np.ones((2, 2), bool), scalar=0.5 + 0j, threshold=0.1)
    assert row["amp_ratio_mean"] == 2.0 and row["amp_ratio_p95"] == 2.0
    # rescaled errors use the whole region: |0.5*100 - 0.05| on one of four pixels
    assert row["amp_mae_rescaled"] == pytest.approx((50 - 0.05) / 4)


def test_percentiles_match_numpy(rng):
    truth = np.ones((20, 20), np.complex128)
    rec = rng.uniform(0.5, 1.5, (20, 20)).astype(np.complex128)
    row = amplitude_bias(rec, truth, np.ones((20, 20), bool), scalar=1.0 + 0j)
    assert row["amp_ratio_p05"] == pytest.approx(np.percentile(rec.real, 5))
    assert row["amp_ratio_median"] == pytest.approx(np.median(rec.real))


def test_nan_scalar_gives_nan_rescaled_errors(rng):
    truth = smooth_object(rng, (8, 8))
    row = amplitude_bias(np.zeros_like(truth), truth, np.ones((8, 8), bool),
                         scalar=complex("nan+nanj"))
    assert np.isnan(row["ls_scale"]) and np.isnan(row["amp_mae_rescaled"])
    assert row["amp_ratio_mean"] == 0.0


@pytest.mark.parametrize("offset", [0.3, -2.0, 3.1])
def test_phase_offset_is_circular_mean(rng, offset):
    truth = smooth_object(rng, (24, 24)).astype(np.complex128)
    noise = 0.05 * rng.standard_normal(truth.shape)
    rec = truth * np.exp(1j * (offset + noise))
    # 3.1 + noise wraps across pi; a plain mean of the wrapped difference would be near 0
    expected = np.angle(np.mean(np.exp(1j * (offset + noise))))
    assert phase_offset(rec, truth, np.ones(truth.shape, bool)) == pytest.approx(expected, abs=1e-9)
    assert abs(phase_offset(rec, truth, np.ones(truth.shape, bool)) - offset) < 0.02
