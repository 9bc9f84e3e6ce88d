"""Groups of scan positions and their offsets (PHYSICS.md "Grouping").

Two modes make the same :class:`Groups`: *neighbour* groups (:func:`group_positions`, the default
``grouping.mode = "neighbors"``) and *grid* groups (:func:`grid_groups`, ``grouping.mode =
"grid"``), the clusters of a clustered raster scan
(:func:`ptycho_dist.physics.scans.grid_scan` with ``cluster = gridsize``) as PtychoPINN's grid
simulation lays them out: a fixed gridsize x gridsize layout, ``inner_offset`` pixels apart, whose
channel ``c`` always sits at layout row ``iy, ix = divmod(c, gridsize)`` (row-major, y outer), so
``relative[:, c]`` is the same for every group (+/- inner_offset / 2 in x and y for gridsize 2).

Neighbour groups. A group holds ``C = gridsize**2`` positions. ``gridsize = 1``: every position is
its own group.
``gridsize > 1``: a group is a *seed* position plus ``C - 1`` positions drawn among the seed's
``K`` nearest neighbours (``scipy.spatial.cKDTree``); column 0 of ``indices`` is the seed and the
other members follow in increasing distance from it. Groups are distinct as *sets* of positions.

Offsets: ``centers = mean member position`` (B, 2) and

    relative = RELATIVE_SIGN * (member - center),   RELATIVE_SIGN = +1,

i.e. ``member = center + relative``. The older PtychoPINN code used the opposite sign
(``center - member``); a sign flip between two code paths is one of the bugs this project's
diagnostics exist to catch, so the sign is named here once and imported everywhere else.

How groups are drawn. The candidate groups are all ``(seed, subset)`` pairs, ``n * C(K, C - 1)`` of
them (``K`` capped at ``n - 1``). When there are at most ``ENUMERATION_LIMIT`` candidates they are
enumerated, duplicates (the same set reached from several seeds) are removed, which gives the exact
number of distinct groups, and ``n_groups`` of them are drawn at random, round-robin over seeds so
that every seed contributes about equally (the default ``n_groups = n`` then gives about one group
per seed). Above the limit, groups are drawn by rejection (random seeds round-robin, random subsets,
duplicates redrawn) and the number of distinct groups is bounded by ``n * C(K, C - 1)``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ptycho_dist.errors import GroupingError

__all__ = ["RELATIVE_SIGN", "GRIDSIZES", "MODES", "ENUMERATION_LIMIT", "Groups", "group_positions",
           "grid_groups", "relative_offsets", "grouping_summary"]

#: relative = RELATIVE_SIGN * (member - center); the older code used -1
RELATIVE_SIGN = +1
#: supported group sides
GRIDSIZES = (1, 2, 3)
#: grouping modes: neighbour groups (:func:`group_positions`) and grid clusters (:func:`grid_groups`)
MODES = ("neighbors", "grid")
#: largest deviation (pixels) of a grid group's member from the fixed layout that is rounding error
_LAYOUT_TOLERANCE = 1e-6
#: candidate (seed, subset) pairs enumerated exactly; above it, groups are drawn by rejection
ENUMERATION_LIMIT = 500_000
_REJECTION_ROUNDS = 50


@dataclass(frozen=True)
class Groups:
    """Groups of scan positions.

    Attributes
    ----------
    indices : ndarray, int64, shape (B, C)
        Member position indices; column 0 is the seed (grid mode: the layout's first member).
    centers : ndarray, float64, shape (B, 2)
        Mean member position (x, y).
    relative : ndarray, float64, shape (B, C, 2)
        ``RELATIVE_SIGN * (member - center)``.
    gridsize : int
        Group side; ``C = gridsize**2``.
    k_neighbors : int
        Neighbours considered per seed (requested K capped at n - 1; 0 for gridsize 1).
    n_requested, n_achieved : int
        Groups asked for and made. They differ only when ``n_groups`` was left at its default
        (one per position) and fewer distinct groups exist; an explicit request that cannot be met
        raises instead.
    n_possible : int
        Distinct groups possible: exact if ``n_possible_exact`` else an upper bound.
    n_possible_exact : bool
    mode : str
        ``"neighbors"`` or ``"grid"`` (:data:`MODES`).
    """

    indices: np.ndarray
    centers: np.ndarray
    relative: np.ndarray
    gridsize: int
    k_neighbors: int
    n_requested: int
    n_achieved: int
    n_possible: int
    n_possible_exact: bool
    mode: str = "neighbors"


def _check_positions(positions: object) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.dtype.kind not in "iuf":
        raise GroupingError(f"positions must be real (n, 2) as (x, y), got {pos.dtype} {pos.shape}")
    if not np.isfinite(pos).all():
        bad = int((~np.isfinite(pos)).any(axis=1).sum())
        raise GroupingError(f"positions must be finite, got {bad} row(s) with NaN/inf")
    return pos.astype(np.float64, copy=False)


def _check_count(value: int | None, default: int, *, name: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise GroupingError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def relative_offsets(positions: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group centres (B, 2) and relative coordinates (B, C, 2), float64, for member ``indices``."""
    members = positions[indices]  # (B, C, 2)
    centers = members.mean(axis=1)
    return centers, RELATIVE_SIGN * (members - centers[:, None, :])


def _neighbour_table(pos: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other positions of each position, nearest first; int64 (n, k)."""
    _, idx = cKDTree(pos).query(pos, k=k + 1)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(pos), k + 1)
    is_self = idx == np.arange(len(pos))[:, None]
    missing = ~is_self.any(axis=1)  # duplicates of a position may push itself out of the list
    is_self[missing, -1] = True
    is_self &= np.cumsum(is_self, axis=1) == 1  # drop one entry per row only
    return idx[~is_self].reshape(len(pos), k)


def _round_robin(owner: np.ndarray, count: int, gen: np.random.Generator) -> np.ndarray:
    """Pick ``count`` candidate indices at random, taking turns among owners (seeds)."""
    perm = gen.permutation(len(owner))
    order = perm[np.argsort(owner[perm], kind="stable")]  # grouped by owner, random within
    starts = np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    turn = np.lexsort((gen.random(len(order)), rank))  # all first picks, then all second ...
    return np.sort(order[turn[:count]])


def _distinct_candidates(nbrs: np.ndarray, c: int) -> np.ndarray:
    """Every distinct group (seed + (C-1)-subset of its neighbours), first seed kept; (D, C)."""
    combos = np.array(list(itertools.combinations(range(nbrs.shape[1]), c - 1)), dtype=np.int64)
    n = len(nbrs)
    rows = np.concatenate([np.repeat(np.arange(n), len(combos))[:, None],
                           nbrs[:, combos].reshape(-1, c - 1)], axis=1)
    _, first = np.unique(np.sort(rows, axis=1), axis=0, return_index=True)
    return rows[np.sort(first)]


def _rejection(nbrs: np.ndarray, c: int, count: int, gen: np.random.Generator) -> np.ndarray:
    n, k = nbrs.shape
    found = np.empty((0, c), dtype=np.int64)
    for _ in range(_REJECTION_ROUNDS):
        need = count - len(found)
        seeds = np.concatenate([gen.permutation(n) for _ in range(-(-need // n))])[:need]
        picks = np.sort(np.argsort(gen.random((need, k)), axis=1)[:, : c - 1], axis=1)
        rows = np.concatenate([seeds[:, None], nbrs[seeds[:, None], picks]], axis=1)
        allrows = np.concatenate([found, rows])
        _, first = np.unique(np.sort(allrows, axis=1), axis=0, return_index=True)
        found = allrows[np.sort(first)]
        if len(found) >= count:
            found = found[:count]
            return found[np.argsort(found[:, 0], kind="stable")]
    raise GroupingError(
        f"could not draw {count} distinct groups by rejection after {_REJECTION_ROUNDS} rounds "
        f"(found {len(found)}); request fewer groups or raise k_neighbors")


def _single_groups(pos: np.ndarray, count: int, gen: np.random.Generator) -> np.ndarray:
    n = len(pos)
    if count > n:
        raise GroupingError(f"gridsize 1 allows at most {n} distinct groups (one per position), "
                            f"{count} were requested")
    chosen = np.arange(n) if count == n else np.sort(gen.choice(n, size=count, replace=False))
    return chosen[:, None].astype(np.int64)


def group_positions(positions: np.ndarray, *, gridsize: int, k_neighbors: int = 6,
                    n_groups: int | None = None,
                    rng: np.random.Generator | int | None = None) -> Groups:
    """Group scan positions into neighbour groups of ``gridsize**2`` members.

    Parameters
    ----------
    positions : ndarray, float, shape (n, 2)
        Scan positions (x, y).
    gridsize : int
        1, 2 or 3; each group holds ``C = gridsize**2`` positions.
    k_neighbors : int
        K, neighbours considered per seed; ``K >= C - 1`` (ignored for gridsize 1).
    n_groups : int, optional
        Groups to make. Default: one per position (``n``), or all distinct groups when fewer are
        possible (then ``n_achieved < n_requested``, visible in :func:`grouping_summary`). An
        explicit ``n_groups`` above the number possible raises. For gridsize 1, fewer than ``n``
        picks a random subset of positions.
    rng : Generator, int or None
        Random source for the draws.

    Returns
    -------
    Groups

    Raises
    ------
    GroupingError
        gridsize not in 1..3; fewer positions than C; K < C - 1; more groups than distinct groups
        possible (the message gives the number).
    """
    pos = _check_positions(positions)
    if isinstance(gridsize, bool) or gridsize not in GRIDSIZES:
        raise GroupingError(f"gridsize must be 1, 2 or 3, got {gridsize!r}")
    n, c = len(pos), gridsize * gridsize
    count = _check_count(n_groups, n, name="n_groups")
    if n < c:
        raise GroupingError(f"gridsize {gridsize} needs at least C = {c} positions per group, "
                            f"got {n} position(s)")
    gen = np.random.default_rng(rng)
    if gridsize == 1:
        indices, k, possible, exact = _single_groups(pos, count, gen), 0, n, True
    else:
        indices, k, possible, exact = _neighbour_groups(pos, c, k_neighbors, count,
                                                        n_groups is not None, gen)
    centers, relative = relative_offsets(pos, indices)
    return Groups(indices, centers, relative, int(gridsize), k, count, len(indices), possible,
                  exact)


def _neighbour_groups(pos: np.ndarray, c: int, k_neighbors: int, count: int, strict: bool,
                      gen: np.random.Generator) -> tuple[np.ndarray, int, int, bool]:
    if isinstance(k_neighbors, bool) or int(k_neighbors) != k_neighbors or k_neighbors < c - 1:
        raise GroupingError(f"k_neighbors K must be an integer >= C - 1 = {c - 1} (each group "
                            f"draws {c - 1} neighbours of its seed), got {k_neighbors!r}")
    n = len(pos)
    k = min(int(k_neighbors), n - 1)
    bound = n * math.comb(k, c - 1)
    if strict and count > bound:
        raise GroupingError(f"{count} groups requested but at most {bound} distinct groups are "
                            f"possible ({n} seeds x C({k}, {c - 1}) neighbour subsets)")
    nbrs = _neighbour_table(pos, k)
    if bound > ENUMERATION_LIMIT:
        return _rejection(nbrs, c, min(count, bound), gen), k, bound, False
    rows = _distinct_candidates(nbrs, c)
    if strict and count > len(rows):
        raise GroupingError(f"{count} groups requested but only {len(rows)} distinct groups are "
                            f"possible with K = {k} neighbours ({bound} candidates before removing "
                            "duplicate sets)")
    chosen = _round_robin(rows[:, 0], min(count, len(rows)), gen)
    return rows[chosen], k, len(rows), True


def _layout_error(relative: np.ndarray, gridsize: int) -> tuple[float, np.ndarray]:
    """Common spacing ``d`` of a row-major gridsize x gridsize layout (the median of the groups'
    least-squares spacings, so one bad group does not move it) and each group's largest deviation
    from ``d * unit layout`` (pixels), (B,)."""
    iy, ix = np.divmod(np.arange(gridsize * gridsize), gridsize)
    unit = RELATIVE_SIGN * (np.column_stack([ix, iy]) - (gridsize - 1) / 2.0)  # (C, 2) as (x, y)
    d = float(np.median((relative * unit).sum(axis=(1, 2)) / (unit * unit).sum()))
    return d, np.abs(relative - d * unit).max(axis=(1, 2))


def grid_groups(positions: np.ndarray, *, gridsize: int, n_groups: int | None = None,
                rng: np.random.Generator | int | None = None) -> Groups:
    """Grid-mode groups: the clusters of a clustered raster scan, members in layout order.

    The positions must be stored cluster by cluster, ``gridsize**2`` consecutive positions per
    cluster in the layout order of :func:`ptycho_dist.physics.scans.cluster_layout` (what
    :func:`~ptycho_dist.physics.scans.grid_scan` with ``cluster = gridsize`` makes): group ``k`` is
    positions ``k * C ... k * C + C - 1`` and its channel ``c`` sits at layout row
    ``iy, ix = divmod(c, gridsize)``. The layout is checked: every group must be the same square
    row-major layout with one spacing ``d > 0`` (then ``relative[:, c]`` is identical for every
    group, ``+/- d / 2`` for gridsize 2). gridsize 1: one group per position.

    Parameters
    ----------
    positions : ndarray, float, shape (n, 2)
        Scan positions (x, y), ``n`` a multiple of ``C = gridsize**2``.
    gridsize : int
        1, 2 or 3, the scan's cluster side.
    n_groups : int, optional
        Groups to keep. Default: every cluster (``n / C``). Fewer keeps a random subset drawn with
        ``rng``, in scan order; more than ``n / C`` raises.
    rng : Generator, int or None
        Random source of the subset (unused when every cluster is kept).

    Returns
    -------
    Groups
        ``mode = "grid"``, ``k_neighbors = 0``, ``n_possible = n / C`` (exact).

    Raises
    ------
    GroupingError
        gridsize not in 1..3; ``n`` not a multiple of C; positions not in clusters of the layout
        (the message names the first group that is not); more groups requested than clusters.
    """
    pos = _check_positions(positions)
    if isinstance(gridsize, bool) or gridsize not in GRIDSIZES:
        raise GroupingError(f"gridsize must be 1, 2 or 3, got {gridsize!r}")
    c = gridsize * gridsize
    if len(pos) == 0 or len(pos) % c:
        raise GroupingError(f"grid grouping with gridsize {gridsize} needs the positions in clusters of "
                            f"C = {c}, got {len(pos)} position(s) (scan.cluster must equal gridsize)")
    indices = np.arange(len(pos), dtype=np.int64).reshape(-1, c)
    possible = len(indices)
    count = _check_count(n_groups, possible, name="n_groups")
    if count > possible:
        raise GroupingError(f"{count} groups requested but the scan has only {possible} clusters of "
                            f"{gridsize}x{gridsize} positions")
    centers, relative = relative_offsets(pos, indices)
    if gridsize > 1:
        _check_layout(relative, gridsize)
    if count < possible:
        keep = np.sort(np.random.default_rng(rng).choice(possible, size=count, replace=False))
        indices, centers, relative = indices[keep], centers[keep], relative[keep]
    return Groups(indices, centers, relative, int(gridsize), 0, count, count, possible, True, "grid")


def _check_layout(relative: np.ndarray, gridsize: int) -> None:
    d, err = _layout_error(relative, gridsize)
    tol = _LAYOUT_TOLERANCE * max(1.0, abs(d))
    bad = np.flatnonzero(err > tol)
    if d <= 0 or bad.size:
        k = int(bad[0]) if bad.size else 0
        raise GroupingError(
            f"positions are not clusters of a {gridsize}x{gridsize} layout in row-major order "
            f"(common spacing {d:g} px; group {k}, positions {k * gridsize**2}..{(k + 1) * gridsize**2 - 1}, "
            f"deviates by {float(err[k]):.3g} px); grid grouping needs scan.kind = 'grid' with "
            f"scan.cluster = gridsize = {gridsize}")


def grouping_summary(groups: Groups, positions: np.ndarray) -> dict[str, float | int | bool | str]:
    """Diagnostics of a grouping (rows of the ``diagnostics`` table).

    Returns
    -------
    dict
        ``groups_requested``, ``groups_achieved``, ``groups_possible`` (+ ``_exact``),
        ``grouping_mode`` ("neighbors" or "grid"), ``grouping_gridsize``, ``grouping_k_neighbors``,
        ``relative_sign``, ``relative_shape``
        ("BxCx2"), per-axis ``offsets_{x,y}_{min,max,std}`` of the centres and
        ``relative_{x,y}_{min,max,std}``, ``n_distinct_offsets`` (distinct centres at 1e-6 px; a
        collapse shows as 1), ``n_distinct_relative`` (distinct relative vectors: C in grid mode,
        where channel c has one offset) and ``max_neighbor_distance`` /
        ``mean_neighbor_distance`` (member to seed, pixels; grid mode: to the layout's first
        member).
    """
    pos = _check_positions(positions)
    idx = groups.indices
    if idx.size and (idx.min() < 0 or idx.max() >= len(pos)):
        raise GroupingError(f"group indices must lie in [0, {len(pos)}), got "
                            f"[{int(idx.min())}, {int(idx.max())}]")
    out: dict[str, float | int | bool | str] = {
        "groups_requested": groups.n_requested, "groups_achieved": groups.n_achieved,
        "groups_possible": groups.n_possible, "groups_possible_exact": groups.n_possible_exact,
        "grouping_mode": groups.mode, "grouping_gridsize": groups.gridsize, "grouping_k_neighbors": groups.k_neighbors,
        "relative_sign": RELATIVE_SIGN, "relative_shape": "x".join(map(str, groups.relative.shape)),
    }
    rel = groups.relative.reshape(-1, 2)
    for name, arr in (("offsets", groups.centers), ("relative", rel)):
        for axis, label in enumerate("xy"):
            out[f"{name}_{label}_min"] = float(arr[:, axis].min())
            out[f"{name}_{label}_max"] = float(arr[:, axis].max())
            out[f"{name}_{label}_std"] = float(arr[:, axis].std())
    out["n_distinct_offsets"] = int(len(np.unique(np.round(groups.centers, 6), axis=0)))
    out["n_distinct_relative"] = int(len(np.unique(np.round(rel, 6), axis=0)))
    dist = np.linalg.norm(pos[idx] - pos[idx[:, :1]], axis=2)
    out["max_neighbor_distance"] = float(dist.max())
    out["mean_neighbor_distance"] = float(dist[:, 1:].mean()) if idx.shape[1] > 1 else 0.0
    return out
