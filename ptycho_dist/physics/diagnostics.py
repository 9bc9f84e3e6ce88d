"""Simulation-side diagnostics (PHYSICS.md "Diagnostics"): flat dicts for the ``diagnostics`` table.

Canvas requirement. The older code stitched onto a fixed canvas of side ``N + (gridsize - 1) * 4 +
10`` centred on the mean offset, whatever the scan extent; for a scan wider than that canvas most of
the signal was clipped. :func:`canvas_requirement` reports the side that really holds every patch
and the share of the patch energy the fixed canvas would keep, so the clipping is a number.

Scanned fraction. A PINN reconstructs only the central ``N/2 x N/2`` window of each patch (its
object is zero-padded outside it), so object pixels outside every position's central window are
never reconstructed. :func:`scanned_fraction` is the share of the object's pixels inside at least
one such window; a scan that leaves most of the object unscanned shows a value below 0.5.
"""

from __future__ import annotations

import numpy as np

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positions

__all__ = ["legacy_canvas_side", "canvas_requirement", "window_energy_share", "scanned_fraction"]

Scalar = float | int | bool | str


def legacy_canvas_side(n: int, gridsize: int) -> int:
    """The older fixed padded canvas side ``N + (gridsize - 1) * 4 + 10`` (pixels)."""
    return int(n + (gridsize - 1) * 4 + 10)


def _bounds(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Patch-pixel index range [a, b) whose pixel coordinates t satisfy lo <= t < hi."""
    return np.clip(np.ceil(lo), 0, n).astype(np.int64), np.clip(np.ceil(hi), 0, n).astype(np.int64)


def window_energy_share(positions: np.ndarray, weight: np.ndarray, *, centre: np.ndarray,
                        side: float) -> float:
    """Share of the summed patch weight inside a square window.

    Patch k's pixel (i, j) sits at object coordinates (y_k - N/2 + i, x_k - N/2 + j) and carries
    ``weight[i, j]``; it counts as kept when ``c - side/2 <= coordinate < c + side/2`` on both axes
    (c = ``centre`` as (x, y)). Computed in O(k) with a summed-area table.

    Parameters
    ----------
    positions : ndarray, float64, shape (k, 2)
        (x, y) probe-centre positions.
    weight : ndarray, float, shape (N, N)
        Non-negative per-pixel weight (e.g. ``|P|^2``), not all zero.
    centre : ndarray, shape (2,)
        Window centre (x, y).
    side : float
        Window side in pixels.

    Returns
    -------
    float
        Kept weight / total weight, in [0, 1].
    """
    n = weight.shape[0]
    table = np.zeros((n + 1, n + 1))
    table[1:, 1:] = weight.astype(np.float64).cumsum(axis=0).cumsum(axis=1)
    total = table[n, n] * len(positions)
    if total <= 0:
        raise PhysicsError("the canvas weight is zero everywhere; no energy share can be computed")
    lo = centre - side / 2.0 - positions + n / 2.0  # (k, 2) in patch-index units, as (x, y)
    c0, c1 = _bounds(lo[:, 0], lo[:, 0] + side, n)
    r0, r1 = _bounds(lo[:, 1], lo[:, 1] + side, n)
    kept = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    return float(kept.sum() / total)


def canvas_requirement(positions: np.ndarray, n: int, *, gridsize: int,
                       probe: np.ndarray | None = None,
                       object_shape: tuple[int, int] | None = None) -> dict[str, Scalar]:
    """Canvas needed to hold every patch vs the older fixed canvas.

    Parameters
    ----------
    positions : ndarray, float, shape (k, 2)
        (x, y) probe-centre positions (a whole scan, or one group's members).
    n : int
        Patch side N.
    gridsize : int
        Group side (1..3), for the older size ``N + (gridsize - 1) * 4 + 10``.
    probe : ndarray, complex, shape (N, N), optional
        When given, the energy share weights each patch pixel by the probe intensity ``|P|^2``
        (the illuminated energy); otherwise every footprint pixel weighs 1.
    object_shape : (int, int), optional
        When given, also report whether the required canvas fits the object.

    Returns
    -------
    dict
        ``canvas_required_height`` / ``_width`` (bounding box of positions +- N/2, rounded up),
        ``canvas_required_side`` (their max), ``canvas_fixed_side`` (older size),
        ``canvas_fixed_energy_share`` (share kept by the older canvas centred on the mean
        position), ``canvas_fixed_clipped_share`` (1 - it), ``canvas_energy_weight``
        ("probe_intensity" or "uniform_footprint") and, with ``object_shape``,
        ``canvas_fits_object``.
    """
    pos = check_positions(positions)
    if gridsize not in (1, 2, 3):
        raise PhysicsError(f"gridsize must be 1, 2 or 3, got {gridsize!r}")
    weight = np.ones((n, n)) if probe is None else np.abs(
        as_finite_array(probe, name="probe", ndim=2).astype(np.complex128)) ** 2
    if weight.shape != (n, n):
        raise PhysicsError(f"probe must have shape ({n}, {n}), got {weight.shape}")
    extent = pos.max(axis=0) - pos.min(axis=0)
    width, height = (int(np.ceil(e - 1e-9)) + n for e in extent)
    fixed = legacy_canvas_side(n, gridsize)
    share = window_energy_share(pos, weight, centre=pos.mean(axis=0), side=fixed)
    out: dict[str, Scalar] = {
        "canvas_required_height": height,
        "canvas_required_width": width,
        "canvas_required_side": max(height, width),
        "canvas_fixed_side": fixed,
        "canvas_fixed_energy_share": share,
        "canvas_fixed_clipped_share": 1.0 - share,
        "canvas_energy_weight": "uniform_footprint" if probe is None else "probe_intensity",
    }
    if object_shape is not None:
        out["canvas_fits_object"] = bool(height <= object_shape[0] and width <= object_shape[1])
    return out


def scanned_fraction(positions: np.ndarray, object_shape: tuple[int, int], window: float) -> float:
    """Share of the object's pixels inside the central ``window x window`` square of at least one
    scan position (``window = N/2``: the region a PINN reconstructs).

    Object pixel ``(r, c)`` is inside the window of position ``(x, y)`` when
    ``x - window/2 <= c < x + window/2`` and ``y - window/2 <= r < y + window/2`` (for an integer
    position and ``window = N/2`` these are exactly the object pixels under patch pixels
    ``N/4 ... 3N/4 - 1``, the central window of :func:`ptycho_dist.physics.extract_patches`).
    Windows are clipped to the object. Computed in O(k + H W) with a 2-D difference array.

    Parameters
    ----------
    positions : ndarray, float, shape (k, 2)
        (x, y) probe-centre positions in object pixels (k >= 1, finite).
    object_shape : (int, int)
        ``(H, W)`` of the object.
    window : float
        Side of the central window in pixels (> 0), typically ``N / 2``.

    Returns
    -------
    float
        Covered pixels / ``H * W``, in [0, 1].

    Raises
    ------
    PhysicsError
        Bad positions, a non-positive window or an empty object shape.
    """
    pos = check_positions(positions)
    try:
        h, w = (int(v) for v in object_shape)
    except (TypeError, ValueError):
        raise PhysicsError(f"object_shape must be (H, W) ints, got {object_shape!r}") from None
    if h < 1 or w < 1:
        raise PhysicsError(f"object_shape must be positive, got {object_shape!r}")
    if not (np.isfinite(window) and window > 0):
        raise PhysicsError(f"window must be a positive number of pixels, got {window!r}")
    half = float(window) / 2.0
    c0, c1 = _bounds(pos[:, 0] - half, pos[:, 0] + half, w)
    r0, r1 = _bounds(pos[:, 1] - half, pos[:, 1] + half, h)
    ok = (c1 > c0) & (r1 > r0)
    diff = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.add.at(diff, (r0[ok], c0[ok]), 1)
    np.add.at(diff, (r0[ok], c1[ok]), -1)
    np.add.at(diff, (r1[ok], c0[ok]), -1)
    np.add.at(diff, (r1[ok], c1[ok]), 1)
    count = diff.cumsum(axis=0).cumsum(axis=1)[:h, :w]
    return float(np.count_nonzero(count) / (h * w))
