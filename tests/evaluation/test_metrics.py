"""Tests of ptycho_dist.evaluation.metrics (reference values from scikit-image / numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.metrics import channel_metrics, pearson_r, psnr, ssim_region

from ._objects import smooth_object


def _pair(rng, shape=(40, 48), noise=0.05):
    truth = np.abs(smooth_object(rng, shape)).astype(np.float64)
    return truth, truth + noise * rng.standard_normal(shape)


def test_identical_images_are_perfect(rng):
    t, _ = _pair(rng)
    row = channel_metrics(t, t, np.ones(t.shape, bool), channel="amplitude")
    assert row["mae"] == row["rmse"] == row["max_error"] == 0.0
    assert row["ssim"] == 1.0 and row["pearson_r"] == pytest.approx(1.0)
    assert row["psnr"] == np.inf and row["frc_05"] == 1.0 and row["frc_undefined"] is False
    assert row["n_pixels"] == t.size


def test_metrics_equal_independent_references(rng):
    t, r = _pair(rng)
    mask = np.ones(t.shape, bool)
    row = channel_metrics(t, r, mask, channel="amplitude")
    dr = t.max() - t.min()
    assert row["psnr_data_range"] == pytest.approx(dr)
    assert row["ssim"] == pytest.approx(structural_similarity(t, r, data_range=dr), abs=1e-12)
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(t, r, data_range=dr), abs=1e-12)
    assert row["pearson_r"] == pytest.approx(np.corrcoef(t.ravel(), r.ravel())[0, 1], abs=1e-12)
    assert row["mae"] == pytest.approx(np.mean(np.abs(r - t)))
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((r - t) ** 2)))
    assert row["psnr_legacy_255"] == pytest.approx(row["psnr"] + 20 * np.log10(255 / dr))


def test_ssim_on_rectangular_region_equals_skimage_on_the_crop(rng):
    t, r = _pair(rng)
    mask = np.zeros(t.shape, bool)
    mask[5:30, 8:40] = True
    r_nan = np.where(mask, r, np.nan)
    crop = (slice(5, 30), slice(8, 40))
    dr = 0.7
    assert ssim_region(t, r_nan, mask, data_range=dr) == pytest.approx(
        structural_similarity(t[crop], r[crop], data_range=dr), abs=1e-12)


def test_phase_ssim_maps_to_unit_range(rng):
    t = rng.uniform(-1, 1, (32, 32))
    r = t + 0.1 * rng.standard_normal(t.shape)
    row = channel_metrics(t, r, np.ones(t.shape, bool), channel="phase")
    ref = structural_similarity((t + np.pi) / (2 * np.pi), (r + np.pi) / (2 * np.pi),
                                data_range=1.0)
    assert row["ssim"] == pytest.approx(ref, abs=1e-12) and np.isnan(row["psnr_legacy_255"])


def test_constant_truth_has_undefined_frc_and_nan_psnr(rng):
    t = np.full((32, 32), 0.4)
    r = t + 0.01 * rng.standard_normal(t.shape)
    row = channel_metrics(t, r, np.ones(t.shape, bool), channel="phase")
    assert row["frc_undefined"] is True and np.isnan(row["frc_05"]) and np.isnan(row["frc_halfbit"])
    assert np.isnan(row["psnr"]) and row["psnr_data_range"] == 0.0
    assert np.isnan(row["pearson_r"])


def test_small_region_gives_nan_ssim_not_an_error(rng):
    t, r = _pair(rng, (6, 6))
    row = channel_metrics(t, r, np.ones(t.shape, bool), channel="amplitude")
    assert np.isnan(row["ssim"]) and row["frc_undefined"] is True and row["mae"] > 0


@pytest.mark.parametrize("a, b, expected", [([1, 2, 3], [2, 4, 6], 1.0),
                                            ([1, 2, 3], [3, 2, 1], -1.0)])
def test_pearson(a, b, expected):
    assert pearson_r(np.array(a), np.array(b)) == pytest.approx(expected)
    assert np.isnan(pearson_r(np.ones(3), np.array(a)))


def test_psnr_edge_cases():
    assert psnr(np.zeros(3), np.zeros(3), 1.0) == np.inf
    assert np.isnan(psnr(np.zeros(3), np.ones(3), 0.0))
    assert psnr(np.zeros(4), np.full(4, 0.1), 1.0) == pytest.approx(20.0)


def test_channel_metrics_errors(rng):
    t, r = _pair(rng, (8, 8))
    with pytest.raises(EvaluationError, match="share a shape"):
        channel_metrics(t, r[:4], np.ones(t.shape, bool), channel="amplitude")
    with pytest.raises(EvaluationError, match="empty region"):
        channel_metrics(t, r, np.zeros(t.shape, bool), channel="amplitude")
    with pytest.raises(EvaluationError, match="channel must be one of"):
        channel_metrics(t, r, np.ones(t.shape, bool), channel="intensity")
