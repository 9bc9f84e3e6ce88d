"""Scan generators: positions keep every patch inside the object."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.scans import (
    check_scan_fits,
    fermat_scan,
    grid_scan,
    random_scan,
    scan_box,
)


def _inside(pos: np.ndarray, shape: tuple[int, int], n: int, margin: float = 0.0) -> bool:
    h, w = shape
    lo = n / 2 + margin
    return bool((pos[:, 0] >= lo).all() and (pos[:, 0] <= w - lo).all()
                and (pos[:, 1] >= lo).all() and (pos[:, 1] <= h - lo).all())


def test_bench_grid_has_4096_positions_on_the_edges() -> None:
    pos = grid_scan((392, 392), 64, step=(392 - 64) / 63)
    assert pos.shape == (4096, 2) and pos.dtype == np.float64
    np.testing.assert_allclose(pos.min(axis=0), [32, 32])
    np.testing.assert_allclose(pos.max(axis=0), [360, 360])
    assert _inside(pos, (392, 392), 64)


def test_grid_is_row_major_and_centred() -> None:
    pos = grid_scan((40, 50), 16, step=10.0)  # x in [8, 42]: 4 points; y in [8, 32]: 3 points
    xs, ys = np.unique(pos[:, 0]), np.unique(pos[:, 1])
    np.testing.assert_allclose(xs, [10, 20, 30, 40])  # remainder 4 split 2 / 2
    np.testing.assert_allclose(ys, [10, 20, 30])
    np.testing.assert_allclose(pos[:4], [[10, 10], [20, 10], [30, 10], [40, 10]])


def test_grid_jitter_stays_inside_and_is_seeded() -> None:
    a = grid_scan((64, 64), 16, step=6.0, jitter=3.0, margin=2.0, rng=1)
    b = grid_scan((64, 64), 16, step=6.0, jitter=3.0, margin=2.0, rng=1)
    c = grid_scan((64, 64), 16, step=6.0, jitter=3.0, margin=2.0, rng=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert _inside(a, (64, 64), 16, 2.0)
    base = grid_scan((64, 64), 16, step=6.0, margin=2.0)
    assert 1.5 < np.std(a - base) < 3.5


def test_random_scan_uniform_inside() -> None:
    pos = random_scan((100, 60), 16, n_positions=4000, margin=3.0, rng=0)
    assert pos.shape == (4000, 2)
    assert _inside(pos, (100, 60), 16, 3.0)
    # uniform on x in [11, 49], y in [11, 89]: means at the centres
    np.testing.assert_allclose(pos.mean(axis=0), [30, 50], atol=1.0)


def test_fermat_scan_is_deterministic_dense_and_inside() -> None:
    pos = fermat_scan((128, 128), 32, n_positions=200, step=3.0)
    np.testing.assert_array_equal(pos, fermat_scan((128, 128), 32, n_positions=200, step=3.0))
    assert pos.shape == (200, 2) and _inside(pos, (128, 128), 32)
    np.testing.assert_allclose(pos[0], [64, 64])  # first point at the box centre
    nearest = (np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(200) * 1e9).min(axis=1)
    # one point per pi * step^2: no clumps (>= step) and no holes (<= 2 step); a hexagonal
    # packing of that density would have nearest distance sqrt(2 pi / sqrt 3) step = 1.905 step
    assert nearest.min() >= 3.0 - 1e-9 and nearest.max() <= 6.0
    assert 1.5 * 3.0 < nearest.mean() < 1.905 * 3.0


def test_fermat_scan_too_many_positions() -> None:
    with pytest.raises(PhysicsError, match=r"fits only \d+ positions in the scan box .* 5000 were "
                                           "requested"):
        fermat_scan((64, 64), 32, n_positions=5000, step=2.0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: grid_scan((64, 64), 16, step=0.0), "scan step must be finite and > 0, got 0.0"),
    (lambda: grid_scan((64, 64), 16, step=-2.0), "scan step must be finite and > 0, got -2.0"),
    (lambda: fermat_scan((64, 64), 16, n_positions=4, step=0), "scan step must be finite and > 0"),
    (lambda: grid_scan((64, 64), 16, step=2.0, jitter=-1.0), "jitter must be finite and >= 0"),
    (lambda: random_scan((64, 64), 16, n_positions=0),
     "n_positions must be an integer >= 1, got 0"),
    (lambda: grid_scan((64, 60), 64, step=4.0),
     r"object of shape \(H, W\) = \(64, 60\) is smaller than probe 64 \+ 2 \* margin 0 = 64 "
     "pixels"),
    (lambda: random_scan((70, 70), 64, n_positions=3, margin=4.0),
     r"\(70, 70\) is smaller than probe 64 \+ 2 \* margin 4 = 72 pixels"),
])
def test_scan_errors(call: object, message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        call()  # type: ignore[operator]


def test_jitter_larger_than_an_empty_box_is_an_error() -> None:
    with pytest.raises(PhysicsError, match="jitter 1 px is too large for the scan box"):
        grid_scan((16, 16), 16, step=1.0, jitter=1.0, rng=0)


def test_object_exactly_probe_plus_margin_gives_one_position() -> None:
    pos = grid_scan((20, 20), 16, step=5.0, margin=2.0)
    np.testing.assert_allclose(pos, [[10.0, 10.0]])
    lo, hi = scan_box((20, 20), 16, margin=2.0)
    np.testing.assert_allclose(lo, hi)


def test_check_scan_fits_names_the_first_offender() -> None:
    pos = np.array([[20.0, 20.0], [5.0, 20.0], [20.0, 70.0]])
    with pytest.raises(PhysicsError, match=r"2 of 3 positions .* got position 1 = \(5, 20\)"):
        check_scan_fits(pos, (64, 64), 16)
