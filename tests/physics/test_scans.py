"""Scan generators: positions keep every patch inside the object."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.scans import (
    check_scan_fits,
    cluster_layout,
    fermat_scan,
    grid_scan,
    grid_shape,
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


# Clustered grids (PtychoPINN's grid simulation): g x g positions inner_offset apart per grid point.

def test_cluster_layout_gridsize_2_is_row_major_at_half_the_inner_offset() -> None:
    # channel order (dy, dx) = (-, -), (-, +), (+, -), (+, +), written as (dx, dy)
    np.testing.assert_array_equal(cluster_layout(2), [[-2, -2], [2, -2], [-2, 2], [2, 2]])
    np.testing.assert_array_equal(cluster_layout(2, 6.0), [[-3, -3], [3, -3], [-3, 3], [3, 3]])


def test_cluster_layout_gridsize_3_and_1() -> None:
    d = 4.0
    want = [[dx, dy] for dy in (-d, 0, d) for dx in (-d, 0, d)]
    np.testing.assert_array_equal(cluster_layout(3, d), want)
    np.testing.assert_array_equal(cluster_layout(1, d), [[0, 0]])
    assert cluster_layout(3).dtype == np.float64


def _expected_side(size: int, n: int, step: float, cluster: int, inner: float, margin: float) -> int:
    """Outer grid points per axis, from the scan-box formula written out independently."""
    return int(np.floor((size - n - 2 * margin - (cluster - 1) * inner) / step + 1e-9)) + 1


@pytest.mark.parametrize(("size", "n", "step", "cluster", "inner", "margin", "side"), [
    (392, 64, 42.0, 2, 4.0, 0.0, 8),     # the grid-lines layout: 8 x 8 groups
    (392, 64, 21.0, 2, 4.0, 0.0, 16),
    (392, 64, 42.0, 3, 4.0, 0.0, 8),
    (100, 32, 10.0, 3, 4.0, 2.0, 6),     # span 64 - 8 = 56 -> 6 points
    (72, 64, 5.0, 3, 4.0, 0.0, 1),       # the box holds exactly one 3 x 3 cluster
])
def test_clustered_grid_counts(size: int, n: int, step: float, cluster: int, inner: float,
                               margin: float, side: int) -> None:
    assert _expected_side(size, n, step, cluster, inner, margin) == side
    assert grid_shape((size, size), n, step=step, cluster=cluster, inner_offset=inner,
                      margin=margin) == (side, side)
    pos = grid_scan((size, size), n, step=step, cluster=cluster, inner_offset=inner, margin=margin)
    assert pos.shape == (side * side * cluster**2, 2) and pos.dtype == np.float64
    assert _inside(pos, (size, size), n, margin)


def test_clustered_grid_rectangular_object_counts_rows_from_height() -> None:
    assert grid_shape((200, 300), 64, step=20.0, cluster=2) == (_expected_side(200, 64, 20.0, 2, 4.0, 0),
                                                                _expected_side(300, 64, 20.0, 2, 4.0, 0))
    assert grid_shape((200, 300), 64, step=20.0, cluster=2) == (7, 12)


def test_clustered_grid_members_sit_at_the_layout_around_the_outer_grid() -> None:
    pos = grid_scan((392, 392), 64, step=42.0, cluster=2)
    members = pos.reshape(64, 4, 2)
    centres = members.mean(axis=1)
    np.testing.assert_allclose(members - centres[:, None], np.broadcast_to(cluster_layout(2), (64, 4, 2)),
                               atol=1e-12)
    # the centres form the 8 x 8 raster, row-major (y outer), 42 px apart, centred in the box
    xs, ys = np.unique(centres[:, 0]), np.unique(centres[:, 1])
    assert len(xs) == len(ys) == 8
    np.testing.assert_allclose(np.diff(xs), 42.0)
    np.testing.assert_allclose((xs[0] + xs[-1]) / 2, 196.0)
    np.testing.assert_array_equal(centres[:8, 1], ys[0])
    np.testing.assert_array_equal(centres[:8, 0], xs)
    # the extreme members: 32 + 2 + (324 - 7 * 42) / 2 - 2 = 47
    np.testing.assert_allclose(pos.min(axis=0), [47, 47])


def test_cluster_one_is_the_plain_grid() -> None:
    a = grid_scan((100, 120), 32, step=7.5, jitter=1.0, margin=1.0, rng=3)
    b = grid_scan((100, 120), 32, step=7.5, jitter=1.0, margin=1.0, rng=3, cluster=1, inner_offset=9.0)
    np.testing.assert_array_equal(a, b)


def test_jitter_moves_whole_clusters_and_stays_inside() -> None:
    pos = grid_scan((128, 128), 32, step=10.0, cluster=3, inner_offset=4.0, jitter=5.0, rng=0)
    members = pos.reshape(-1, 9, 2)
    np.testing.assert_allclose(members - members.mean(axis=1, keepdims=True),
                               np.broadcast_to(cluster_layout(3), members.shape), atol=1e-9)
    assert _inside(pos, (128, 128), 32)
    plain = grid_scan((128, 128), 32, step=10.0, cluster=3, inner_offset=4.0)
    assert 3.0 < np.std(pos - plain) < 7.0


def test_cluster_that_does_not_fit_the_box_is_an_error_not_a_clip() -> None:
    with pytest.raises(PhysicsError, match=r"narrower than one 3x3 cluster \(8 px across at inner_offset 4\)"):
        grid_scan((70, 70), 64, step=5.0, cluster=3)
    with pytest.raises(PhysicsError, match="narrower than one 2x2 cluster"):
        grid_shape((72, 72), 64, step=5.0, cluster=2, inner_offset=4.0, margin=3.0)  # box 2 px wide


@pytest.mark.parametrize("bad", [0, 4, True])
def test_cluster_must_be_1_2_or_3(bad: int) -> None:
    with pytest.raises(PhysicsError, match="cluster must be 1, 2 or 3"):
        grid_scan((128, 128), 32, step=8.0, cluster=bad)
    with pytest.raises(PhysicsError, match="cluster must be 1, 2 or 3"):
        cluster_layout(bad)


def test_inner_offset_must_be_positive() -> None:
    with pytest.raises(PhysicsError, match="inner_offset must be finite and > 0, got 0.0"):
        cluster_layout(2, 0.0)
