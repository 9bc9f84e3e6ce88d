"""Neighbour grouping and offsets (PHYSICS.md "Grouping")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ptycho_dist.grouping as grouping
from ptycho_dist.errors import GroupingError
from ptycho_dist.grouping import RELATIVE_SIGN, group_positions, grouping_summary


def _grid(side: int, step: float = 5.0) -> np.ndarray:
    yy, xx = np.meshgrid(np.arange(side) * step, np.arange(side) * step, indexing="ij")
    return np.column_stack([xx.ravel(), yy.ravel()]) + 32.0


def _assert_members_among_k_nearest(positions: np.ndarray, indices: np.ndarray, k: int) -> None:
    """Brute force: each non-seed member is no farther from the seed than its k-th neighbour."""
    dist = np.linalg.norm(positions[:, None] - positions[None], axis=2)
    for row in indices:
        seed = row[0]
        others = np.delete(dist[seed], seed)
        kth = np.sort(others)[k - 1]
        assert seed not in row[1:]
        assert (dist[seed, row[1:]] <= kth + 1e-9).all()


def test_relative_sign_is_plus_one() -> None:
    assert RELATIVE_SIGN == +1


def test_gridsize_one_is_identity(rng: np.random.Generator) -> None:
    pos = rng.uniform(0, 100, size=(30, 2))
    g = group_positions(pos, gridsize=1, rng=0)
    np.testing.assert_array_equal(g.indices, np.arange(30)[:, None])
    np.testing.assert_array_equal(g.centers, pos)
    np.testing.assert_array_equal(g.relative, 0.0)
    assert g.indices.dtype == np.int64 and g.relative.shape == (30, 1, 2)
    assert (g.n_requested, g.n_achieved, g.n_possible) == (30, 30, 30)


def test_gridsize_one_subset(rng: np.random.Generator) -> None:
    pos = rng.uniform(0, 100, size=(30, 2))
    g = group_positions(pos, gridsize=1, n_groups=10, rng=1)
    assert g.indices.shape == (10, 1) and len(np.unique(g.indices)) == 10
    assert (np.diff(g.indices[:, 0]) > 0).all()


@pytest.mark.parametrize(("gridsize", "k"), [(2, 4), (2, 6), (3, 8), (3, 10)])
def test_groups_are_seed_plus_k_nearest_and_distinct(gridsize: int, k: int,
                                                     rng: np.random.Generator) -> None:
    pos = rng.uniform(0, 200, size=(120, 2))
    g = group_positions(pos, gridsize=gridsize, k_neighbors=k, rng=3)
    c, b = gridsize**2, min(120, g.n_possible)  # K = C - 1 leaves one (often shared) set per seed
    assert g.n_possible_exact and g.n_achieved == b
    assert g.indices.shape == (b, c) and g.centers.shape == (b, 2)
    assert g.relative.shape == (b, c, 2) and g.relative.dtype == np.float64
    _assert_members_among_k_nearest(pos, g.indices, k)
    assert len({tuple(sorted(row)) for row in g.indices.tolist()}) == len(g.indices)
    assert all(len(set(row)) == c for row in g.indices.tolist())


def test_offsets_definition(rng: np.random.Generator) -> None:
    pos = rng.uniform(0, 50, size=(40, 2))
    g = group_positions(pos, gridsize=2, rng=2)
    members = pos[g.indices]
    np.testing.assert_allclose(g.centers, members.mean(axis=1))
    # member = center + relative (relative = member - center, RELATIVE_SIGN = +1)
    np.testing.assert_allclose(g.centers[:, None, :] + g.relative, members, atol=1e-12)
    np.testing.assert_allclose(g.relative.sum(axis=1), 0.0, atol=1e-12)


def test_default_gives_about_one_group_per_seed() -> None:
    pos = _grid(20)
    g = group_positions(pos, gridsize=2, rng=0)
    assert (np.bincount(g.indices[:, 0], minlength=len(pos)) == 1).all()


def test_determinism(rng: np.random.Generator) -> None:
    pos = rng.uniform(0, 100, size=(60, 2))
    a = group_positions(pos, gridsize=2, rng=7)
    b = group_positions(pos, gridsize=2, rng=np.random.default_rng(7))
    c = group_positions(pos, gridsize=2, rng=8)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_possible_count_is_exact_on_a_small_case() -> None:
    # 4 positions on a line, gridsize 2 needs all 4: exactly one distinct group
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    g = group_positions(pos, gridsize=2, k_neighbors=3, n_groups=1, rng=0)
    assert g.n_possible == 1 and g.n_possible_exact
    np.testing.assert_array_equal(np.sort(g.indices[0]), [0, 1, 2, 3])
    with pytest.raises(GroupingError, match=r"2 groups requested but only 1 distinct groups are "
                                            r"possible with K = 3 neighbours \(4 candidates"):
        group_positions(pos, gridsize=2, k_neighbors=3, n_groups=2, rng=0)


def test_default_request_is_capped_at_what_is_possible() -> None:
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    g = group_positions(pos, gridsize=2, k_neighbors=3, rng=0)
    assert (g.n_requested, g.n_achieved) == (4, 1)
    summary = grouping_summary(g, pos)
    assert (summary["groups_requested"], summary["groups_achieved"]) == (4, 1)


def test_upper_bound_error() -> None:
    pos = _grid(5)
    bound = 25 * math.comb(6, 3)
    with pytest.raises(GroupingError, match=rf"{bound + 1} groups requested but at most {bound} "
                                            r"distinct groups are possible \(25 seeds x C\(6, 3\)"):
        group_positions(pos, gridsize=2, n_groups=bound + 1, rng=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gridsize": 4}, "gridsize must be 1, 2 or 3, got 4"),
    ({"gridsize": 0}, "gridsize must be 1, 2 or 3, got 0"),
    ({"gridsize": 2, "k_neighbors": 2},
     r"k_neighbors K must be an integer >= C - 1 = 3 \(each group draws 3 neighbours of its "
     r"seed\), got 2"),
    ({"gridsize": 3, "k_neighbors": 6}, r"k_neighbors K must be an integer >= C - 1 = 8"),
    ({"gridsize": 2, "n_groups": 0}, "n_groups must be an integer >= 1, got 0"),
    ({"gridsize": 1, "n_groups": 26}, "gridsize 1 allows at most 25 distinct groups"),
])
def test_argument_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(GroupingError, match=message):
        group_positions(_grid(5), rng=0, **kwargs)  # type: ignore[arg-type]


def test_too_few_positions() -> None:
    with pytest.raises(GroupingError, match=r"gridsize 3 needs at least C = 9 positions per group, "
                                            r"got 8 position\(s\)"):
        group_positions(np.zeros((8, 2)) + np.arange(8)[:, None], gridsize=3, rng=0)


@pytest.mark.parametrize(("positions", "message"), [
    (np.zeros((5, 3)), r"positions must be real \(n, 2\) as \(x, y\), got float64 \(5, 3\)"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), r"got 1 row\(s\) with NaN/inf"),
])
def test_bad_positions(positions: np.ndarray, message: str) -> None:
    with pytest.raises(GroupingError, match=message):
        group_positions(positions, gridsize=1)


def test_duplicate_positions_are_handled() -> None:
    pos = np.repeat(_grid(3), 3, axis=0)  # every position three times
    g = group_positions(pos, gridsize=2, k_neighbors=6, rng=0)
    assert all(row[0] not in row[1:] for row in g.indices.tolist())
    _assert_members_among_k_nearest(pos, g.indices, 6)


def test_rejection_path_when_enumeration_is_too_big(monkeypatch: pytest.MonkeyPatch,
                                                    rng: np.random.Generator) -> None:
    monkeypatch.setattr(grouping, "ENUMERATION_LIMIT", 10)
    pos = rng.uniform(0, 100, size=(50, 2))
    g = group_positions(pos, gridsize=2, k_neighbors=6, n_groups=120, rng=0)
    assert g.indices.shape == (120, 4) and not g.n_possible_exact
    assert g.n_possible == 50 * math.comb(6, 3)
    _assert_members_among_k_nearest(pos, g.indices, 6)
    assert len({tuple(sorted(row)) for row in g.indices.tolist()}) == 120


def test_summary_numbers() -> None:
    pos = _grid(4, step=10.0)
    g = group_positions(pos, gridsize=1)
    s = grouping_summary(g, pos)
    assert s["n_distinct_offsets"] == 16 and s["n_distinct_relative"] == 1
    assert s["offsets_x_min"] == 32.0 and s["offsets_x_max"] == 62.0
    assert s["offsets_y_std"] == pytest.approx(np.std([32, 42, 52, 62]))
    assert s["relative_shape"] == "16x1x2" and s["relative_sign"] == 1
    assert s["max_neighbor_distance"] == 0.0
    g2 = group_positions(pos, gridsize=2, k_neighbors=3, rng=0)
    s2 = grouping_summary(g2, pos)
    assert s2["max_neighbor_distance"] <= np.sqrt(2) * 10.0 * 2 + 1e-9
    assert s2["relative_x_min"] < 0 < s2["relative_x_max"]


def test_summary_shows_a_collapse() -> None:
    pos = np.full((6, 2), 40.0)
    s = grouping_summary(group_positions(pos, gridsize=1), pos)
    assert s["n_distinct_offsets"] == 1


def test_summary_rejects_foreign_indices() -> None:
    pos = _grid(3)
    g = group_positions(pos, gridsize=1)
    with pytest.raises(GroupingError, match=r"group indices must lie in \[0, 4\), got \[0, 8\]"):
        grouping_summary(g, pos[:4])


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(9, 60), gridsize=st.sampled_from([2, 3]),
       extra=st.integers(0, 3))
def test_invariants_hold_for_random_scans(seed: int, n: int, gridsize: int, extra: int) -> None:
    pos = np.random.default_rng(seed).uniform(0, 80, size=(n, 2))
    k = gridsize**2 - 1 + extra
    g = group_positions(pos, gridsize=gridsize, k_neighbors=k, rng=seed)
    assert g.n_achieved == len(g.indices) <= g.n_requested == n
    _assert_members_among_k_nearest(pos, g.indices, min(k, n - 1))
    np.testing.assert_allclose(g.centers[:, None, :] + g.relative, pos[g.indices], atol=1e-9)


# Grid mode: the groups are the clusters of a clustered raster scan, members in layout order.

def _clustered(cluster: int, *, size: int = 392, n: int = 64, step: float = 42.0, inner: float = 4.0,
               jitter: float = 0.0) -> np.ndarray:
    from ptycho_dist.physics.scans import grid_scan
    return grid_scan((size, size), n, step=step, cluster=cluster, inner_offset=inner, jitter=jitter, rng=5)


def test_grid_groups_gridsize_2_channels_at_plus_minus_half_the_inner_offset() -> None:
    pos = _clustered(2)
    g = grouping.grid_groups(pos, gridsize=2)
    assert g.mode == "grid" and g.indices.shape == (64, 4) and g.relative.shape == (64, 4, 2)
    np.testing.assert_array_equal(g.indices, np.arange(256).reshape(64, 4))
    # channel c means the same position in every group: (dy, dx) = (-, -), (-, +), (+, -), (+, +)
    want = np.array([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])  # (x, y)
    np.testing.assert_allclose(g.relative, np.broadcast_to(want, (64, 4, 2)), atol=1e-12)
    # member = centre + relative (RELATIVE_SIGN = +1), and the centres are 42 px apart
    np.testing.assert_allclose(g.centers[:, None] + RELATIVE_SIGN * g.relative, pos[g.indices], atol=1e-12)
    np.testing.assert_allclose(np.diff(np.unique(g.centers[:, 0])), 42.0)
    assert (g.n_requested, g.n_achieved, g.n_possible, g.n_possible_exact, g.k_neighbors) == (64, 64, 64, True, 0)


def test_grid_groups_gridsize_3_layout() -> None:
    g = grouping.grid_groups(_clustered(3, inner=5.0), gridsize=3)
    want = np.array([[dx, dy] for dy in (-5.0, 0.0, 5.0) for dx in (-5.0, 0.0, 5.0)])
    np.testing.assert_allclose(g.relative, np.broadcast_to(want, g.relative.shape), atol=1e-12)
    assert np.ptp(g.relative, axis=0).max() < 1e-12  # relative[:, c] identical across groups


def test_grid_groups_keep_the_layout_under_cluster_jitter() -> None:
    g = grouping.grid_groups(_clustered(2, jitter=3.0), gridsize=2)
    assert np.ptp(g.relative, axis=0).max() < 1e-9
    assert len(np.unique(np.round(np.diff(np.sort(g.centers[:8, 0])), 6))) > 1  # centres did move


def test_grid_groups_gridsize_1_is_one_group_per_position() -> None:
    pos = _clustered(1)
    g = grouping.grid_groups(pos, gridsize=1)
    np.testing.assert_array_equal(g.indices, np.arange(len(pos))[:, None])
    np.testing.assert_array_equal(g.relative, np.zeros((len(pos), 1, 2)))


def test_grid_groups_subset_is_seeded_sorted_and_whole_clusters() -> None:
    pos = _clustered(2)
    a = grouping.grid_groups(pos, gridsize=2, n_groups=10, rng=1)
    b = grouping.grid_groups(pos, gridsize=2, n_groups=10, rng=1)
    c = grouping.grid_groups(pos, gridsize=2, n_groups=10, rng=2)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    assert a.indices.shape == (10, 4) and (np.diff(a.indices[:, 0]) > 0).all()
    assert (a.indices[:, 0] % 4 == 0).all() and (np.diff(a.indices, axis=1) == 1).all()
    assert (a.n_requested, a.n_achieved, a.n_possible) == (10, 10, 64)
    with pytest.raises(GroupingError, match="65 groups requested but the scan has only 64 clusters of 2x2"):
        grouping.grid_groups(pos, gridsize=2, n_groups=65)


def test_grid_groups_refuse_positions_that_are_not_clusters() -> None:
    plain = _clustered(1)  # a plain 8 px raster: 4 consecutive positions are a row segment
    with pytest.raises(GroupingError, match=r"not clusters of a 2x2 layout .* scan.cluster = gridsize = 2"):
        grouping.grid_groups(plain[:64], gridsize=2)
    swapped = _clustered(2)
    swapped[[4, 5]] = swapped[[5, 4]]  # channels 0 and 1 of group 1 exchanged
    with pytest.raises(GroupingError, match=r"group 1, positions 4\.\.7, deviates by 4 px"):
        grouping.grid_groups(swapped, gridsize=2)
    with pytest.raises(GroupingError, match="needs the positions in clusters of C = 4, got 6 position"):
        grouping.grid_groups(_clustered(2)[:6], gridsize=2)
    with pytest.raises(GroupingError, match="gridsize must be 1, 2 or 3"):
        grouping.grid_groups(_clustered(2), gridsize=4)


def test_grid_summary() -> None:
    pos = _clustered(2)
    s = grouping_summary(grouping.grid_groups(pos, gridsize=2), pos)
    assert s["grouping_mode"] == "grid" and s["grouping_gridsize"] == 2 and s["grouping_k_neighbors"] == 0
    assert s["relative_shape"] == "64x4x2" and s["n_distinct_relative"] == 4 and s["n_distinct_offsets"] == 64
    assert (s["relative_x_min"], s["relative_x_max"], s["relative_y_std"]) == pytest.approx((-2.0, 2.0, 2.0))
    assert s["max_neighbor_distance"] == pytest.approx(4 * math.sqrt(2))
    assert s["mean_neighbor_distance"] == pytest.approx((4 + 4 + 4 * math.sqrt(2)) / 3)
    assert grouping_summary(group_positions(pos, gridsize=2, rng=0), pos)["grouping_mode"] == "neighbors"
