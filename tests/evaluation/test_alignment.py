"""Tests of ptycho_dist.evaluation.alignment."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.evaluation.alignment import (
    fit_phase_ramp,
    ls_scalar,
    phase_plane,
    register_shift,
    shift_image,
    shift_mask,
    to_object_frame,
)
from ptycho_dist.stitching import StitchResult, stitch

from ._objects import as_stitched, smooth_object


@pytest.mark.parametrize("shift_xy", [(1.5, -2.25), (-0.4, 0.7), (3.3, 1.1)])
@pytest.mark.parametrize("crop", [None, (slice(20, 80), slice(10, 90))])
def test_registration_finds_subpixel_shift(rng, shift_xy, crop):
    truth = smooth_object(rng).astype(np.complex128)
    moved = shift_image(truth, (shift_xy[1], shift_xy[0]))  # content moves by +x, +y
    region = np.zeros(truth.shape, bool)
    region[crop if crop else (slice(None), slice(None))] = True
    dy, dx = register_shift(truth, moved, region)
    assert abs(-dx - shift_xy[0]) < 0.05 and abs(-dy - shift_xy[1]) < 0.05


def test_shift_image_integer_shift_is_a_roll(rng):
    img = rng.standard_normal((16, 12))
    np.testing.assert_allclose(shift_image(img, (2, -3)).real, np.roll(img, (2, -3), (0, 1)),
                               atol=1e-12)


def test_shift_mask_drops_pixels_brought_in_from_outside():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    moved = shift_mask(mask, (0.5, 2.0))
    rows = np.flatnonzero(moved.any(axis=1))
    cols = np.flatnonzero(moved.any(axis=0))
    # bilinear-complete pixels: rows 6..14, cols 7..16; minus one ringing pixel each side
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (7, 13, 8, 15)
    np.testing.assert_array_equal(shift_mask(mask, (0.0, 0.0)), mask)


@pytest.mark.parametrize("c", [2.0, 0.5 * np.exp(0.3j), np.exp(-2.0j)])
def test_ls_scalar_inverts_a_complex_factor(rng, c):
    truth = smooth_object(rng, (32, 32))
    region = np.ones(truth.shape, bool)
    assert ls_scalar(truth / c, truth, region) == pytest.approx(c, rel=1e-6)


def test_ls_scalar_of_zero_reconstruction_is_nan(rng):
    truth = smooth_object(rng, (8, 8))
    assert np.isnan(ls_scalar(np.zeros_like(truth), truth, np.ones((8, 8), bool)))


def test_phase_ramp_fit_recovers_plane(rng):
    truth = smooth_object(rng, (40, 50)).astype(np.complex128)
    coef = (0.3, 0.02, -0.015)
    rec = truth * np.exp(-1j * phase_plane(truth.shape, coef))
    got = fit_phase_ramp(rec, truth, np.ones(truth.shape, bool))
    np.testing.assert_allclose(got, coef, atol=1e-6)


def test_to_object_frame_pastes_integer_origin_and_counts_outside(rng):
    canvas = rng.standard_normal((10, 12)).astype(np.complex64)
    res = as_stitched(canvas, origin=(-2.0, 5.0))
    rec, cov, outside = to_object_frame(res, (12, 8))
    # canvas columns 2..9 land on object columns 0..7; rows 0..6 on object rows 5..11
    np.testing.assert_array_equal(rec[5:12, 0:8], canvas[0:7, 2:10])
    assert np.isnan(rec[:5]).all() and cov[:5].sum() == 0
    assert outside == 10 * 12 - 7 * 8


def test_to_object_frame_resamples_fractional_origin(rng):
    truth = smooth_object(rng, (48, 48))
    pos = np.stack(np.meshgrid(np.arange(10, 39, 2), np.arange(10, 39, 2)), -1).reshape(-1, 2)
    pos = pos.astype(np.float64) + 0.3  # fractional mean -> fractional centered origin
    s = 16
    patches = np.stack([truth[int(y) - 8:int(y) + 8, int(x) - 8:int(x) + 8] for x, y in pos])
    centered = stitch(patches, pos - 0.3, crop=s, frame="centered")
    assert np.all(np.abs(centered.origin - np.round(centered.origin)) < 1e-9)
    shifted = StitchResult(centered.canvas, centered.coverage, centered.origin + 0.25, s,
                           "centered")
    rec, _, outside = to_object_frame(shifted, truth.shape)
    direct, _, _ = to_object_frame(centered, truth.shape)
    ok = np.isfinite(rec)
    assert outside == 0 and ok.sum() > 0.8 * np.isfinite(direct).sum()
    # rec(y, x) = canvas at (x - 0.25, y - 0.25) -> bilinear mix of direct's neighbours
    ref = (0.75 * 0.75 * direct + 0.25 * 0.75 * np.roll(direct, 1, 1)
           + 0.75 * 0.25 * np.roll(direct, 1, 0) + 0.25 * 0.25 * np.roll(direct, (1, 1), (0, 1)))
    np.testing.assert_allclose(rec[ok], ref[ok], atol=1e-6)
