"""Tests of ptycho_dist.stitching (pure numpy; truth patches built locally)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptycho_dist import physics
from ptycho_dist.errors import StitchError
from ptycho_dist.stitching import (
    StitchResult,
    crop_bounds,
    even_ceil,
    gather_patches,
    scatter_patches,
    stitch,
)


def _object(rng: np.random.Generator, shape: tuple[int, int] = (48, 56)) -> np.ndarray:
    return (rng.random(shape) + 1j * rng.random(shape)).astype(np.complex64)


def _integer_patches(obj: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Patch k = obj[y - n//2 : y + n - n//2, x - n//2 : ...] for integer (x, y)."""
    return np.stack([obj[int(y) - n // 2:int(y) - n // 2 + n, int(x) - n // 2:int(x) - n // 2 + n]
                     for x, y in positions])


def _grid(lo: int, hi: int, step: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(lo, hi, step), np.arange(lo, hi, step))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def _footprint_count(positions: np.ndarray, m: int, shape: tuple[int, int]) -> np.ndarray:
    """Independent count of crops covering each pixel (integer positions)."""
    count = np.zeros(shape)
    for x, y in positions.astype(int):
        count[y - m // 2:y - m // 2 + m, x - m // 2:x - m // 2 + m] += 1
    return count


@pytest.mark.parametrize("n", [8, 16])
@pytest.mark.parametrize("weights", [None, "uniform", "probe"])
def test_integer_positions_full_crop_reproduce_truth(rng, n, weights):
    obj = _object(rng)
    pos = _grid(n // 2, 40 - n // 2, 3)
    pos[:, 0] += 4  # not symmetric in x and y
    patches = _integer_patches(obj, pos, n)
    w = np.exp(-np.hypot(*np.indices((n, n)) - n // 2) ** 2 / n) if weights == "probe" else weights
    res = stitch(patches, pos, crop=None, shape=obj.shape, weights=w)
    covered = np.isfinite(res.canvas)
    np.testing.assert_array_equal(covered, _footprint_count(pos, n, obj.shape) > 0)
    assert np.max(np.abs(res.canvas[covered] - obj[covered])) < 1e-6
    assert res.canvas.dtype == np.complex64 and res.coverage.dtype == np.float32
    assert res.origin.dtype == np.float64 and res.origin.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("m", [1, 5, 6, 20])
def test_crop_uses_central_pixels_and_counts_coverage(rng, m):
    obj = _object(rng, (64, 64))
    pos = _grid(12, 52, 7)
    patches = _integer_patches(obj, pos, 24)
    res = stitch(patches, pos, crop=m, shape=obj.shape)
    count = _footprint_count(pos, m, obj.shape)
    np.testing.assert_allclose(res.coverage, count)
    covered = count > 0
    assert np.max(np.abs(res.canvas[covered] - obj[covered])) < 1e-6
    assert np.isnan(res.canvas[~covered]).all()  # uncovered is NaN, never 0


@pytest.mark.parametrize("pos", [(10.25, 12.5), (9.75, 11.0), (10.0, 11.999)])
def test_subpixel_placement_is_bilinear(rng, pos):
    m = 6
    patch = (rng.random((1, 8, 8)) + 1j * rng.random((1, 8, 8))).astype(np.complex64)
    res = stitch(patch, np.array([pos]), crop=m, shape=(24, 24))
    # reference: put the crop at the integer corner, then shift by the fraction (order-1 spline)
    corner = np.array(pos) - m // 2
    base = np.floor(corner).astype(int)
    frac = (corner[1] - base[1], corner[0] - base[0])
    block = np.zeros((24, 24), np.complex128)
    ones = np.zeros((24, 24))
    s = 4 - m // 2
    block[base[1]:base[1] + m, base[0]:base[0] + m] = patch[0, s:s + m, s:s + m]
    ones[base[1]:base[1] + m, base[0]:base[0] + m] = 1.0
    ref_num = ndimage.shift(block, frac, order=1)
    ref_den = ndimage.shift(ones, frac, order=1)
    np.testing.assert_allclose(res.coverage, ref_den, atol=1e-6)
    got = np.where(res.coverage > 0, res.canvas * res.coverage, 0)
    np.testing.assert_allclose(got, ref_num, atol=1e-5)


def test_subpixel_scan_matches_dense_reference(rng):
    n, m, shape = 16, 10, (40, 40)
    pos = rng.uniform(8, 31, size=(30, 2))
    patches = (rng.standard_normal((30, n, n)) + 1j * rng.standard_normal((30, n, n)))
    res = stitch(patches, pos, crop=m, shape=shape)
    num = np.zeros(shape, np.complex128)
    den = np.zeros(shape)
    s = n // 2 - m // 2
    for (x, y), p in zip(pos, patches):
        bx, by = int(np.floor(x - m // 2)), int(np.floor(y - m // 2))
        block = np.zeros(shape, np.complex128)
        ones = np.zeros(shape)
        block[by:by + m, bx:bx + m] = p[s:s + m, s:s + m]
        ones[by:by + m, bx:bx + m] = 1
        frac = (y - m // 2 - by, x - m // 2 - bx)
        num += ndimage.shift(block, frac, order=1)
        den += ndimage.shift(ones, frac, order=1)
    covered = res.coverage > 1e-9
    np.testing.assert_allclose(res.coverage, den, atol=1e-5)
    np.testing.assert_allclose(res.canvas[covered], (num / np.where(den > 0, den, 1))[covered],
                               atol=1e-4)


def test_grouped_input_equals_flattened(rng):
    pos = rng.uniform(10, 40, size=(6, 4, 2))
    patches = (rng.standard_normal((6, 4, 16, 16)) + 1j * rng.standard_normal((6, 4, 16, 16)))
    grouped = stitch(patches, pos, crop=8)
    flat = stitch(patches.reshape(24, 16, 16), pos.reshape(24, 2), crop=8)
    np.testing.assert_array_equal(grouped.canvas, flat.canvas)
    np.testing.assert_array_equal(grouped.coverage, flat.coverage)
    np.testing.assert_array_equal(grouped.origin, flat.origin)


def test_bounding_box_canvas_without_shape(rng):
    pos = np.array([[20.0, 30.0], [27.0, 33.0], [24.5, 41.0]])
    patches = rng.standard_normal((3, 16, 16)).astype(np.complex64)
    res = stitch(patches, pos, crop=6)
    # x: 20-3=17 ... 27-3+5=29 (the .5 spills one column: 24.5-3+5+1=27.5 < 29) -> 13 columns
    # y: 30-3=27 ... 41-3+5=43 -> 17 rows
    assert res.origin.tolist() == [17.0, 27.0]
    assert res.shape == (17, 13)
    assert np.isfinite(res.canvas[0, 0]) and np.isfinite(res.canvas[-1, 8])
    same = stitch(patches, pos, crop=6, shape=(60, 60))
    np.testing.assert_array_equal(same.canvas[27:44, 17:30], res.canvas)


@pytest.mark.parametrize("spread, expected_side", [(0.0, 6), (3.0, 6 + 8), (4.5, 6 + 12)])
def test_centered_frame_layout(rng, spread, expected_side):
    mean = np.array([30.0, 25.0])
    pos = mean + np.array([[-spread, 0.0], [spread, 0.0], [0.0, -spread], [0.0, spread]])
    patches = rng.standard_normal((4, 16, 16)).astype(np.complex64)
    res = stitch(patches, pos, crop=6, frame="centered")
    assert res.shape == (expected_side, expected_side)
    assert even_ceil(spread) == (expected_side - 6) // 2
    np.testing.assert_allclose(res.origin, mean - expected_side // 2)
    # integer mean and integer positions: same values as the object frame, shifted by origin
    obj = stitch(patches, pos, crop=6, shape=(60, 60))
    ox, oy = res.origin.astype(int)
    window = (slice(oy, oy + res.shape[0]), slice(ox, ox + res.shape[1]))
    np.testing.assert_array_equal(res.canvas, obj.canvas[window])


def test_centered_frame_fractional_mean_fits_all_patches(rng):
    pos = rng.uniform(0, 50, size=(40, 2)) + 0.37
    res = stitch(rng.standard_normal((40, 16, 16)), pos, crop=10, frame="centered")
    assert res.shape[0] == res.shape[1] == 10 + 2 * even_ceil(np.max(np.abs(pos - pos.mean(0))))
    assert res.coverage.sum() == pytest.approx(40 * 100, rel=1e-6)  # nothing lost at the edges


def test_collapsed_positions_give_one_crop_of_support(rng):
    pos = np.broadcast_to(np.array([30.0, 30.0]), (50, 2))
    res = stitch(rng.standard_normal((50, 64, 64)), pos, crop=20, shape=(64, 64))
    rows = np.flatnonzero(np.isfinite(res.canvas).any(axis=1))
    cols = np.flatnonzero(np.isfinite(res.canvas).any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (20, 39, 20, 39)


def test_positions_just_off_integer_are_snapped(rng):
    # crop fills the canvas exactly; 1e-12 of float noise must not spill out of it
    pos = np.array([[5.0 + 1e-12, 5.0 - 1e-12]])
    res = stitch(rng.standard_normal((1, 10, 10)), pos, crop=10, shape=(10, 10))
    assert np.isfinite(res.canvas).all()
    np.testing.assert_array_equal(res.coverage, np.ones((10, 10)))


def test_chunk_size_does_not_change_result(rng):
    pos = rng.uniform(10, 40, size=(37, 2))
    patches = rng.standard_normal((37, 16, 16)) + 1j * rng.standard_normal((37, 16, 16))
    a = stitch(patches, pos, crop=8, chunk_size=1)
    b = stitch(patches, pos, crop=8, chunk_size=1000)
    np.testing.assert_allclose(a.canvas, b.canvas, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.coverage, b.coverage, rtol=1e-6)


def test_inputs_not_modified_and_outputs_read_only(rng):
    pos = rng.uniform(10, 40, size=(5, 2))
    patches = rng.standard_normal((5, 16, 16)).astype(np.complex64)
    pos0, patches0 = pos.copy(), patches.copy()
    res = stitch(patches, pos, crop=8)
    np.testing.assert_array_equal(pos, pos0)
    np.testing.assert_array_equal(patches, patches0)
    assert isinstance(res, StitchResult) and res.crop == 8 and res.frame == "object"
    with pytest.raises(ValueError):
        res.canvas[0, 0] = 0


def test_real_patches_are_accepted(rng):
    pos = np.array([[8.0, 8.0]])
    res = stitch(np.ones((1, 16, 16), np.float32), pos, crop=4, shape=(16, 16))
    assert np.nanmax(np.abs(res.canvas - 1)) == 0 and res.canvas.dtype == np.complex64


@pytest.mark.parametrize("crop, n, expected", [(None, 64, (0, 64)), (20, 64, (22, 20)),
                                               (5, 8, (2, 5)), (8, 8, (0, 8))])
def test_crop_bounds(crop, n, expected):
    assert crop_bounds(n, crop) == expected


@pytest.mark.parametrize("value, expected", [(0, 0), (0.2, 2), (2, 2), (2.01, 4), (3, 4)])
def test_even_ceil(value, expected):
    assert even_ceil(value) == expected


_P = np.zeros((4, 8, 8), np.complex64)
_X = np.full((4, 2), 10.0)


@pytest.mark.parametrize("patches, positions, kwargs, message", [
    (_P, np.full((3, 2), 10.0), {}, r"positions must have shape \(4, 2\).*got \(3, 2\)"),
    (_P, np.full((4, 3), 10.0), {}, r"positions must have shape \(4, 2\)"),
    (_P.reshape(2, 2, 8, 8), _X, {}, r"positions must have shape \(2, 2, 2\)"),
    (np.zeros((4, 8, 6)), _X, {}, r"patches must be square"),
    (np.zeros((8, 8)), _X, {}, r"patches must be \(n, N, N\) or \(B, C, N, N\)"),
    (np.zeros((0, 8, 8)), np.zeros((0, 2)), {}, r"no patches"),
    (np.zeros((4, 8, 8), int), _X, {}, r"complex or float"),
    (_P, np.array([[1.0, 2.0], [np.nan, 3.0], [4.0, 5.0], [6.0, 7.0]]), {},
     r"finite; 1 of 4 are NaN/inf \(first: index 1"),
    (_P, np.array([[np.inf, 2.0]] * 4), {}, r"4 of 4 are NaN/inf"),
    (_P, _X, {"crop": 0}, r"crop must be in \[1, 8\].*got 0"),
    (_P, _X, {"crop": 9}, r"crop must be in \[1, 8\].*got 9"),
    (_P, _X, {"crop": 2.5}, r"crop must be an int"),
    (_P, _X, {"weights": np.ones((4, 4))}, r"weights must be a real \(8, 8\) array.*\(4, 4\)"),
    (_P, _X, {"weights": -np.ones((8, 8))}, r"finite and >= 0"),
    (_P, _X, {"weights": np.zeros((8, 8))}, r"zero everywhere"),
    (_P, _X, {"weights": "probe"}, r"weights must be None, 'uniform'"),
    (_P, _X, {"frame": "center"}, r"frame must be one of"),
    (_P, _X, {"frame": "centered", "shape": (20, 20)}, r"shape applies to frame='object'"),
    (_P, _X, {"shape": (20, -1)}, r"shape must be \(H, W\)"),
    (np.full((4, 8, 8), np.nan), _X, {}, r"patches must be finite; 4 patch"),
])
def test_bad_inputs_raise_stitch_error(patches, positions, kwargs, message):
    with pytest.raises(StitchError, match=message):
        stitch(patches, positions, **{"crop": 4, **kwargs})


def test_positions_outside_given_shape_raise_with_count_and_worst():
    pos = np.array([[10.0, 10.0], [3.0, 10.0], [10.0, 19.5], [10.0, 10.0]])
    with pytest.raises(StitchError) as err:
        stitch(_P, pos, crop=8, shape=(20, 20))
    msg = str(err.value)
    assert "2 of 4 positions" in msg and "20x20 canvas" in msg
    assert "worst: index 2" in msg and "(x, y) = (10, 19.5)" in msg and "4 px outside" in msg
    assert isinstance(err.value, ValueError)


# --- the placement operator S (scatter_patches) and its adjoint S^H (gather_patches) -------------
# In the style of scico's linop checks (scico.linop.valid_adjoint): for random x and y,
# |<A x, y> - <x, A^H y>| / max(|<A x, y>|, |<x, A^H y>|) must vanish.

_N, _SHAPE = 16, (40, 44)
_ADJ_POS = np.array([[12.0, 12.0], [12.5, 13.25], [20.3, 11.9], [15.0, 22.75], [25.999, 18.0001],
                     [11.0 + 1e-10, 30.0], [31.5, 27.5], [18.25, 18.75]])


def valid_adjoint(forward, adjoint, x: np.ndarray, y: np.ndarray) -> float:
    """Relative mismatch of <A x, y> and <x, A^H y> (inner products conjugate-linear in the first)."""
    ax_y = np.vdot(y, forward(x))
    x_ahy = np.vdot(adjoint(y), x)
    return float(abs(ax_y - x_ahy) / max(abs(ax_y), abs(x_ahy)))


def _complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _probe_weights() -> np.ndarray:
    return np.exp(-np.hypot(*(np.indices((_N, _N)) - _N // 2)) ** 2 / _N)


@pytest.mark.parametrize(("crop", "weights"), [(None, None), (None, "uniform"), (6, None),
                                               (None, "probe"), (9, "probe")])
def test_scatter_and_gather_are_adjoint(rng, crop, weights):
    w = _probe_weights() if weights == "probe" else weights
    opts = {"crop": crop, "weights": w}
    forward = lambda p: scatter_patches(p, _ADJ_POS, shape=_SHAPE, **opts)  # noqa: E731
    adjoint = lambda o: gather_patches(o, _ADJ_POS, patch_size=_N, **opts)  # noqa: E731
    for _ in range(3):
        p, o = _complex(rng, (len(_ADJ_POS), _N, _N)), _complex(rng, _SHAPE)
        assert valid_adjoint(forward, adjoint, p, o) < 1e-12
    assert forward(p).shape == _SHAPE and forward(p).dtype == np.complex128
    assert adjoint(o).shape == (len(_ADJ_POS), _N, _N) and adjoint(o).dtype == np.complex128
    if crop is not None:   # S^H is zero outside the crop, which S never reads
        s, m = crop_bounds(_N, crop)
        outside = np.ones((_N, _N), bool)
        outside[s:s + m, s:s + m] = False
        assert not np.any(adjoint(o)[:, outside])


def test_adjoint_check_fails_for_a_wrong_adjoint(rng):
    """The check can fail: gathering half a pixel off is not the adjoint."""
    p, o = _complex(rng, (len(_ADJ_POS), _N, _N)), _complex(rng, _SHAPE)
    forward = lambda q: scatter_patches(q, _ADJ_POS, shape=_SHAPE)  # noqa: E731
    shifted = lambda c: gather_patches(c, _ADJ_POS + 0.5, patch_size=_N)  # noqa: E731
    assert valid_adjoint(forward, shifted, p, o) > 1e-3


def test_gather_is_bilinear_patch_extraction(rng):
    """Uniform weights, no crop: S^H o is the forward model's bilinear patch extraction."""
    obj = _complex(rng, _SHAPE).astype(np.complex64)
    got = gather_patches(obj, _ADJ_POS, patch_size=_N)
    want = physics.extract_patches(obj, _ADJ_POS, _N, interpolation="bilinear")
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # at integer positions it is an exact copy
    ints = np.array([[12.0, 12.0], [23.0, 17.0]])
    np.testing.assert_array_equal(gather_patches(obj, ints, patch_size=_N),
                                  _integer_patches(obj, ints, _N).astype(np.complex128))


def test_stitch_is_scatter_normalized_by_coverage(rng):
    p = _complex(rng, (len(_ADJ_POS), _N, _N)).astype(np.complex64)
    for crop, w in ((None, None), (6, _probe_weights())):
        res = stitch(p, _ADJ_POS, crop=crop, shape=_SHAPE, weights=w)
        num = scatter_patches(p, _ADJ_POS, shape=_SHAPE, crop=crop, weights=w)
        den = scatter_patches(np.ones_like(p), _ADJ_POS, shape=_SHAPE, crop=crop, weights=w)
        assert np.abs(den.imag).max() == 0
        np.testing.assert_allclose(res.coverage, den.real, rtol=1e-6)
        covered = res.covered
        np.testing.assert_allclose(res.canvas[covered], num[covered] / den.real[covered], rtol=1e-5)
        assert np.all(np.isnan(res.canvas[~covered]))


def test_gather_grouped_shape_and_errors(rng):
    obj = _complex(rng, _SHAPE)
    grouped = gather_patches(obj, _ADJ_POS.reshape(2, 4, 2), patch_size=_N)
    assert grouped.shape == (2, 4, _N, _N)
    np.testing.assert_array_equal(grouped.reshape(-1, _N, _N), gather_patches(obj, _ADJ_POS, patch_size=_N))
    with pytest.raises(StitchError, match=r"outside the 40x44 canvas"):
        gather_patches(obj, np.array([[5.0, 20.0]]), patch_size=_N)
    with pytest.raises(StitchError, match=r"positions must have shape \(n, 2\) or \(B, C, 2\), got \(8, 3\)"):
        gather_patches(obj, np.zeros((8, 3)), patch_size=_N)
    with pytest.raises(StitchError, match="canvas must be finite"):
        gather_patches(np.full(_SHAPE, np.nan), _ADJ_POS, patch_size=_N)
    with pytest.raises(StitchError, match="patch_size must be a positive int, got 0"):
        gather_patches(obj, _ADJ_POS, patch_size=0)
    with pytest.raises(StitchError, match=r"outside the 40x44 canvas"):
        scatter_patches(_complex(rng, (1, _N, _N)), np.array([[40.0, 20.0]]), shape=_SHAPE)


# --- the "legacy" frame: the older fixed padded canvas (faults.legacy_canvas), clipping on purpose ---

def test_legacy_frame_with_the_centered_side_equals_the_centered_frame(rng):
    patches = (rng.normal(size=(30, 32, 32)) + 1j * rng.normal(size=(30, 32, 32))).astype(np.complex64)
    pos = rng.uniform(40, 200, size=(30, 2))
    centered = stitch(patches, pos, crop=16, frame="centered")
    legacy = stitch(patches, pos, crop=16, frame="legacy", side=centered.shape[0])
    assert legacy.frame == "legacy" and legacy.shape == centered.shape
    np.testing.assert_allclose(legacy.origin, centered.origin)
    np.testing.assert_allclose(legacy.coverage, centered.coverage, atol=1e-5)
    np.testing.assert_allclose(np.nan_to_num(legacy.canvas), np.nan_to_num(centered.canvas), atol=1e-5)


def test_legacy_frame_clips_to_a_fixed_side_centred_on_the_mean(rng):
    obj = _object(rng, (160, 160))
    pos = _grid(24, 140, 8)  # 15 x 15 integer positions, mean (80, 80)
    m, side = 16, 42
    res = stitch(_integer_patches(obj, pos, 32), pos, crop=m, frame="legacy", side=side)
    assert res.shape == (side, side)
    np.testing.assert_array_equal(res.origin, [80 - side // 2, 80 - side // 2])
    # what survives is the object under the canvas, exactly (integer placement)
    y0 = x0 = 80 - side // 2
    full = _footprint_count(pos, m, obj.shape)[y0:y0 + side, x0:x0 + side]
    np.testing.assert_array_equal(res.coverage, full)
    covered = res.coverage > 0
    np.testing.assert_allclose(res.canvas[covered], obj[y0:y0 + side, x0:x0 + side][covered], atol=1e-6)
    # the dropped weight: coverage sums to the footprint pixels inside the window only
    assert res.coverage.sum() == pytest.approx(full.sum())
    assert res.coverage.sum() < 0.2 * len(pos) * m * m


def test_legacy_frame_drops_patches_entirely_outside(rng):
    pos = np.array([[100.0, 100.0], [102.0, 100.0], [400.0, 100.0]])  # mean x = 200.67: the canvas holds none
    res = stitch(np.ones((3, 16, 16), np.complex64), pos, crop=8, frame="legacy", side=20)
    assert res.shape == (20, 20) and res.coverage.sum() == 0 and np.isnan(res.canvas).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"frame": "legacy"}, "needs side"),
    ({"frame": "legacy", "side": 0}, "needs side"),
    ({"frame": "legacy", "side": 40, "shape": (64, 64)}, "shape applies to frame='object'"),
    ({"frame": "object", "side": 40}, "side applies to frame='legacy' only"),
    ({"frame": "centered", "side": 40}, "side applies to frame='legacy' only"),
    ({"frame": "bogus", "side": 40}, "frame must be one of"),
])
def test_legacy_frame_bad_arguments(kwargs, message):
    with pytest.raises(StitchError, match=message):
        stitch(np.ones((2, 16, 16)), np.array([[20.0, 20.0], [24.0, 20.0]]), crop=8, **kwargs)


@pytest.mark.parametrize("crop", [None, 5])
def test_uniform_box_coverage_matches_the_general_splat(rng, crop):
    # uniform weights take the difference-array coverage; an all-ones array that is not
    # recognised as uniform (scaled by 2) takes the general splat path: same canvas, coverage x 2
    pos = rng.uniform(8, 40, size=(30, 2))
    pos[:3] = np.round(pos[:3])  # integer positions too (no spill)
    patches = _complex(rng, (30, 12, 12)).astype(np.complex64)
    uni = stitch(patches, pos, crop=crop, shape=(52, 52))
    gen = stitch(patches, pos, crop=crop, shape=(52, 52), weights=np.full((12, 12), 2.0))
    np.testing.assert_array_equal(uni.covered, gen.covered)
    assert not uni.covered.all() and np.all(uni.coverage[~uni.covered] == 0)
    np.testing.assert_allclose(2 * uni.coverage, gen.coverage, rtol=1e-6)
    np.testing.assert_allclose(uni.canvas[uni.covered], gen.canvas[gen.covered], rtol=1e-5, atol=1e-6)
