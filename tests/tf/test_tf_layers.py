"""Explicit TF layers and losses against independent numpy/scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_pinn as ref

tf = pytest.importorskip("tensorflow")

from ptycho_dist.errors import ModelError  # noqa: E402
from ptycho_dist.models import central_window  # noqa: E402
from ptycho_dist.models.tf.layers import (  # noqa: E402
    bilinear_shift,
    far_field_amplitude,
    overlap_constraint,
    pad_central,
    upsample_nearest,
)
from ptycho_dist.models.tf.losses import mae_amplitude, pinn_loss, poisson_nll  # noqa: E402

pytestmark = pytest.mark.tf


def _roll_zero(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Independent reference: integer translation with zero fill (content moves by +dx, +dy)."""
    out = np.zeros_like(img)
    h, w = img.shape
    src = img[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    out[max(0, dy): max(0, dy) + src.shape[0], max(0, dx): max(0, dx) + src.shape[1]] = src
    return out


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return bilinear_shift(tf.constant(img), tf.constant([dx, dy], tf.float32)).numpy()


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (3, 0), (0, -2), (-5, 4), (7, 7), (-12, 1)])
def test_integer_shift_is_roll_with_zeros(rng: np.random.Generator, dx: int, dy: int) -> None:
    img = rng.standard_normal((12, 10)).astype(np.float32)
    np.testing.assert_array_equal(_shift(img, dx, dy), _roll_zero(img, dx, dy))


def test_half_pixel_shift_averages_neighbours(rng: np.random.Generator) -> None:
    img = rng.standard_normal((8, 8)).astype(np.float32)
    expect_x = 0.5 * (img + _roll_zero(img, 1, 0))          # out[y, x] = (in[y, x-1] + in[y, x]) / 2
    np.testing.assert_allclose(_shift(img, 0.5, 0.0), expect_x, rtol=0, atol=1e-6)
    expect_y = 0.5 * (img + _roll_zero(img, 0, -1))         # out[y, x] = (in[y, x] + in[y+1, x]) / 2
    np.testing.assert_allclose(_shift(img, 0.0, -0.5), expect_y, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("dx", "dy"), [(0.3, -1.7), (-2.25, 0.6), (4.9, 3.1), (-0.01, 0.99)])
def test_fractional_shift_matches_scipy(rng: np.random.Generator, dx: float, dy: float) -> None:
    img = rng.standard_normal((16, 16))
    expected = ref.shift(img, np.array([dx, dy]))
    np.testing.assert_allclose(_shift(img.astype(np.float32), dx, dy), expected, atol=2e-6)


def test_shift_batched_complex_per_item(rng: np.random.Generator) -> None:
    img = (rng.standard_normal((2, 3, 8, 8)) + 1j * rng.standard_normal((2, 3, 8, 8))).astype(np.complex64)
    shifts = rng.uniform(-3, 3, size=(2, 3, 2)).astype(np.float32)
    out = bilinear_shift(tf.constant(img), tf.constant(shifts)).numpy()
    assert out.dtype == np.complex64 and out.shape == img.shape
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[b, c], ref.shift(img[b, c].astype(complex), shifts[b, c]),
                                       atol=5e-6)


def test_pad_central_and_upsample(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    padded = pad_central(tf.constant(x)).numpy()
    assert padded.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(padded, ref.pad_central(x))
    assert np.count_nonzero(padded[..., :2, :]) == 0 and np.count_nonzero(padded[..., :, 6:]) == 0
    channels_last = np.transpose(x, (0, 2, 3, 1))
    up = upsample_nearest(tf.constant(channels_last)).numpy()
    assert up.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(np.transpose(up, (0, 3, 1, 2)), ref.upsample(x))
    np.testing.assert_array_equal(up[0, :, :, 1], np.kron(x[0, 1], np.ones((2, 2))))


def _random_patches(rng: np.random.Generator, b: int, c: int, n: int) -> np.ndarray:
    inner = rng.standard_normal((b, c, n // 2, n // 2)) + 1j * rng.standard_normal((b, c, n // 2, n // 2))
    return ref.pad_central(inner).astype(np.complex64)


def _overlap(patches: np.ndarray, rel: np.ndarray) -> np.ndarray:
    n = patches.shape[-1]
    return overlap_constraint(tf.constant(patches), tf.constant(rel.astype(np.float32)),
                              tf.constant(central_window(n))).numpy()


def test_overlap_equal_offsets_gives_mean(rng: np.random.Generator) -> None:
    patches = _random_patches(rng, 2, 4, 16)
    out = _overlap(patches, np.zeros((2, 4, 2)))
    mean = patches.mean(axis=1)
    for c in range(4):
        np.testing.assert_allclose(out[:, c], mean, atol=1e-6)


def _canvas_reference(patches: np.ndarray, rel: np.ndarray, n: int) -> np.ndarray:
    """Independent reference for integer offsets: a big explicit canvas, average, cut out."""
    m = central_window(n)
    pad = int(np.abs(rel).max()) + 1
    num = np.zeros((n + 2 * pad, n + 2 * pad), complex)
    den = np.zeros(num.shape)
    corners = [(pad + int(r[1]), pad + int(r[0])) for r in rel]
    for (y0, x0), patch in zip(corners, patches, strict=True):
        num[y0: y0 + n, x0: x0 + n] += m * patch
        den[y0: y0 + n, x0: x0 + n] += m
    canvas = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.stack([canvas[y0: y0 + n, x0: x0 + n] for y0, x0 in corners])


@pytest.mark.parametrize("gridsize", [2, 3])
def test_overlap_matches_explicit_canvas(rng: np.random.Generator, gridsize: int) -> None:
    n, c = 16, gridsize**2
    patches = _random_patches(rng, 1, c, n)
    pos = rng.integers(-5, 6, size=(c, 2)).astype(np.float64)
    rel = np.round(pos - pos.mean(axis=0))  # integer offsets: the canvas needs no interpolation
    out = _overlap(patches, rel[None])
    np.testing.assert_allclose(out[0], _canvas_reference(patches[0], rel, n), atol=1e-5)


@pytest.mark.parametrize("gridsize", [2, 3])
def test_overlap_fractional_matches_reference(rng: np.random.Generator, gridsize: int) -> None:
    n, c = 16, gridsize**2
    patches = _random_patches(rng, 2, c, n)
    rel = rng.uniform(-3.5, 3.5, size=(2, c, 2))
    rel -= rel.mean(axis=1, keepdims=True)
    expected = ref.overlap(patches.astype(complex), rel.astype(np.float32).astype(np.float64),
                           central_window(n).astype(np.float64))
    np.testing.assert_allclose(_overlap(patches, rel), expected, atol=1e-5)


def test_overlap_sign_convention() -> None:
    """Member 1 sits 4 px right of member 0 (relative = member - centre, +x to the right)."""
    n = 16
    patches = np.zeros((1, 2, n, n), np.complex64)
    patches[0, 1, 8, 5] = 2.0   # in member 1's window, also inside member 0's window
    patches[0, 1, 8, 11] = 4.0  # in member 1's window only
    out = _overlap(patches, np.array([[[-2.0, 0.0], [2.0, 0.0]]]))[0]
    assert out[0, 8, 9] == pytest.approx(1.0)   # member 0's frame: both windows cover, (2 + 0) / 2
    assert out[0, 8, 15] == pytest.approx(4.0)  # only member 1's window covers
    assert out[0, 8, 1] == 0
    assert out[1, 8, 5] == pytest.approx(1.0)
    assert out[1, 8, 11] == pytest.approx(4.0)
    assert np.count_nonzero(out) == 4


def test_overlap_gradient_reaches_every_member(rng: np.random.Generator) -> None:
    patches = tf.Variable(_random_patches(rng, 1, 4, 16))
    rel = tf.constant(rng.uniform(-2, 2, size=(1, 4, 2)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.abs(overlap_constraint(patches, rel, tf.constant(central_window(16)))))
    grad = tape.gradient(loss, patches).numpy()
    assert np.all(np.isfinite(grad))
    assert all(np.abs(grad[0, c]).sum() > 1.0 for c in range(4))


def test_far_field_parseval_and_reference(rng: np.random.Generator) -> None:
    n, log_scale = 32, 0.7
    obj = (rng.standard_normal((2, 3, n, n)) + 1j * rng.standard_normal((2, 3, n, n))).astype(np.complex64)
    probe = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))).astype(np.complex64)
    amp = far_field_amplitude(tf.constant(obj), tf.constant(probe), tf.constant(log_scale)).numpy()
    assert amp.dtype == np.float32 and amp.shape == obj.shape
    expected = ref.far_field(obj.astype(complex), probe.astype(complex), log_scale)
    np.testing.assert_allclose(amp, expected, rtol=0, atol=2e-6 * expected.max())
    energy = np.sum(amp.astype(np.float64) ** 2, axis=(-2, -1)) / np.exp(2 * log_scale)
    psi = probe.astype(complex) * obj
    np.testing.assert_allclose(energy, np.sum(np.abs(psi) ** 2, axis=(-2, -1)), rtol=1e-5)


def test_far_field_zero_frequency_at_centre() -> None:
    n = 16
    ones = tf.ones((n, n), tf.complex64)
    amp = far_field_amplitude(ones, ones, tf.constant(0.0)).numpy()
    assert amp[n // 2, n // 2] == pytest.approx(n)  # |sum of ones| / N = N**2 / N
    assert np.count_nonzero(amp > 1e-4) == 1


def test_poisson_nll_matches_scipy(rng: np.random.Generator) -> None:
    amp = rng.uniform(0, 5, size=(2, 4, 8, 8)).astype(np.float32)
    counts = rng.poisson(amp.astype(np.float64) ** 2).astype(np.float32)
    value = float(poisson_nll(tf.constant(amp), tf.constant(counts)))
    assert value == pytest.approx(ref.poisson_nll(amp, counts), rel=1e-5)
    assert value > 0
    # exact NLL of a single count: k = 3, lam = 3 -> 3 - 3 log 3 + log 6
    one = float(poisson_nll(tf.constant([[math.sqrt(3.0)]]), tf.constant([[3.0]])))
    assert one == pytest.approx(3 - 3 * math.log(3) + math.log(6), rel=1e-5)


def test_poisson_gradient_has_no_lgamma_term() -> None:
    amp = tf.Variable([[2.0, 0.5]])
    counts = tf.constant([[3.0, 7.0]])
    with tf.GradientTape() as tape:
        loss = poisson_nll(amp, counts)
    grad = tape.gradient(loss, amp).numpy()
    a, k = np.array([2.0, 0.5]), np.array([3.0, 7.0])
    expected = (2 * a - k * 2 * a / (a**2 + 1e-7)) / 2      # d/da of the mean over 2 pixels
    np.testing.assert_allclose(grad[0], expected, rtol=1e-5)


def test_mae_and_dispatch(rng: np.random.Generator) -> None:
    amp = rng.uniform(0, 3, size=(3, 1, 4, 4)).astype(np.float32)
    counts = rng.poisson(4.0, size=amp.shape).astype(np.float32)
    expected = np.mean(np.abs(np.sqrt(counts.astype(np.float64)) - amp))
    assert float(mae_amplitude(tf.constant(amp), tf.constant(counts))) == pytest.approx(expected, rel=1e-6)
    assert float(pinn_loss("mae", tf.constant(amp), tf.constant(counts))) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ModelError, match=r"loss must be one of \['mae', 'poisson'\], got 'l2'"):
        pinn_loss("l2", tf.constant(amp), tf.constant(counts))
