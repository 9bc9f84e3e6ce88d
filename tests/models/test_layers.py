"""Explicit torch layers: bilinear shift, padding, upsampling, overlap constraint, physics layer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")

from ptycho_dist.models import central_window  # noqa: E402
from ptycho_dist.models.torch.layers import (  # noqa: E402
    bilinear_shift,
    far_field_amplitude,
    overlap_constraint,
    pad_central,
    upsample_nearest,
)


def _roll_zero(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Independent reference: integer translation with zero fill (content moves by +dx, +dy)."""
    out = np.zeros_like(img)
    h, w = img.shape
    src = img[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    out[max(0, dy): max(0, dy) + src.shape[0], max(0, dx): max(0, dx) + src.shape[1]] = src
    return out


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    t = torch.from_numpy(img)
    return bilinear_shift(t, torch.tensor([dx, dy], dtype=torch.float32)).numpy()


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (3, 0), (0, -2), (-5, 4), (7, 7), (-12, 1)])
def test_integer_shift_is_roll_with_zeros(rng: np.random.Generator, dx: int, dy: int) -> None:
    img = rng.standard_normal((12, 10)).astype(np.float32)
    np.testing.assert_array_equal(_shift(img, dx, dy), _roll_zero(img, dx, dy))


def test_half_pixel_shift_averages_neighbours(rng: np.random.Generator) -> None:
    img = rng.standard_normal((8, 8)).astype(np.float32)
    out_x = _shift(img, 0.5, 0.0)
    expect_x = 0.5 * (img + _roll_zero(img, 1, 0))          # out[y, x] = (in[y, x-1] + in[y, x]) / 2
    np.testing.assert_allclose(out_x, expect_x, rtol=0, atol=1e-6)
    out_y = _shift(img, 0.0, -0.5)
    expect_y = 0.5 * (img + _roll_zero(img, 0, -1))         # out[y, x] = (in[y, x] + in[y+1, x]) / 2
    np.testing.assert_allclose(out_y, expect_y, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("dx", "dy"), [(0.3, -1.7), (-2.25, 0.6), (4.9, 3.1), (-0.01, 0.99)])
def test_fractional_shift_matches_scipy(rng: np.random.Generator, dx: float, dy: float) -> None:
    img = rng.standard_normal((16, 16)).astype(np.float64)
    ref = ndimage.shift(img, (dy, dx), order=1, mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(_shift(img.astype(np.float32), dx, dy), ref, atol=2e-5)


def test_shift_batched_complex_per_item(rng: np.random.Generator) -> None:
    img = (rng.standard_normal((2, 3, 8, 8)) + 1j * rng.standard_normal((2, 3, 8, 8))).astype(np.complex64)
    shifts = rng.integers(-3, 4, size=(2, 3, 2)).astype(np.float32)
    out = bilinear_shift(torch.from_numpy(img), torch.from_numpy(shifts)).numpy()
    assert out.dtype == np.complex64 and out.shape == img.shape
    for b in range(2):
        for c in range(3):
            dx, dy = (int(v) for v in shifts[b, c])
            np.testing.assert_array_equal(out[b, c], _roll_zero(img[b, c], dx, dy))


def test_shift_does_not_modify_input(rng: np.random.Generator) -> None:
    img = torch.from_numpy(rng.standard_normal((4, 4)).astype(np.float32))
    before = img.clone()
    bilinear_shift(img, torch.tensor([1.5, -0.5]))
    assert torch.equal(img, before)


def test_pad_central_and_upsample() -> None:
    x = torch.arange(4.0).reshape(1, 2, 2)
    padded = pad_central(x)
    assert padded.shape == (1, 4, 4)
    np.testing.assert_array_equal(padded[0].numpy(), np.pad(x[0].numpy(), 1))
    up = upsample_nearest(x)
    np.testing.assert_array_equal(up[0].numpy(), np.kron(x[0].numpy(), np.ones((2, 2))))


def _random_patches(rng: np.random.Generator, b: int, c: int, n: int) -> np.ndarray:
    inner = rng.standard_normal((b, c, n // 2, n // 2)) + 1j * rng.standard_normal((b, c, n // 2, n // 2))
    q = n // 4
    return np.pad(inner, ((0, 0), (0, 0), (q, q), (q, q))).astype(np.complex64)


def test_overlap_equal_offsets_gives_mean(rng: np.random.Generator) -> None:
    n = 16
    patches = _random_patches(rng, 2, 4, n)
    rel = np.zeros((2, 4, 2), np.float32)
    out = overlap_constraint(torch.from_numpy(patches), torch.from_numpy(rel),
                             torch.from_numpy(central_window(n))).numpy()
    mean = patches.mean(axis=1, keepdims=True)
    for c in range(4):
        np.testing.assert_allclose(out[:, c], mean[:, 0], atol=1e-6)


def _canvas_reference(patches: np.ndarray, rel: np.ndarray, n: int) -> np.ndarray:
    """Independent reference for integer offsets: a big explicit canvas, average, cut out."""
    c = patches.shape[0]
    m = central_window(n)
    pad = int(np.abs(rel).max()) + 1
    size = n + 2 * pad
    num = np.zeros((size, size), complex)
    den = np.zeros((size, size))
    for j in range(c):
        x0, y0 = pad + int(rel[j, 0]), pad + int(rel[j, 1])
        num[y0: y0 + n, x0: x0 + n] += m * patches[j]
        den[y0: y0 + n, x0: x0 + n] += m
    canvas = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    out = []
    for i in range(c):
        x0, y0 = pad + int(rel[i, 0]), pad + int(rel[i, 1])
        out.append(canvas[y0: y0 + n, x0: x0 + n])
    return np.stack(out)


@pytest.mark.parametrize("gridsize", [2, 3])
def test_overlap_matches_explicit_canvas(rng: np.random.Generator, gridsize: int) -> None:
    n, c = 16, gridsize**2
    patches = _random_patches(rng, 1, c, n)
    pos = rng.integers(-5, 6, size=(c, 2)).astype(np.float64)
    rel = pos - pos.mean(axis=0)
    rel = np.round(rel)  # integer offsets: the canvas reference needs no interpolation
    out = overlap_constraint(torch.from_numpy(patches), torch.from_numpy(rel[None].astype(np.float32)),
                             torch.from_numpy(central_window(n))).numpy()
    np.testing.assert_allclose(out[0], _canvas_reference(patches[0], rel, n), atol=1e-5)


def test_overlap_sign_convention() -> None:
    """Member 1 sits 4 px right of member 0 (relative = member - centre, +x to the right)."""
    n = 16
    patches = np.zeros((1, 2, n, n), np.complex64)
    patches[0, 1, 8, 5] = 2.0   # in member 1's window, also inside member 0's window
    patches[0, 1, 8, 11] = 4.0  # in member 1's window only
    rel = np.array([[[-2.0, 0.0], [2.0, 0.0]]], np.float32)
    out = overlap_constraint(torch.from_numpy(patches), torch.from_numpy(rel),
                             torch.from_numpy(central_window(n))).numpy()[0]
    # member 0's frame: member 1's content appears 4 px to the right
    assert out[0, 8, 9] == pytest.approx(1.0)   # both windows cover: (2 + 0) / 2
    assert out[0, 8, 15] == pytest.approx(4.0)  # only member 1's window covers
    assert out[0, 8, 1] == 0                    # member 0's own content there is 0
    # member 1's frame: same averages at its own pixels
    assert out[1, 8, 5] == pytest.approx(1.0)
    assert out[1, 8, 11] == pytest.approx(4.0)
    assert np.count_nonzero(out) == 4


def test_far_field_parseval_and_reference(rng: np.random.Generator) -> None:
    n = 32
    obj = (rng.standard_normal((2, 3, n, n)) + 1j * rng.standard_normal((2, 3, n, n))).astype(np.complex64)
    probe = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))).astype(np.complex64)
    log_scale = 0.7
    amp = far_field_amplitude(torch.from_numpy(obj), torch.from_numpy(probe),
                              torch.tensor(log_scale)).numpy()
    psi = probe * obj.astype(np.complex128)
    ref = np.abs(np.fft.fftshift(np.fft.fft2(psi), axes=(-2, -1))) / n * np.exp(log_scale)
    np.testing.assert_allclose(amp, ref, rtol=1e-4, atol=1e-4)
    energy = np.sum(amp.astype(np.float64) ** 2, axis=(-2, -1)) / np.exp(2 * log_scale)
    np.testing.assert_allclose(energy, np.sum(np.abs(psi) ** 2, axis=(-2, -1)), rtol=1e-5)


def test_far_field_zero_frequency_at_centre() -> None:
    n = 16
    obj = torch.ones((n, n), dtype=torch.complex64)
    amp = far_field_amplitude(obj, torch.ones((n, n), dtype=torch.complex64), torch.tensor(0.0)).numpy()
    assert amp[n // 2, n // 2] == pytest.approx(n)  # |sum of ones| / N = N**2 / N
    assert np.count_nonzero(amp > 1e-4) == 1
