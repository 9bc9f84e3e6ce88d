"""Forward model: coordinate convention, interpolation, far field (PHYSICS.md "Forward model")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.forward import (
    centered_fft_factor,
    exit_waves,
    extract_patches,
    far_field_amplitude,
    far_field_intensity,
)

HSETTINGS = settings(max_examples=25, deadline=None, database=None)


def _delta(shape: tuple[int, int], x: int, y: int) -> np.ndarray:
    obj = np.zeros(shape, dtype=np.complex64)
    obj[y, x] = 1.0
    return obj


@pytest.mark.parametrize("interpolation", ["bilinear", "fourier"])
@pytest.mark.parametrize(("x", "y", "xk", "yk"), [(20, 30, 24, 28), (8, 8, 8, 8), (27, 17, 20, 20)])
def test_delta_appears_where_stated_integer(interpolation: str, x: int, y: int, xk: int,
                                            yk: int) -> None:
    n = 16
    patch = extract_patches(_delta((48, 40), x, y), np.array([[xk, yk]], float), n,
                            interpolation=interpolation)[0]
    row, col = y - yk + n // 2, x - xk + n // 2
    assert np.unravel_index(np.argmax(np.abs(patch)), patch.shape) == (row, col)
    assert patch[row, col] == pytest.approx(1.0, abs=1e-6)
    assert np.abs(patch).sum() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("dx", "dy"), [(0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
def test_delta_half_pixel_bilinear_splits_evenly(dx: float, dy: float) -> None:
    n, x, y = 16, 20, 22
    xk, yk = 19 + dx, 21 + dy
    patch = extract_patches(_delta((40, 40), x, y), np.array([[xk, yk]]), n)[0]
    # object pixel (y, x) sits at fractional patch coordinate (y - yk + N/2, x - xk + N/2)
    r, c = y - yk + n / 2, x - xk + n / 2
    expect = np.zeros((n, n), np.float32)
    r0, c0 = int(np.floor(r)), int(np.floor(c))
    for rr, wr in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
        for cc, wc in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
            expect[rr, cc] += wr * wc
    np.testing.assert_allclose(patch.real, expect, atol=1e-7)
    assert np.count_nonzero(patch) == (2 if dx * dy == 0 else 4)


def test_delta_half_pixel_fourier_peaks_symmetrically() -> None:
    n, x, y = 16, 20, 20
    patch = extract_patches(_delta((48, 48), x, y), np.array([[19.5, 20.0]]), n,
                            interpolation="fourier")[0]
    row, col = y - 20 + n // 2, x - 19.5 + n / 2  # col 8.5: between patch columns 8 and 9
    assert row == 8 and col == 8.5
    top2 = np.sort(np.argsort(np.abs(patch[row]))[-2:])
    np.testing.assert_array_equal(top2, [8, 9])
    # equal up to the mirror images of the extension (far away, small)
    assert patch[row, 8].real == pytest.approx(patch[row, 9].real, rel=2e-2)
    assert patch[row, 8].real == pytest.approx(2 / np.pi, abs=0.05)  # sinc(1/2) = 2/pi
    assert np.abs(patch.imag).max() < 1e-6  # a real object stays real


def test_bilinear_matches_scipy_map_coordinates(rng: np.random.Generator) -> None:
    obj = (rng.standard_normal((50, 60)) + 1j * rng.standard_normal((50, 60))).astype(np.complex64)
    n = 16
    pos = rng.uniform([8, 8], [60 - 8, 50 - 8], size=(12, 2))
    got = extract_patches(obj, pos, n)
    grid = np.arange(n) - n / 2
    for k, (xk, yk) in enumerate(pos):
        rows, cols = np.meshgrid(yk + grid, xk + grid, indexing="ij")
        ref = (ndimage.map_coordinates(obj.real.astype(float), [rows, cols], order=1)
               + 1j * ndimage.map_coordinates(obj.imag.astype(float), [rows, cols], order=1))
        np.testing.assert_allclose(got[k], ref, atol=2e-6)


@pytest.mark.parametrize(("cycles", "fourier_tol", "bilinear_min"), [
    ((3, 2), 2e-3, 5e-3), ((10, 7), 5e-3, 5e-2)])
def test_fourier_beats_bilinear_on_a_plane_wave(cycles: tuple[int, int], fourier_tol: float,
                                                bilinear_min: float) -> None:
    h = w = 96
    n = 16
    yy, xx = np.mgrid[0:h, 0:w]
    kx, ky = 2 * np.pi * cycles[0] * np.sqrt(2) / w, 2 * np.pi * cycles[1] * np.sqrt(3) / h
    obj = np.exp(1j * (kx * xx + ky * yy)).astype(np.complex64)
    pos = np.array([[40.3, 45.7], [30.5, 50.5]])
    fourier = extract_patches(obj, pos, n, interpolation="fourier")
    bilinear = extract_patches(obj, pos, n)
    grid = np.arange(n) - n / 2
    for k, (xk, yk) in enumerate(pos):
        truth = np.exp(1j * (kx * (xk + grid)[None, :] + ky * (yk + grid)[:, None]))
        assert np.abs(fourier[k] - truth).max() < fourier_tol
        assert np.abs(bilinear[k] - truth).max() > bilinear_min


def test_fourier_equals_bilinear_at_integer_positions(rng: np.random.Generator) -> None:
    obj = (rng.random((40, 40)) + 1j * rng.random((40, 40))).astype(np.complex64)
    pos = np.array([[8.0, 8.0], [32.0, 32.0], [17.0, 23.0]])
    np.testing.assert_allclose(extract_patches(obj, pos, 16, interpolation="fourier"),
                               extract_patches(obj, pos, 16), atol=2e-6)


@HSETTINGS
@given(x=st.integers(8, 40), y=st.integers(8, 24), xk=st.integers(8, 40), yk=st.integers(8, 24))
def test_convention_holds_for_any_integer_position(x: int, y: int, xk: int, yk: int) -> None:
    n = 16
    obj = np.arange(32 * 48, dtype=np.float32).reshape(32, 48).astype(np.complex64)
    patch = extract_patches(obj, np.array([[xk, yk]], float), n)[0]
    row, col = y - yk + n // 2, x - xk + n // 2
    if 0 <= row < n and 0 <= col < n:
        assert patch[row, col] == obj[y, x]
    np.testing.assert_array_equal(patch, obj[yk - n // 2:yk + n // 2, xk - n // 2:xk + n // 2])


def test_extract_does_not_modify_inputs(rng: np.random.Generator) -> None:
    obj = rng.random((40, 40)).astype(np.complex64)
    pos = np.array([[12.3, 20.7]])
    obj0, pos0 = obj.copy(), pos.copy()
    extract_patches(obj, pos, 16)
    np.testing.assert_array_equal(obj, obj0)
    np.testing.assert_array_equal(pos, pos0)


def test_patch_on_the_far_edge_is_allowed() -> None:
    obj = np.ones((40, 48), np.complex64)
    patch = extract_patches(obj, np.array([[48 - 8.0, 40 - 8.0]]), 16)
    assert patch.shape == (1, 16, 16) and patch.dtype == np.complex64
    np.testing.assert_array_equal(patch, 1.0)


@pytest.mark.parametrize(("pos", "fragment"), [
    ([[7.99, 20.0]], "allowed x in [8, 40]"),
    ([[20.0, 32.01]], "y in [8, 32]"),
])
def test_out_of_bounds_is_an_error(pos: list[list[float]], fragment: str) -> None:
    with pytest.raises(PhysicsError, match=r"1 of 1 positions") as info:
        extract_patches(np.ones((40, 48), np.complex64), np.array(pos), 16)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"interpolation": "cubic"}, "interpolation must be one of"),
    ({"n": 15}, "even integer"),
])
def test_bad_extraction_arguments(kwargs: dict[str, object], message: str) -> None:
    args = {"n": 16, **kwargs}
    n = args.pop("n")
    with pytest.raises(PhysicsError, match=message):
        extract_patches(np.ones((40, 40)), np.array([[20.0, 20.0]]), n,  # type: ignore[arg-type]
                        **args)  # type: ignore[arg-type]


def test_nan_object_is_an_error() -> None:
    obj = np.ones((40, 40))
    obj[3, 4] = np.nan
    with pytest.raises(PhysicsError, match="got 1 NaN/inf"):
        extract_patches(obj, np.array([[20.0, 20.0]]), 16)


@HSETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([4, 8, 16, 64]), k=st.integers(1, 5))
def test_parseval(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    psi = (rng.standard_normal((k, n, n))
           + 1j * rng.standard_normal((k, n, n))).astype(np.complex64)
    amp = far_field_amplitude(psi)
    assert amp.dtype == np.float32 and amp.shape == (k, n, n)
    lhs = (amp.astype(np.float64) ** 2).sum(axis=(1, 2))
    rhs = (np.abs(psi.astype(np.complex128)) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


@pytest.mark.parametrize("n", [8, 16, 64])
def test_flat_exit_wave_puts_all_energy_at_n_half(n: int) -> None:
    amp = far_field_amplitude(np.full((n, n), 2.0 + 0j, np.complex64))
    assert np.unravel_index(np.argmax(amp), amp.shape) == (n // 2, n // 2)
    assert amp[n // 2, n // 2] == pytest.approx(2.0 * n, rel=1e-6)  # |sum psi| / N
    rest = amp.copy()
    rest[n // 2, n // 2] = 0
    assert rest.max() < 1e-4


def test_far_field_matches_numpy_reference(rng: np.random.Generator) -> None:
    psi = (rng.standard_normal((3, 32, 32))
           + 1j * rng.standard_normal((3, 32, 32))).astype(np.complex64)
    ref = np.abs(np.fft.fftshift(np.fft.fft2(psi.astype(np.complex128)), axes=(-2, -1))) / 32
    np.testing.assert_allclose(far_field_amplitude(psi), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(far_field_intensity(psi), ref**2, rtol=2e-4, atol=1e-5)


def test_centered_fft_factor_replaces_fftshift_and_norm(rng: np.random.Generator) -> None:
    psi = rng.standard_normal((2, 16, 16)) + 1j * rng.standard_normal((2, 16, 16))
    fast = np.abs(np.fft.fft2(psi * centered_fft_factor(16)))
    np.testing.assert_allclose(fast, far_field_amplitude(psi), rtol=1e-5, atol=1e-6)
    with pytest.raises(PhysicsError, match="even N, got 15"):
        centered_fft_factor(15)


def test_exit_waves_is_the_product_and_checks_shapes(rng: np.random.Generator) -> None:
    probe = (rng.random((8, 8)) + 1j).astype(np.complex64)
    patches = rng.random((3, 8, 8)).astype(np.complex64)
    psi = exit_waves(probe, patches)
    assert psi.dtype == np.complex64 and psi.shape == (3, 8, 8)
    np.testing.assert_allclose(psi, probe[None] * patches, rtol=1e-6)
    with pytest.raises(PhysicsError, match=r"probe shape \(8, 8\), got \(3, 4, 4\)"):
        exit_waves(probe, np.ones((3, 4, 4)))


def test_far_field_rejects_non_square() -> None:
    with pytest.raises(PhysicsError, match=r"\(\.\.\., N, N\), got shape \(2, 4, 8\)"):
        far_field_amplitude(np.ones((2, 4, 8), np.complex64))
