"""Acceptance tests of the evaluation procedure (stitch -> evaluate, no model involved)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation import (
    BIAS_KEYS,
    METRIC_KEYS,
    evaluate_patches,
    evaluate_reconstruction,
    shift_image,
)
from ptycho_dist.stitching import stitch

from ._objects import as_stitched, extract, smooth_object


def _rows(result):
    return {(r["target"], r["channel"]): r for r in result.metrics_rows}


def test_reconstruction_equal_to_truth_is_perfect(rng):
    truth = smooth_object(rng)
    res = evaluate_reconstruction(as_stitched(truth), truth)
    rows = _rows(res)
    assert set(rows) == {("stitched", "amplitude"), ("stitched", "phase")}
    for row in rows.values():
        assert tuple(row) == METRIC_KEYS
        assert row["mae"] == 0.0 and row["ssim"] == 1.0 and row["max_error"] == 0.0
        assert row["n_pixels"] == (96 - 4) ** 2  # default border of 2 px
    assert tuple(res.bias_row) == BIAS_KEYS
    assert res.bias_row["ls_scale"] == pytest.approx(1.0, abs=1e-12)
    assert res.bias_row["ls_phase"] == pytest.approx(0.0, abs=1e-12)
    assert res.bias_row["shift_x"] == 0.0 and res.bias_row["shift_y"] == 0.0


def test_half_amplitude_gives_scalar_two_and_zero_rescaled_error(rng):
    truth = smooth_object(rng)
    res = evaluate_reconstruction(as_stitched(0.5 * truth), truth)
    bias = res.bias_row
    assert bias["ls_scale"] == pytest.approx(2.0, rel=1e-6)
    assert bias["amp_ratio_mean"] == pytest.approx(0.5, rel=1e-6)
    assert bias["amp_mae_rescaled"] == pytest.approx(0.0, abs=1e-6)
    assert bias["amp_rmse_rescaled"] == pytest.approx(0.0, abs=1e-6)
    amp = _rows(res)[("stitched", "amplitude")]
    assert amp["mae"] == pytest.approx(0.5 * np.mean(np.abs(truth[2:-2, 2:-2])), rel=1e-5)
    assert _rows(res)[("stitched", "phase")]["mae"] == pytest.approx(0.0, abs=1e-6)


def test_global_phase_is_reported_and_removed(rng):
    truth = smooth_object(rng)
    res = evaluate_reconstruction(as_stitched(truth * np.exp(-0.7j)), truth)
    assert res.bias_row["ls_phase"] == pytest.approx(0.7, abs=1e-6)
    assert res.bias_row["phase_offset_mean"] == pytest.approx(-0.7, abs=1e-6)
    assert _rows(res)[("stitched", "phase")]["max_error"] < 1e-5


def test_registration_finds_shift_and_reports_displacement(rng):
    truth = smooth_object(rng)
    moved = shift_image(truth, (-2.25, 1.5))  # content displaced by x = +1.5, y = -2.25
    res = evaluate_reconstruction(as_stitched(moved), truth)
    assert res.bias_row["shift_x"] == pytest.approx(1.5, abs=0.05)
    assert res.bias_row["shift_y"] == pytest.approx(-2.25, abs=0.05)
    assert _rows(res)[("stitched", "amplitude")]["ssim"] > 0.999
    unregistered = evaluate_reconstruction(as_stitched(moved), truth, register=False)
    assert unregistered.bias_row["shift_x"] == 0.0
    assert _rows(unregistered)[("stitched", "amplitude")]["ssim"] < 0.95


def test_constant_true_phase_makes_phase_frc_undefined(rng):
    truth = smooth_object(rng, phase=False) * np.exp(0.4j)
    rec = truth * (1 + 0.01 * rng.standard_normal(truth.shape))
    rows = _rows(evaluate_reconstruction(as_stitched(rec), truth))
    phase, amp = rows[("stitched", "phase")], rows[("stitched", "amplitude")]
    assert phase["frc_undefined"] is True
    assert np.isnan(phase["frc_05"]) and np.isnan(phase["frc_halfbit"])
    assert amp["frc_undefined"] is False and 0 < amp["frc_05"] <= 1


def test_ssim_and_psnr_equal_skimage_on_the_aligned_arrays(rng):
    truth = smooth_object(rng)
    noise = rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape)
    noisy = truth + 0.03 * noise
    res = evaluate_reconstruction(as_stitched(noisy), truth, border=3)
    rows = _rows(res)
    box = (slice(3, 93), slice(3, 93))
    assert res.region.sum() == 90 * 90 and res.region[box].all()
    t_amp, r_amp = np.abs(truth[box]).astype(np.float64), np.abs(res.aligned[box])
    dr = t_amp.max() - t_amp.min()
    amp = rows[("stitched", "amplitude")]
    ref_ssim = structural_similarity(t_amp, r_amp, data_range=dr)
    assert amp["ssim"] == pytest.approx(ref_ssim, abs=1e-9)
    assert amp["psnr"] == pytest.approx(peak_signal_noise_ratio(t_amp, r_amp, data_range=dr),
                                        rel=1e-9)
    t_ph = np.angle(truth[box]).astype(np.float64)
    r_ph = t_ph + np.angle(res.aligned[box] * np.conj(truth[box]))
    ref = structural_similarity((t_ph + np.pi) / (2 * np.pi), (r_ph + np.pi) / (2 * np.pi),
                                data_range=1.0)
    assert rows[("stitched", "phase")]["ssim"] == pytest.approx(ref, abs=1e-9)


def test_oracle_integer_scan_reproduces_truth(rng):
    truth = smooth_object(rng)
    pos = np.stack(np.meshgrid(np.arange(16, 81, 8), np.arange(16, 81, 8)), -1)
    pos = pos.reshape(-1, 2).astype(np.float64)
    patches = extract(truth, pos, 32)
    stitched = stitch(patches, pos, crop=None, shape=truth.shape, weights="uniform")
    covered = np.isfinite(stitched.canvas)
    assert np.max(np.abs(stitched.canvas[covered] - truth[covered])) < 1e-6
    res = evaluate_reconstruction(stitched, truth, positions=pos)
    assert all(r["mae"] < 1e-6 for r in res.metrics_rows)
    assert res.diagnostics["coverage_share"] == 1.0
    assert res.diagnostics["n_distinct_positions"] == 81


def test_oracle_subpixel_scan_has_high_ssim(rng):
    truth = smooth_object(rng)
    pos = rng.uniform(16, 79, size=(400, 2))
    stitched = stitch(extract(truth, pos, 32), pos, crop=20, shape=truth.shape)
    res = evaluate_reconstruction(stitched, truth, positions=pos, reference_positions=pos)
    rows = _rows(res)
    # measured 0.9989-0.9991 (amplitude), 0.9998 (phase) over 4 seeds: bilinear extract + splat
    assert rows[("stitched", "amplitude")]["ssim"] > 0.99
    assert rows[("stitched", "phase")]["ssim"] > 0.99
    assert abs(res.bias_row["shift_x"]) < 0.05 and abs(res.bias_row["shift_y"]) < 0.05
    assert res.bias_row["ls_scale"] == pytest.approx(1.0, abs=0.01)
    assert res.diagnostics["coverage_expected"] == "reference_positions"


def test_centered_frame_is_evaluated_on_the_object_grid(rng):
    truth = smooth_object(rng)
    pos = rng.uniform(16, 79, size=(400, 2))
    patches = extract(truth, pos, 32)
    obj = evaluate_reconstruction(stitch(patches, pos, crop=20, shape=truth.shape), truth)
    cen_stitch = stitch(patches, pos, crop=20, frame="centered")
    cen = evaluate_reconstruction(cen_stitch, truth)
    assert cen.diagnostics["canvas_frame"] == "centered"
    assert cen.diagnostics["stitched_pixels_outside_truth"] == 0
    a, b = _rows(obj)[("stitched", "amplitude")], _rows(cen)[("stitched", "amplitude")]
    assert b["ssim"] > 0.99 and abs(a["ssim"] - b["ssim"]) < 0.01
    assert abs(cen.bias_row["shift_x"]) < 0.05


def test_collapsed_positions_show_in_diagnostics(rng):
    truth = smooth_object(rng)
    true_pos = rng.uniform(16, 79, size=(100, 2))
    broadcast = np.broadcast_to(np.array([48.0, 48.0]), true_pos.shape)
    stitched = stitch(extract(truth, true_pos, 32), broadcast, crop=20, shape=truth.shape)
    res = evaluate_reconstruction(stitched, truth, positions=broadcast,
                                  reference_positions=true_pos)
    diag = res.diagnostics
    assert diag["n_distinct_positions"] == 1
    assert diag["support_width"] == diag["support_height"] == 20
    assert (diag["support_x0"], diag["support_x1"]) == (38.0, 58.0)
    assert diag["coverage_share"] < 0.1


def test_patch_minus_stitched_gap_catches_good_patches_badly_stitched(rng):
    truth = smooth_object(rng)
    true_pos = rng.uniform(16, 79, size=(100, 2))
    patches = extract(truth, true_pos, 32)
    broadcast = np.broadcast_to(np.array([48.0, 48.0]), true_pos.shape)
    good = evaluate_reconstruction(stitch(patches, true_pos, crop=20, shape=truth.shape), truth,
                                   pred_patches=patches, truth_patches=patches)
    bad = evaluate_reconstruction(stitch(patches, broadcast, crop=20, shape=truth.shape), truth,
                                  pred_patches=patches, truth_patches=patches)
    assert abs(good.diagnostics["patch_minus_stitched_amp_ssim"]) < 0.02
    assert bad.diagnostics["patch_minus_stitched_amp_ssim"] > 0.3
    rows = _rows(bad)
    assert bad.diagnostics["patch_minus_stitched_amp_ssim"] == pytest.approx(
        rows[("patch", "amplitude")]["ssim"] - rows[("stitched", "amplitude")]["ssim"])
    only_stitched = evaluate_reconstruction(stitch(patches, true_pos, crop=20, shape=truth.shape), truth)
    assert "patch_minus_stitched_amp_ssim" not in only_stitched.diagnostics  # one target: no gap


def test_canvas_larger_than_truth_counts_outside_pixels(rng):
    truth = smooth_object(rng, (40, 40))
    big = np.full((50, 50), np.nan + 0j, np.complex64)
    big[5:45, 5:45] = truth
    big[0, :] = 1.0  # covered canvas row that is outside the object grid
    res = evaluate_reconstruction(as_stitched(big, origin=(-5.0, -5.0)), truth)
    assert res.diagnostics["stitched_pixels_outside_truth"] == 50
    assert _rows(res)[("stitched", "amplitude")]["mae"] == 0.0


def test_illumination_threshold_and_phase_ramp(rng):
    truth = smooth_object(rng)
    ramp = np.exp(1j * (0.01 * np.arange(96)[None, :] - 0.02 * np.arange(96)[:, None]))
    stitched = as_stitched(truth / ramp)
    res = evaluate_reconstruction(stitched, truth, phase_ramp=True, register=False)
    assert res.diagnostics["phase_ramp_x"] == pytest.approx(0.01, abs=1e-6)
    assert res.diagnostics["phase_ramp_y"] == pytest.approx(-0.02, abs=1e-6)
    assert _rows(res)[("stitched", "phase")]["max_error"] < 1e-5
    cov = np.zeros((96, 96), np.float32)
    cov[:, 48:] = 1.0
    cov[:, :48] = 0.05
    half = type(stitched)(as_stitched(truth).canvas, cov, stitched.origin, 20, "object")
    res = evaluate_reconstruction(half, truth, illumination_threshold=0.1, border=0)
    assert res.region.sum() == 96 * 48 and res.region[:, 48:].all()


def test_patch_rows_and_statistics(rng):
    truth = smooth_object(rng)
    pos = rng.uniform(16, 79, size=(20, 2))
    true_patches = extract(truth, pos, 32)
    pred = 0.8 * true_patches * np.exp(1j * rng.uniform(-3, 3, size=(20, 1, 1)))
    rows = evaluate_patches(pred.astype(np.complex64), true_patches)
    assert [(r["target"], r["channel"]) for r in rows] == [("patch", "amplitude"),
                                                            ("patch", "phase")]
    amp, phase = rows
    assert amp["mae"] == pytest.approx(0.2 * np.mean(np.abs(true_patches)), rel=1e-5)
    assert phase["mae"] == pytest.approx(0.0, abs=1e-5)  # per-patch global phase removed
    assert amp["n_pixels"] == 20 * 32 * 32
    ref = np.mean([structural_similarity(np.abs(t).astype(float), np.abs(p).astype(float),
                                         data_range=float(np.ptp(np.abs(true_patches))))
                   for t, p in zip(true_patches, pred)])
    assert amp["ssim"] == pytest.approx(ref, abs=1e-6)
    cropped = evaluate_patches(pred, true_patches, crop=16)
    assert cropped[0]["n_pixels"] == 20 * 16 * 16
    stitched = stitch(true_patches, pos, crop=20, shape=truth.shape)
    res = evaluate_reconstruction(stitched, truth, pred_patches=pred, truth_patches=true_patches)
    assert len(res.metrics_rows) == 4
    assert res.diagnostics["patch_amp_mean_ratio"] == pytest.approx(0.8, rel=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"truth_object": np.ones((4, 4, 2))}, "2-D complex array"),
    ({"truth_object": np.full((8, 8), np.nan)}, "finite everywhere"),
    ({"truth_object": np.ones((96, 96)), "border": 60}, "empty evaluation region"),
    ({"truth_object": np.ones((96, 96)), "pred_patches": np.ones((2, 8, 8))}, "together"),
])
def test_procedure_errors(rng, kwargs, message):
    stitched = as_stitched(smooth_object(rng))
    with pytest.raises(EvaluationError, match=message):
        evaluate_reconstruction(stitched, **kwargs)


def test_patch_errors():
    with pytest.raises(EvaluationError, match="share a"):
        evaluate_patches(np.ones((2, 8, 8)), np.ones((3, 8, 8)))
    with pytest.raises(EvaluationError, match="finite"):
        evaluate_patches(np.full((2, 8, 8), np.nan), np.ones((2, 8, 8)))
    with pytest.raises(EvaluationError, match=r"crop must be an int in \[1, 8\]"):
        evaluate_patches(np.ones((2, 8, 8)), np.ones((2, 8, 8)), crop=9)
