"""Scan trajectories (PHYSICS.md "Arrays and coordinates", "Objects, probes, scans").

Positions are float64 (n, 2) as (x, y) = where the probe CENTRE sits, in object pixels (x = column,
y = row). Patch k then covers rows ``y_k - N/2 ... y_k + N/2 - 1`` and columns
``x_k - N/2 ... x_k + N/2 - 1`` (see :func:`ptycho_dist.physics.forward.extract_patches`), which
lies inside an (H, W) object, bilinear support included, exactly when

    N/2 <= x_k <= W - N/2   and   N/2 <= y_k <= H - N/2.

Every generator keeps its positions a further ``margin`` pixels inside that box (the *scan box*).

Clustered grids (PtychoPINN's grid simulation). With ``cluster = g > 1`` every point of the outer
grid (spacing ``step``, the stride between groups) becomes ``g * g`` positions at the fixed layout
:func:`cluster_layout` around it, ``inner_offset`` pixels apart, stored consecutively in layout
order: position ``k * g**2 + c`` is member ``c`` of cluster ``k``. Channel ``c`` sits at layout row
``iy, ix = divmod(c, g)`` (row-major, y outer), i.e. at

    (dx, dy) = ((ix - (g - 1) / 2) * inner_offset, (iy - (g - 1) / 2) * inner_offset)

from its cluster's centre; for ``g = 2`` the order is (dy, dx) = (-, -), (-, +), (+, -), (+, +).
This is the order of the reference's grid-to-channel reshape (a gridsize x gridsize grid of patches,
row-major, flattened into the channel axis). The whole cluster stays in the scan box: the outer grid
lives in the box shrunk by the cluster's half extent ``(g - 1) * inner_offset / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import check_positions, check_positive

__all__ = ["scan_box", "check_scan_fits", "grid_scan", "grid_shape", "cluster_layout", "random_scan",
           "fermat_scan", "GOLDEN_ANGLE", "CLUSTERS"]

#: angle between successive Fermat-spiral points, pi * (3 - sqrt 5) rad (~137.5 deg)
GOLDEN_ANGLE = float(np.pi * (3.0 - np.sqrt(5.0)))
_MAX_JITTER_ROUNDS = 1000
#: supported cluster sides (members per side of each outer grid point)
CLUSTERS = (1, 2, 3)


def _count(value: int, *, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise PhysicsError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def scan_box(object_shape: Sequence[int], probe_size: int, *,
             margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest allowed probe-centre positions.

    Parameters
    ----------
    object_shape : (int, int)
        (H, W) in pixels.
    probe_size : int
        Probe side N.
    margin : float
        Extra distance kept from the object edge, pixels, >= 0.

    Returns
    -------
    lo, hi : ndarray, float64, shape (2,)
        As (x, y): ``lo = N/2 + margin``, ``hi = (W, H) - N/2 - margin``.

    Raises
    ------
    PhysicsError
        When the object is smaller than N + 2 * margin along either axis.
    """
    h, w = (_count(s, name="object shape entry") for s in object_shape)
    n = _count(probe_size, name="probe_size")
    m = check_positive(margin, name="margin", allow_zero=True)
    need = n + 2.0 * m
    if h < need or w < need:
        raise PhysicsError(
            f"object of shape (H, W) = ({h}, {w}) is smaller than probe {n} + 2 * margin {m:g} "
            f"= {need:g} pixels; no scan position keeps the whole patch inside")
    lo = np.array([n / 2 + m, n / 2 + m])
    return lo, np.array([w - n / 2 - m, h - n / 2 - m])


def check_scan_fits(positions: object, object_shape: Sequence[int], probe_size: int) -> np.ndarray:
    """Return positions as float64 (n, 2) after checking every patch lies inside the object.

    Raises
    ------
    PhysicsError
        Naming how many positions fall outside and the first one.
    """
    pos = check_positions(positions)
    lo, hi = scan_box(object_shape, probe_size)
    outside = np.flatnonzero(((pos < lo) | (pos > hi)).any(axis=1))
    if outside.size:
        k = int(outside[0])
        raise PhysicsError(
            f"{outside.size} of {len(pos)} positions put the {probe_size}x{probe_size} patch "
            f"outside the object {tuple(object_shape)}; allowed x in [{lo[0]:g}, {hi[0]:g}], y in "
            f"[{lo[1]:g}, {hi[1]:g}], got position {k} = ({pos[k, 0]:g}, {pos[k, 1]:g})")
    return pos


def _axis(lo: float, hi: float, step: float) -> np.ndarray:
    """Evenly spaced coordinates ``step`` apart, centred in [lo, hi]."""
    span = hi - lo
    count = int(np.floor(span / step + 1e-9)) + 1
    start = lo + (span - (count - 1) * step) / 2.0
    return np.clip(start + step * np.arange(count), lo, hi)  # clip only removes rounding error


def _jitter(pos: np.ndarray, sigma: float, lo: np.ndarray, hi: np.ndarray,
            gen: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) to each coordinate, redrawing draws that leave the box (truncated)."""
    base = pos.ravel()
    low, high = np.tile(lo, len(pos)), np.tile(hi, len(pos))
    out, todo = base.copy(), np.arange(base.size)
    for _ in range(_MAX_JITTER_ROUNDS):
        if todo.size == 0:
            return out.reshape(pos.shape)
        trial = base[todo] + gen.normal(0.0, sigma, size=todo.size)
        ok = (trial >= low[todo]) & (trial <= high[todo])
        out[todo[ok]] = trial[ok]
        todo = todo[~ok]
    raise PhysicsError(
        f"jitter {sigma:g} px is too large for the scan box x in [{lo[0]:g}, {hi[0]:g}], "
        f"y in [{lo[1]:g}, {hi[1]:g}]: {todo.size} coordinates stayed outside")


def cluster_layout(cluster: int, inner_offset: float = 4.0) -> np.ndarray:
    """Offsets of the members of one cluster from its centre, in layout (channel) order.

    Parameters
    ----------
    cluster : int
        Members per side g, 1, 2 or 3.
    inner_offset : float
        Distance in pixels between neighbouring members, > 0.

    Returns
    -------
    ndarray, float64, shape (g * g, 2)
        (dx, dy) of member ``c``: ``iy, ix = divmod(c, g)``, ``dx = (ix - (g - 1) / 2) *
        inner_offset``, ``dy = (iy - (g - 1) / 2) * inner_offset`` (row-major, y outer; the offsets
        sum to zero, so the centre is the members' mean).
    """
    g = _cluster(cluster)
    d = check_positive(inner_offset, name="inner_offset")
    iy, ix = np.divmod(np.arange(g * g), g)
    return np.column_stack([ix - (g - 1) / 2.0, iy - (g - 1) / 2.0]) * d


def _cluster(value: int) -> int:
    if isinstance(value, bool) or value not in CLUSTERS:
        raise PhysicsError(f"cluster must be 1, 2 or 3 (members per side), got {value!r}")
    return int(value)


def _outer_box(object_shape: Sequence[int], probe_size: int, *, cluster: int, inner_offset: float,
               margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The scan box shrunk by the cluster's half extent: where cluster centres may sit."""
    lo, hi = scan_box(object_shape, probe_size, margin=margin)
    g = _cluster(cluster)
    half = (g - 1) * check_positive(inner_offset, name="inner_offset") / 2.0
    if g > 1 and (hi - lo).min() < 2 * half:
        raise PhysicsError(
            f"the scan box x in [{lo[0]:g}, {hi[0]:g}], y in [{lo[1]:g}, {hi[1]:g}] of object "
            f"{tuple(object_shape)} with probe {probe_size} and margin {margin:g} is narrower than "
            f"one {g}x{g} cluster ({(g - 1) * inner_offset:g} px across at inner_offset "
            f"{inner_offset:g}); enlarge the object or reduce margin or inner_offset")
    return lo + half, hi - half


def grid_shape(object_shape: Sequence[int], probe_size: int, *, step: float, cluster: int = 1,
               inner_offset: float = 4.0, margin: float = 0.0) -> tuple[int, int]:
    """Rows and columns (ny, nx) of the outer grid of :func:`grid_scan` (cluster centres).

    Along each axis ``floor((span - (cluster - 1) * inner_offset) / step) + 1`` points, where span
    is the scan box's width ``W - N - 2 * margin`` (``H - ...`` for rows). The scan holds
    ``ny * nx * cluster**2`` positions.
    """
    s = check_positive(step, name="scan step")
    lo, hi = _outer_box(object_shape, probe_size, cluster=cluster, inner_offset=inner_offset,
                        margin=margin)
    return len(_axis(lo[1], hi[1], s)), len(_axis(lo[0], hi[0], s))


def grid_scan(object_shape: Sequence[int], probe_size: int, *, step: float, jitter: float = 0.0,
              margin: float = 0.0, cluster: int = 1, inner_offset: float = 4.0,
              rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Raster grid with spacing ``step`` (both axes), centred in the scan box, row-major (y outer).

    Along each axis the grid holds ``floor(span / step) + 1`` points (span = box width), the unused
    remainder split evenly on both sides. With ``jitter > 0`` each coordinate gets Gaussian noise of
    std ``jitter`` pixels, truncated to the scan box (draws that would leave it are redrawn).

    With ``cluster = g > 1`` each grid point is a cluster centre and becomes ``g * g`` positions at
    :func:`cluster_layout` around it (module docstring); the centres then fill the scan box shrunk
    by ``(g - 1) * inner_offset / 2`` (so ``span`` above loses ``(g - 1) * inner_offset``) and the
    jitter moves each cluster as a whole, keeping its layout exact.

    Parameters
    ----------
    object_shape : (int, int)
        (H, W).
    probe_size : int
        Probe side N.
    step : float
        Grid spacing in pixels, > 0 (between cluster centres when ``cluster > 1``).
    jitter : float
        Std of the Gaussian jitter in pixels, >= 0.
    margin : float
        See :func:`scan_box`.
    cluster : int
        Members per side of each grid point, 1, 2 or 3; 1 is the plain raster.
    inner_offset : float
        Distance in pixels between neighbouring members of a cluster, > 0 (unused for cluster 1).
    rng : Generator, int or None
        Random source (used only when ``jitter > 0``).

    Returns
    -------
    ndarray, float64, shape (n, 2)
        (x, y) probe-centre positions, ``n = ny * nx * cluster**2`` (:func:`grid_shape`), cluster
        by cluster in layout order.

    Raises
    ------
    PhysicsError
        When the scan box is narrower than one cluster (never clipped).
    """
    s = check_positive(step, name="scan step")
    sigma = check_positive(jitter, name="jitter", allow_zero=True)
    lo, hi = _outer_box(object_shape, probe_size, cluster=cluster, inner_offset=inner_offset,
                        margin=margin)
    yy, xx = np.meshgrid(_axis(lo[1], hi[1], s), _axis(lo[0], hi[0], s), indexing="ij")
    pos = np.column_stack([xx.ravel(), yy.ravel()])
    if sigma > 0.0:
        pos = _jitter(pos, sigma, lo, hi, np.random.default_rng(rng))
    if cluster == 1:
        return pos
    members = pos[:, None, :] + cluster_layout(cluster, inner_offset)[None]
    box_lo, box_hi = scan_box(object_shape, probe_size, margin=margin)
    return np.clip(members.reshape(-1, 2), box_lo, box_hi)  # clip only removes rounding error


def random_scan(object_shape: Sequence[int], probe_size: int, *, n_positions: int,
                margin: float = 0.0, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n_positions`` positions drawn independently and uniformly in the scan box.

    Returns
    -------
    ndarray, float64, shape (n_positions, 2)
        (x, y) probe-centre positions.
    """
    count = _count(n_positions, name="n_positions")
    lo, hi = scan_box(object_shape, probe_size, margin=margin)
    return np.random.default_rng(rng).uniform(lo, hi, size=(count, 2))


def fermat_scan(object_shape: Sequence[int], probe_size: int, *, n_positions: int, step: float,
                margin: float = 0.0) -> np.ndarray:
    """Fermat spiral centred in the scan box (deterministic).

    Point ``i = 0, 1, ...`` sits at radius ``step * sqrt(i)`` and angle ``i * GOLDEN_ANGLE``
    (Vogel's model; Huang et al., Opt. Express 22:12634, 2014, for ptychography), which gives about
    one point per ``pi * step^2`` of area. Points outside the scan box are skipped; the first
    ``n_positions`` inside are returned.

    Returns
    -------
    ndarray, float64, shape (n_positions, 2)
        (x, y) probe-centre positions.

    Raises
    ------
    PhysicsError
        When the spiral cannot put ``n_positions`` points in the box (the message says how many
        fit).
    """
    count = _count(n_positions, name="n_positions")
    s = check_positive(step, name="scan step")
    lo, hi = scan_box(object_shape, probe_size, margin=margin)
    centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    i_last = int(np.ceil((np.hypot(*half) / s) ** 2)) + 1  # beyond this radius nothing fits
    if i_last > 50_000_000:
        raise PhysicsError(f"Fermat step {s:g} px is too small for the scan box ({i_last} points)")
    i = np.arange(i_last + 1)
    r, theta = s * np.sqrt(i), i * GOLDEN_ANGLE
    pos = centre + np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    pos = pos[((pos >= lo) & (pos <= hi)).all(axis=1)]
    if len(pos) < count:
        raise PhysicsError(
            f"a Fermat spiral with step {s:g} px fits only {len(pos)} positions in the scan box "
            f"x in [{lo[0]:g}, {hi[0]:g}], y in [{lo[1]:g}, {hi[1]:g}]; {count} were requested")
    return pos[:count]
