"""The PtychoPINN reference lines object (``object.kind = "ptychopinn_lines"``).

Definition (docs/conventions.md): 1-px segments with integer endpoints uniform on a canvas of side
2 * size, S = 1 g_1 * B + 2 g_5 * B + 5 g_10 * B, central crop, amplitude divided by the mean
per-patch maximum, zero phase.
"""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics import grid_scan
from ptycho_dist.physics.objects import (
    mean_patch_max,
    normalize_by_mean_patch_max,
    ptychopinn_lines_amplitude,
    ptychopinn_lines_object,
    reference_tanh_phase,
)

SIZE, N, SEED = 256, 64, 7
EDGES = np.array([0.01, 0.02, 0.04, 0.08, 0.16, 0.32])  # radial bands, cycles per pixel


def _canvas(size: int, seed: int) -> np.ndarray:
    """The unblurred binary segments B of the same draw, cropped (sigma 1e-3: an identity filter)."""
    return ptychopinn_lines_amplitude(size, sigmas=(1e-3,), weights=(1.0,), rng=seed)


def _band_powers(image: np.ndarray, transfer: bool = False) -> np.ndarray:
    """Power of the Hann-windowed, mean-removed image in each radial band of EDGES; with
    ``transfer`` the power is multiplied by |h(f)|^2 of the reference blur, h = sum w_i exp(-2 pi^2 s_i^2 f^2)."""
    n = image.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    if transfer:
        h = sum(w * np.exp(-2 * np.pi**2 * s**2 * f**2) for s, w in ((1, 1), (5, 2), (10, 5)))
        power = power * h**2
    return np.array([power[(f >= lo) & (f < hi)].sum() for lo, hi in zip(EDGES[:-1], EDGES[1:])])


def test_radial_power_spectrum_is_the_segments_times_the_blur_mix() -> None:
    """Band powers (relative to the lowest band) equal those of B times |h|^2 of the 1:2:5 mix of
    sigma 1, 5, 10 within 6 %; weights 1:2:6 fail by 18 %, 1:1:1 by a factor of 3-5."""
    measured = _band_powers(ptychopinn_lines_amplitude(SIZE, rng=0))
    derived = _band_powers(_canvas(SIZE, 0), transfer=True)
    ratio = (measured / measured[0]) / (derived / derived[0])
    np.testing.assert_allclose(ratio, 1.0, atol=0.06)
    # the same check rejects a wrong mix (what the tolerance is for)
    for weights in ((1.0, 2.0, 6.0), (1.0, 1.0, 1.0)):
        wrong = _band_powers(ptychopinn_lines_amplitude(SIZE, weights=weights, rng=0))
        assert np.abs((wrong / wrong[0]) / (derived / derived[0]) - 1).max() > 0.15


def test_band_power_ratio_follows_the_line_model() -> None:
    """Long random lines have annular power ~ constant per unit of |f|, so the band power of S is
    ~ integral of |h(f)|^2 df over the band; the 0.08-0.16 / 0.01-0.02 ratio measured against that
    integral lies within [0.55, 1.2] (a 1:1:1 mix gives 3.4-5.6, a 5:2:1 mix 10-16)."""
    f = np.linspace(0.0, 0.5, 200001)
    h2 = sum(w * np.exp(-2 * np.pi**2 * s**2 * f**2) for s, w in ((1, 1), (5, 2), (10, 5))) ** 2
    band = [np.trapezoid(h2[(f >= lo) & (f < hi)], f[(f >= lo) & (f < hi)]) for lo, hi in ((0.01, 0.02), (0.08, 0.16))]
    for seed in (0, 1):
        p = _band_powers(ptychopinn_lines_amplitude(SIZE, rng=seed))
        assert 0.55 < (p[3] / p[0]) / (band[1] / band[0]) < 1.2


def test_mean_is_the_weight_sum_times_the_line_density() -> None:
    """Gaussian filters keep the mean: mean S = (1 + 2 + 5) mean B up to the crop's edges (2 %)."""
    raw, lines = ptychopinn_lines_amplitude(SIZE, rng=3), _canvas(SIZE, 3)
    assert set(np.unique(lines)) == {0.0, 1.0}  # segments are set, not added
    assert raw.mean() / (8.0 * lines.mean()) == pytest.approx(1.0, abs=0.02)


def test_amplitude_statistics_after_normalization() -> None:
    positions = grid_scan((SIZE, SIZE), N, step=16.0)
    obj = ptychopinn_lines_object(SIZE, positions=positions, n=N, rng=SEED)
    assert obj.shape == (SIZE, SIZE) and obj.dtype == np.complex64
    assert np.all(obj.imag == 0) and np.all(obj.real > 0)  # amplitude only, zero phase
    amplitude = np.abs(obj)
    assert mean_patch_max(amplitude, positions, n=N) == pytest.approx(1.0, abs=1e-6)
    # pinned for this seed and size (a change of the construction moves every one of them)
    assert float(amplitude.mean()) == pytest.approx(0.716968, rel=1e-5)
    assert float(amplitude.max()) == pytest.approx(1.100499, rel=1e-5)
    np.testing.assert_allclose(np.percentile(amplitude, [5, 50, 95]), [0.493830, 0.705130, 0.967022], rtol=1e-5)


def test_normalization_is_the_mean_of_per_patch_maxima() -> None:
    amplitude = np.zeros((64, 64))
    amplitude[10, 10], amplitude[50, 50] = 4.0, 2.0
    positions = np.array([[16.0, 16.0], [48.0, 48.0], [48.0, 16.0]])  # (x, y): peaks 4, 2 and 0
    assert mean_patch_max(amplitude, positions, n=32) == pytest.approx(2.0)
    # groups: max over members, mean over groups (the reference at gridsize > 1)
    assert mean_patch_max(amplitude, positions, n=32, groups=np.array([[0, 2], [1, 2]])) == pytest.approx(3.0)
    scaled, norm = normalize_by_mean_patch_max(amplitude, positions, n=32)
    assert norm == pytest.approx(2.0) and scaled.max() == pytest.approx(2.0) and amplitude.max() == 4.0


def test_seeded_and_shaped() -> None:
    a = ptychopinn_lines_amplitude(65, n_lines=50, rng=5)
    assert a.shape == (65, 65) and a.dtype == np.float64
    np.testing.assert_array_equal(a, ptychopinn_lines_amplitude(65, n_lines=50, rng=np.random.default_rng(5)))
    assert not np.array_equal(a, ptychopinn_lines_amplitude(65, n_lines=50, rng=6))


def test_tanh_phase_option() -> None:
    positions = grid_scan((128, 128), 32, step=16.0)
    obj = ptychopinn_lines_object(128, positions=positions, n=32, phase="tanh", rng=1)
    amplitude = np.abs(obj).astype(np.float64)
    expected = np.pi * np.tanh((amplitude - amplitude.max() / 2) / (3 * amplitude.mean()))
    np.testing.assert_allclose(np.angle(obj), expected, atol=1e-5)
    np.testing.assert_allclose(reference_tanh_phase(3.0 * amplitude), reference_tanh_phase(amplitude), atol=1e-12)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ptychopinn_lines_amplitude(0), "object shape"),
    (lambda: ptychopinn_lines_amplitude(32, n_lines=0), "n_lines must be an integer >= 1"),
    (lambda: ptychopinn_lines_amplitude(32, sigmas=(1.0,), weights=(1.0, 2.0)), "equal length"),
    (lambda: mean_patch_max(np.ones((32, 32)), np.zeros((0, 2)), n=16), "positions must not be empty"),
    (lambda: mean_patch_max(np.ones((32, 32)), np.array([[2.0, 16.0]]), n=16), "outside the object"),
    (lambda: mean_patch_max(np.ones((32, 32)), np.array([[16.0, 16.0]]), n=16, groups=np.array([[0, 1]])),
     "groups index positions 0..0"),
    (lambda: normalize_by_mean_patch_max(np.zeros((32, 32)), np.array([[16.0, 16.0]]), n=16), "all-zero"),
    (lambda: ptychopinn_lines_object(32, positions=np.array([[16.0, 16.0]]), n=16, phase="x"), "phase must be"),
])
def test_errors(call: object, message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        call()  # type: ignore[operator]
