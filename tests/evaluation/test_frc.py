"""Tests of ptycho_dist.evaluation.frc against a direct (looped) reference."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.frc import (
    crossing,
    frc_curve,
    halfbit_threshold,
    prepare_frc_image,
    region_window,
)


def _frc_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ring-by-ring FRC with explicit loops over pixels (independent implementation)."""
    h, w = a.shape
    side = min(h, w)
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    num = np.zeros(side // 2 + 1)
    pa = np.zeros(side // 2 + 1)
    pb = np.zeros(side // 2 + 1)
    for i in range(h):
        for j in range(w):
            qy = i / h if i <= h // 2 else (i - h) / h
            qx = j / w if j <= w // 2 else (j - w) / w
            k = int(round(np.hypot(qy, qx) * side))
            if k <= side // 2:
                num[k] += (fa[i, j] * np.conj(fb[i, j])).real
                pa[k] += abs(fa[i, j]) ** 2
                pb[k] += abs(fb[i, j]) ** 2
    return num / np.sqrt(pa * pb)


@pytest.mark.parametrize("shape", [(16, 16), (12, 20)])
def test_frc_matches_looped_reference(rng, shape):
    a = rng.standard_normal(shape)
    b = a + 0.8 * rng.standard_normal(shape)
    curve = frc_curve(a, b)
    np.testing.assert_allclose(curve.frc, _frc_reference(a, b), rtol=1e-10)
    side = min(shape)
    np.testing.assert_allclose(curve.frequency, np.arange(side // 2 + 1) * 2 / side)
    assert curve.n_pixels[0] == 1


def test_identical_and_opposite_images(rng):
    a = rng.standard_normal((32, 32))
    assert np.allclose(frc_curve(a, a).frc, 1.0)
    assert np.allclose(frc_curve(a, -a).frc, -1.0)
    assert frc_curve(a, a).crossing_05 == 1.0 and frc_curve(a, -a).crossing_05 == 2 / 32


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
def test_white_signal_plus_noise_has_expected_frc(rng, s):
    # b = a + n with var(n) = s^2 var(a): FRC = 1 / sqrt(1 + s^2) on every ring
    a = rng.standard_normal((96, 96))
    curve = frc_curve(a, a + s * rng.standard_normal(a.shape))
    assert np.mean(curve.frc[4:]) == pytest.approx(1 / np.sqrt(1 + s * s), abs=0.03)


def test_more_noise_lowers_the_crossing(rng):
    q = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij"))
    signal = np.fft.ifft2(np.fft.fft2(rng.standard_normal((64, 64))) / (1 + (q / 0.05) ** 2)).real
    crossings = [frc_curve(signal, signal + s * signal.std() * rng.standard_normal(signal.shape))
                 for s in (0.1, 1.0, 5.0)]
    c05 = [c.crossing_05 for c in crossings]
    assert c05[0] > c05[1] > c05[2] and c05[2] < 0.5
    assert all(c.crossing_halfbit >= c.crossing_05 for c in crossings)


@pytest.mark.parametrize("n, expected", [(1, 1.0), (1e16, 0.2071 / 1.2071),
                                         (100, (0.2071 + 0.19102) / (1.2071 + 0.09102))])
def test_halfbit_threshold_formula(n, expected):
    assert halfbit_threshold(np.array([n]))[0] == pytest.approx(expected, rel=1e-6)


def test_crossing_interpolates_linearly():
    freq = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    frc = np.array([np.nan, 0.9, 0.7, 0.3, 0.1])
    assert crossing(freq, frc, np.full(5, 0.5)) == pytest.approx(0.625)
    assert crossing(freq, frc, np.full(5, 0.05)) == 1.0


def test_region_window_is_zero_outside_and_one_deep_inside():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    win = region_window(mask, taper=4)
    assert win[~mask].max() == 0 and win[12:28, 12:28].min() == 1.0
    assert 0 < win[5, 20] < win[6, 20] < 1


def test_prepare_removes_region_mean(rng):
    img = rng.standard_normal((32, 32)) + 5.0
    mask = np.ones((32, 32), bool)
    out = prepare_frc_image(img, mask)
    assert abs(out.sum()) < abs(img.sum()) / 20


def test_frc_input_errors():
    with pytest.raises(EvaluationError, match="at least 8 px"):
        frc_curve(np.ones((6, 6)), np.ones((6, 6)))
    with pytest.raises(EvaluationError, match="one shape"):
        frc_curve(np.ones((8, 8)), np.ones((9, 8)))
