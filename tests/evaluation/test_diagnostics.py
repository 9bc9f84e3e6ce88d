"""Tests of ptycho_dist.evaluation.diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.diagnostics import (
    coverage_share,
    distinct_positions,
    expected_footprint,
    learning_scores,
    patch_scores,
    patch_statistics,
    placed_weight_share,
    position_summary,
    score_mask,
    support_box,
    target_gaps,
)
from ptycho_dist.stitching import stitch


@pytest.mark.parametrize("jitter, expected", [(0.0, 1), (1e-9, 1), (1e-3, 40)])
def test_distinct_positions(rng, jitter, expected):
    pos = np.full((40, 2), 17.25) + jitter * rng.standard_normal((40, 2))
    assert distinct_positions(pos) == expected
    assert distinct_positions(pos.reshape(10, 4, 2)) == expected


def test_position_summary_values():
    pos = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    out = position_summary(pos)
    assert out["n_positions"] == 3 and out["n_distinct_positions"] == 3
    assert out["position_x_min"] == 1 and out["position_x_max"] == 5
    assert out["position_x_std"] == pytest.approx(np.std([1, 3, 5])) and out["position_y_std"] == 0


def test_support_box_in_object_pixels(rng):
    pos = np.array([[20.0, 30.0], [27.0, 33.0]])
    res = stitch(rng.standard_normal((2, 16, 16)), pos, crop=6)
    box = support_box(res)
    assert box == {"support_x0": 17.0, "support_y0": 27.0, "support_x1": 30.0,
                   "support_y1": 36.0, "support_width": 13, "support_height": 9}


def test_expected_footprint_and_share():
    expected = expected_footprint(np.array([[5.0, 5.0], [14.0, 5.0]]), (12, 20), 4)
    assert expected.sum() == 32 and expected[3:7, 3:7].all() and expected[3:7, 12:16].all()
    covered = np.zeros((12, 20), bool)
    covered[3:7, 3:7] = True
    assert coverage_share(covered, expected) == 0.5
    assert np.isnan(coverage_share(covered, np.zeros_like(covered)))


def test_patch_statistics_ratios():
    truth = np.zeros((2, 4, 4), np.complex64)
    truth[0, :2] = 1.0  # mean 0.5, var 0.25
    truth[1] = 2.0      # mean 2, var 0
    pred = 3 * truth
    out = patch_statistics(pred, truth)
    assert out["patch_amp_mean_truth"] == pytest.approx(1.25)
    assert out["patch_amp_var_truth"] == pytest.approx(0.125)
    assert out["patch_amp_mean_ratio"] == pytest.approx(3.0)
    assert out["patch_amp_var_ratio"] == pytest.approx(9.0)
    # only patch 0 varies; a gain of 3 keeps its structure: r = 1
    assert out["patch_amp_structure_r"] == pytest.approx(1.0)


def test_patch_structure_r_tells_structure_from_mean(rng):
    truth = (0.5 + 0.5 * rng.random((50, 16, 16))).astype(np.complex64)
    means = np.abs(truth).mean(axis=(1, 2), keepdims=True)
    # right mean, unrelated structure (another random texture): r about 0
    flat = means + 0.1 * (rng.random((50, 16, 16)) - 0.5)
    assert abs(patch_statistics(flat, truth)["patch_amp_structure_r"]) < 0.05
    # the structure with an offset, a gain and mild noise: r close to 1, whatever the means
    rescaled = 2.0 + 0.3 * np.abs(truth) + 0.005 * rng.standard_normal(truth.shape)
    assert patch_statistics(rescaled, truth)["patch_amp_structure_r"] > 0.95
    # the twin (patch rotated by 180 degrees) shares the mean but not the structure
    twin = np.abs(truth)[:, ::-1, ::-1]
    assert abs(patch_statistics(twin, truth)["patch_amp_structure_r"]) < 0.1
    # structure_crop: only the central square counts; outside it anything goes
    wrong_edges = np.abs(truth).copy()
    wrong_edges[:, :4] = wrong_edges[:, -4:] = 0.0
    assert patch_statistics(wrong_edges, truth, structure_crop=8)["patch_amp_structure_r"] == pytest.approx(1.0)
    assert patch_statistics(wrong_edges, truth)["patch_amp_structure_r"] < 0.9
    with pytest.raises(EvaluationError, match="structure_crop"):
        patch_statistics(truth, truth, structure_crop=0)
    # all-constant patches: undefined
    assert np.isnan(patch_statistics(np.ones((3, 4, 4)), np.ones((3, 4, 4)))["patch_amp_structure_r"])


def test_bad_positions_and_patches_raise():
    with pytest.raises(EvaluationError, match=r"\(n, 2\)"):
        distinct_positions(np.zeros((4, 3)))
    with pytest.raises(EvaluationError, match="share a"):
        patch_statistics(np.zeros((2, 4, 4)), np.zeros((3, 4, 4)))


def _row(target, channel, ssim):
    return {"target": target, "channel": channel, "ssim": ssim}


def test_target_gaps_patch_minus_stitched_per_channel():
    rows = [_row("stitched", "amplitude", 0.25), _row("stitched", "phase", 0.75),
            _row("patch", "amplitude", 1.0), _row("patch", "phase", float("nan"))]
    gaps = target_gaps(rows)
    assert gaps["patch_minus_stitched_amp_ssim"] == pytest.approx(0.75)
    assert np.isnan(gaps["patch_minus_stitched_phase_ssim"])
    assert target_gaps(rows[:2]) == {}  # one target only: no gap
    assert target_gaps([_row("patch", "amplitude", 1.0)]) == {}


def test_placed_weight_share_is_one_unless_clipped(rng):
    pos = rng.uniform(20, 60, size=(12, 2))
    patches = np.ones((12, 16, 16), np.complex64)
    full = stitch(patches, pos, crop=8)
    assert placed_weight_share(full.coverage, 12, 64.0) == pytest.approx(1.0, rel=1e-6)
    clipped = stitch(patches, pos, crop=8, frame="legacy", side=10)
    assert placed_weight_share(clipped.coverage, 12, 64.0) < 0.5
    with pytest.raises(EvaluationError, match="n_patches >= 1"):
        placed_weight_share(full.coverage, 0, 64.0)


# --- patch scores of the train stage (learned_nothing) -------------------------------------------

def test_score_mask_is_the_illuminated_central_window():
    probe = np.zeros((16, 16), np.complex64)
    probe[2:14, 2:14] = 1.0
    probe[7, 7] = 0.05  # below 10 % of the peak
    mask = score_mask(probe)
    assert mask.dtype == bool and mask.sum() == 8 * 8 - 1 and mask[4:12, 4:12].sum() == 63 and not mask[7, 7]
    assert score_mask(probe, threshold=0.0).sum() == 64
    with pytest.raises(EvaluationError, match="square"):
        score_mask(probe[:, :8])


def _patches(rng, k=40, n=16):
    truth = 0.5 + rng.random((k, n, n))
    return truth, np.ones((n, n), bool)


def test_patch_scores_mean_is_the_pooled_pearson_r(rng):
    truth, mask = _patches(rng)
    pred = np.abs(truth + 0.7 * rng.standard_normal(truth.shape))
    c = patch_scores(pred * np.exp(1j), truth, mask)  # amplitudes only: a global phase changes nothing
    assert c.shape == (40,) and c.dtype == np.float64
    assert c.mean() == pytest.approx(np.corrcoef(np.abs(pred).ravel(), truth.ravel())[0, 1], abs=1e-12)
    np.testing.assert_allclose(patch_scores(3 * pred + 1, truth, mask), c)  # invariant to gain and offset
    np.testing.assert_allclose(patch_scores(truth, truth, mask).mean(), 1.0)
    # a flat prediction has no structure (0); a non-finite one gives NaN; a flat truth gives NaN
    np.testing.assert_array_equal(patch_scores(np.full_like(truth, 0.5), truth, mask), np.zeros(40))
    assert np.isnan(patch_scores(np.where(truth > 1.4, np.nan, truth), truth, mask)).all()
    assert np.isnan(patch_scores(pred, np.ones_like(truth), mask)).all()
    with pytest.raises(EvaluationError, match="non-empty mask"):
        patch_scores(pred, truth, np.zeros((16, 16), bool))


def test_patch_scores_see_the_brightness_between_patches(rng):
    # patches with the right mean and no structure inside still correlate at patch level
    truth, mask = _patches(rng)
    truth = truth * np.linspace(0.2, 2.0, 40)[:, None, None]
    means = np.broadcast_to(truth.mean(axis=(1, 2), keepdims=True), truth.shape)
    assert patch_scores(means, truth, mask).mean() > 0.5
    # the evaluate diagnostic patch_amp_structure_r is another quantity: it leaves flat patches out
    assert np.isnan(patch_statistics(means.astype(complex), truth.astype(complex))["patch_amp_structure_r"])


def test_learning_scores_gain_and_standard_error(rng):
    trained, untrained = 0.5 + 0.1 * rng.standard_normal(50), 0.02 * rng.standard_normal(50)
    out = learning_scores(trained, untrained)
    assert out["patch_score_trained"] == pytest.approx(trained.mean())
    assert out["patch_score_untrained"] == pytest.approx(untrained.mean())
    assert out["patch_score_gain_se"] == pytest.approx(np.std(trained - untrained, ddof=1) / np.sqrt(50))
    assert out["patch_score_patches"] == 50
    same = learning_scores(trained, trained)
    assert same["patch_score_gain_se"] == 0 and same["patch_score_trained"] == same["patch_score_untrained"]
    assert np.isnan(learning_scores(trained[:1], untrained[:1])["patch_score_gain_se"])
    with pytest.raises(EvaluationError, match="two"):
        learning_scores(trained, untrained[:3])
