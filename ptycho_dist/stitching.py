"""Reassembly of complex patches onto a canvas (pure numpy).

Conventions (docs: PHYSICS.md, "Arrays and coordinates" and "Stitching")
--------------------------------------------------------------------------
* A patch is an (N, N) complex array whose centre pixel (N//2, N//2) sits at the scan position
  ``(x, y)`` (float64, object pixels; row = y, column = x). Patch pixel ``(i, j)`` therefore sees
  object pixel ``(row y - N//2 + i, col x - N//2 + j)``.
* Only the central ``M x M`` crop of every patch is used (``crop=M``; ``None`` means ``M = N``):
  patch rows/columns ``N//2 - M//2 ... N//2 - M//2 + M - 1``. Crop pixel ``(a, b)`` therefore lands
  on object pixel ``(y - M//2 + a, x - M//2 + b)``, independent of ``N``.
* Sub-pixel positions are placed by **bilinear splatting**: the crop pixel at a fractional
  location spreads its value over the four surrounding canvas pixels with the usual bilinear
  weights. Canvas coordinates within ``1e-9`` px of an integer are snapped to it, so integer
  positions are placed exactly (no spill into a neighbouring pixel).
* The canvas is the weighted average

      canvas = sum_k shift_k(w * crop(patch_k)) / sum_k shift_k(w * 1),

  where ``w`` is the (M, M) weight (uniform ones, or the central crop of a probe intensity
  ``|P|^2``). The denominator is returned as ``coverage`` (summed weights; with probe-intensity
  weights it is the summed illumination). Pixels with zero coverage are NaN, never 0.
* Nothing is ever clipped: in the object frame with an explicit ``shape``, a position whose
  cropped footprint leaves the canvas is an error. The one exception is the ``"legacy"`` frame,
  which reproduces the older code's clipping on purpose (a fault switch, ``faults.legacy_canvas``).

Frames
------
``"object"`` (default)
    The canvas is the object's own pixel grid. With ``shape=(H, W)`` the canvas is exactly that
    grid (origin ``(0, 0)``). Without ``shape`` it is the bounding box of all cropped footprints
    (positions' bounding box +/- M/2, plus one pixel where bilinear splatting needs it); its origin
    is an integer object pixel, so canvas pixels coincide with object pixels.
``"centered"``
    The older PtychoPINN layout (``reassemble_position``), offered to compare with its outputs:
    the canvas is centred on the mean position ``m``; its side is ``S = M + 2 * P`` with
    ``P = even_ceil(max_k max(|x_k - m_x|, |y_k - m_y|))`` (ceil, then rounded up to even); canvas
    pixel ``(S//2, S//2)`` is object coordinate ``m``, so ``origin = m - S//2`` is in general
    fractional and an integer-position patch is then splatted bilinearly.
``"legacy"``
    The older code's *fixed padded* canvas, for fault studies only (``faults.legacy_canvas``,
    docs/faults.md): the same centring as ``"centered"`` (canvas pixel ``(S//2, S//2)`` is the mean
    position ``m``, ``origin = m - S//2``) but a fixed side ``S = side`` given by the caller (the
    older ``N + (gridsize - 1) * 4 + 10``, :func:`ptycho_dist.physics.legacy_canvas_side`),
    whatever the scan extent. Every splatted contribution (patch values and weights alike) that
    lands outside the ``S x S`` canvas is **dropped**: a scan wider than the canvas loses most of
    its signal, and ``coverage.sum()`` falls below ``n * w.sum()`` by exactly what was dropped.

Cost is O(n * M^2) time (bilinear splat on flattened zero-padded crops, one complex
:func:`numpy.add.at` per chunk; with uniform weights the coverage is four integer boxes per patch
in a difference array, integrated by cumulative sums) and
O(chunk_size * M^2 + canvas) memory; no per-patch canvas is ever allocated.

The linear operator and its adjoint
-----------------------------------
The numerator of the canvas, without the division by the coverage, is a linear operator from
patches to the object grid, :func:`scatter_patches`:

    S p = sum_k shift_k(w * crop(p_k)),

and :func:`gather_patches` is its adjoint ``S^H``: every patch reads the canvas back through the
same bilinear weights, times ``w``, zero outside the crop, so that ``<S p, o> = <p, S^H o>`` for
all ``p`` and ``o`` (tests/test_stitching.py checks it). With uniform weights and no crop,
``S^H`` is bilinear patch extraction at the scan positions (``physics.extract_patches``), and
:func:`stitch` is ``S p / S 1`` where ``S 1 > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ptycho_dist.errors import StitchError

__all__ = ["StitchResult", "stitch", "scatter_patches", "gather_patches", "even_ceil", "crop_bounds",
           "object_layout"]

Frame = Literal["object", "centered", "legacy"]
_SNAP_ATOL = 1e-9
_FRAMES = ("object", "centered", "legacy")


@dataclass(frozen=True, eq=False)
class StitchResult:
    """A stitched canvas and where it sits in the object frame.

    Attributes
    ----------
    canvas : numpy.ndarray, complex64, shape (H', W')
        Weighted average of the placed patches; NaN + NaN j where ``coverage == 0``.
    coverage : numpy.ndarray, float32, shape (H', W')
        Summed placement weights (counts for uniform weights, summed illumination for
        probe-intensity weights).
    origin : numpy.ndarray, float64, shape (2,)
        Object coordinates ``(x, y)`` of canvas pixel ``(0, 0)``: canvas pixel ``(r, c)`` is
        object point ``(x = origin[0] + c, y = origin[1] + r)``.
    crop : int
        The crop size ``M`` that was used.
    frame : str
        ``"object"``, ``"centered"`` or ``"legacy"``.
    """

    canvas: np.ndarray
    coverage: np.ndarray
    origin: np.ndarray
    crop: int
    frame: str

    @property
    def shape(self) -> tuple[int, int]:
        """Canvas shape ``(H', W')``."""
        return (int(self.canvas.shape[0]), int(self.canvas.shape[1]))

    @property
    def covered(self) -> np.ndarray:
        """bool (H', W'): pixels that received a non-zero weight."""
        return self.coverage > 0


def even_ceil(value: float) -> int:
    """Smallest even integer ``>= value`` (``value >= 0``), as in the older canvas layout."""
    k = math.ceil(value)
    return int(k + (k % 2))


def crop_bounds(n: int, crop: int | None) -> tuple[int, int]:
    """Start and crop size ``(s, M)`` of the central crop of an ``n``-pixel patch axis.

    The crop covers patch indices ``s ... s + M - 1`` with ``s = n//2 - M//2``.
    Raises :class:`StitchError` when ``crop`` is not an integer in ``[1, n]``.
    """
    if crop is None:
        return 0, n
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)):
        raise StitchError(f"crop must be an int in [1, {n}] or None, got {crop!r}")
    if not 1 <= crop <= n:
        raise StitchError(f"crop must be in [1, {n}] (the patch size), got {crop}")
    return n // 2 - int(crop) // 2, int(crop)


def stitch(patches: np.ndarray, positions: np.ndarray, *, crop: int | None = 20,
           frame: Frame = "object", shape: tuple[int, int] | None = None,
           weights: None | str | np.ndarray = None, chunk_size: int = 128,
           side: int | None = None) -> StitchResult:
    """Place patches at their scan positions and average them on a canvas.

    Parameters
    ----------
    patches : numpy.ndarray, complex (or real), shape (n, N, N) or grouped (B, C, N, N)
        Patches whose centre pixel ``(N//2, N//2)`` sits at the matching position. Grouped input
        is flattened in C order (same canvas as the flattened input). Not modified.
    positions : numpy.ndarray, float, shape (n, 2) or (B, C, 2)
        Absolute positions ``(x, y)`` in object pixels (see module docstring).
    crop : int or None, optional
        Side ``M`` of the central crop used from every patch (``1 <= M <= N``); ``None`` = ``N``.
    frame : {"object", "centered", "legacy"}, optional
        Canvas layout, see the module docstring (``"legacy"`` clips, for fault studies only).
    shape : tuple of int, optional
        ``(H, W)`` of the object grid (``frame="object"`` only). A footprint outside it raises.
    weights : None, "uniform" or numpy.ndarray float (N, N), optional
        Placement weights; an array is typically the probe intensity ``|P|^2``, cropped like the
        patches. Must be finite and non-negative.
    chunk_size : int, optional
        Patches processed per scatter-add (bounds temporary memory).
    side : int, optional
        Side ``S`` of the fixed square canvas of ``frame="legacy"`` (required there, an error
        elsewhere).

    Returns
    -------
    StitchResult
        ``canvas`` complex64 (H', W'), ``coverage`` float32 (H', W'), ``origin`` float64 (2,).

    Raises
    ------
    StitchError
        Mismatched shapes, non-finite positions or patches, a bad crop, bad weights, an unknown
        frame, a ``side`` missing for (or given without) ``frame="legacy"``, or (object frame with
        ``shape``) a footprint outside the canvas.
    """
    flat, pos = _validate_inputs(patches, positions)
    start, m = crop_bounds(flat.shape[-1], crop)
    w = _crop_weights(weights, flat.shape[-1], start, m)
    if frame not in _FRAMES:
        raise StitchError(f"frame must be one of {_FRAMES}, got {frame!r}")
    if frame == "legacy":
        return _stitch_clipped(flat, pos, w, start, m, _legacy_side(side, shape), _chunk(chunk_size))
    if side is not None:
        raise StitchError(f"side applies to frame='legacy' only (the fixed older canvas), got side={side!r} "
                          f"with frame={frame!r}")
    origin, canvas_shape = _layout(pos, m, frame, shape)
    corner = _snap(pos - m // 2 - origin)
    _check_inside(corner, pos, m, canvas_shape, frame)
    num_re, num_im, den = _accumulate(flat, corner, w, start, canvas_shape, _chunk(chunk_size))
    return _finish(num_re, num_im, den, canvas_shape, origin, m, frame)


def object_layout(patches: np.ndarray, positions: np.ndarray, *, crop: int | None = 20,
                  shape: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray, tuple[int, int]]:
    """Validated inputs and placement of :func:`stitch` in the object frame (for other backends).

    Parameters
    ----------
    patches, positions, crop, shape
        As in :func:`stitch` (``frame="object"``).

    Returns
    -------
    flat : numpy.ndarray, shape (n, N, N)
        The patches, flattened (a view where possible).
    corner : numpy.ndarray, float64, shape (n, 2)
        Canvas coordinates ``(x, y)`` of crop pixel ``(0, 0)`` of every patch (snapped).
    start, m : int
        Crop start and size.
    origin : numpy.ndarray, float64, shape (2,)
        Object coordinates of canvas pixel ``(0, 0)``.
    canvas_shape : tuple of int
        ``(H', W')``.

    Raises
    ------
    StitchError
        As :func:`stitch`.
    """
    flat, pos = _validate_inputs(patches, positions)
    start, m = crop_bounds(flat.shape[-1], crop)
    origin, canvas_shape = _layout(pos, m, "object", shape)
    corner = _snap(pos - m // 2 - origin)
    _check_inside(corner, pos, m, canvas_shape, "object")
    return flat, corner, start, m, origin, canvas_shape


def scatter_patches(patches: np.ndarray, positions: np.ndarray, *, shape: tuple[int, int],
                    crop: int | None = None, weights: None | str | np.ndarray = None,
                    chunk_size: int = 128) -> np.ndarray:
    """Unnormalized placement ``S p = sum_k shift_k(w * crop(p_k))`` on the object grid.

    The numerator of :func:`stitch` (object frame with ``shape``): the same crop, weights and
    bilinear splatting, without the division by the coverage. Linear in ``patches``; its adjoint
    is :func:`gather_patches`.

    Parameters
    ----------
    patches : numpy.ndarray, complex (or real), shape (n, N, N) or (B, C, N, N)
        Patches; not modified.
    positions : numpy.ndarray, float, shape (n, 2) or (B, C, 2)
        Absolute positions ``(x, y)`` in object pixels.
    shape : tuple of int
        ``(H, W)`` of the object grid; every footprint must lie inside it.
    crop : int or None, optional
        Side ``M`` of the central crop (``None``: the whole patch).
    weights : None, "uniform" or numpy.ndarray float (N, N), optional
        Placement weights ``w`` (cropped like the patches).
    chunk_size : int, optional
        Patches per scatter-add.

    Returns
    -------
    numpy.ndarray, complex128, shape (H, W)

    Raises
    ------
    StitchError
        As :func:`stitch` (shapes, non-finite values, crop, weights, footprints outside ``shape``).
    """
    flat, pos = _validate_inputs(patches, positions)
    start, m = crop_bounds(flat.shape[-1], crop)
    w = _crop_weights(weights, flat.shape[-1], start, m)
    canvas_shape = _check_shape(shape)
    corner = _snap(pos - m // 2)
    _check_inside(corner, pos, m, canvas_shape, "object")
    num_re, num_im, _ = _accumulate(flat, corner, w, start, canvas_shape, _chunk(chunk_size))
    return (num_re.astype(np.float64) + 1j * num_im).reshape(canvas_shape)


def gather_patches(canvas: np.ndarray, positions: np.ndarray, *, patch_size: int,
                   crop: int | None = None, weights: None | str | np.ndarray = None,
                   chunk_size: int = 128) -> np.ndarray:
    """The adjoint of :func:`scatter_patches`: patches read from ``canvas`` at the positions.

    ``patch_k[s + a, s + b] = w[a, b] * sum_q beta_q(a, b; x_k, y_k) canvas[q]``, where
    ``beta`` are the bilinear weights with which :func:`scatter_patches` splats crop pixel
    ``(a, b)`` of patch k (object point ``(y_k - M//2 + a, x_k - M//2 + b)``); pixels outside the
    central crop are 0. With uniform weights and no crop this is bilinear interpolation of the
    canvas at the patch pixels, i.e. patch extraction.

    Parameters
    ----------
    canvas : numpy.ndarray, complex or real, shape (H, W)
        Values on the object grid (e.g. an object); not modified.
    positions : numpy.ndarray, float, shape (n, 2) or (B, C, 2)
        Absolute positions ``(x, y)`` in object pixels.
    patch_size : int
        Patch side N.
    crop, weights, chunk_size
        As in :func:`scatter_patches`.

    Returns
    -------
    numpy.ndarray, complex128, shape positions.shape[:-1] + (N, N)

    Raises
    ------
    StitchError
        Bad shapes, non-finite canvas or positions, a bad crop or weights, or a footprint outside
        the canvas.
    """
    grid = np.asarray(canvas)
    if grid.ndim != 2 or not (np.issubdtype(grid.dtype, np.number) and grid.size > 0):
        raise StitchError(f"canvas must be a numeric (H, W) array, got shape {grid.shape} dtype {grid.dtype}")
    if not np.isfinite(grid).all():
        raise StitchError("canvas must be finite, got NaN/inf")
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise StitchError(f"patch_size must be a positive int, got {patch_size!r}")
    n, chunk = int(patch_size), _chunk(chunk_size)
    if np.ndim(positions) not in (2, 3) or np.shape(positions)[-1] != 2:
        raise StitchError(f"positions must have shape (n, 2) or (B, C, 2), got {np.shape(positions)}")
    pos_shape = np.shape(positions)[:-1]
    _, pos = _validate_inputs(np.zeros(pos_shape + (1, 1)), positions)  # dtype and finiteness
    start, m = crop_bounds(n, crop)
    w = _crop_weights(weights, n, start, m)
    corner = _snap(pos - m // 2)
    _check_inside(corner, pos, m, grid.shape, "object")
    padded = np.pad(grid.astype(np.complex128), ((0, 1), (0, 1)))  # the spill row/column, weight 0
    out = np.zeros((len(pos), n, n), dtype=np.complex128)
    span = np.arange(m + 1)
    for lo in range(0, len(pos), chunk):
        base = np.floor(corner[lo:lo + chunk]).astype(np.int64)
        frac = corner[lo:lo + chunk] - base
        windows = padded[base[:, 1, None, None] + span[None, :, None],
                         base[:, 0, None, None] + span[None, None, :]]
        out[lo:lo + chunk, start:start + m, start:start + m] = w * _splat_adjoint(windows, frac)
    return out.reshape(pos_shape + (n, n))


def _chunk(chunk_size: int) -> int:
    """Validate the number of patches per scatter-add / gather step."""
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise StitchError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return int(chunk_size)


def _validate_inputs(patches: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten grouped input and check shapes, dtypes and finiteness of positions."""
    p = np.asarray(patches)
    pos = np.asarray(positions)
    if p.ndim not in (3, 4):
        raise StitchError(f"patches must be (n, N, N) or (B, C, N, N), got shape {p.shape}")
    if p.shape[-1] != p.shape[-2] or p.shape[-1] < 1:
        raise StitchError(f"patches must be square (…, N, N), got shape {p.shape}")
    if not (np.issubdtype(p.dtype, np.complexfloating) or np.issubdtype(p.dtype, np.floating)):
        raise StitchError(f"patches must be complex or float, got dtype {p.dtype}")
    if pos.shape != p.shape[:-2] + (2,):
        raise StitchError(f"positions must have shape {p.shape[:-2] + (2,)} to match patches "
                          f"{p.shape}, got {pos.shape}")
    if not np.issubdtype(pos.dtype, np.number) or np.issubdtype(pos.dtype, np.complexfloating):
        raise StitchError(f"positions must be real numbers, got dtype {pos.dtype}")
    n_side = p.shape[-1]
    flat = p.reshape(-1, n_side, n_side)
    pos = pos.reshape(-1, 2).astype(np.float64)
    if flat.shape[0] == 0:
        raise StitchError("no patches to stitch (n = 0)")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise StitchError(f"positions must be finite; {int(bad.sum())} of {len(pos)} are NaN/inf "
                          f"(first: index {k}, value {pos[k].tolist()})")
    return flat, pos


def _crop_weights(weights: None | str | np.ndarray, n: int, start: int, m: int) -> np.ndarray:
    """The (M, M) float64 weight of the central crop."""
    if weights is None or (isinstance(weights, str) and weights == "uniform"):
        return np.ones((m, m), dtype=np.float64)
    if isinstance(weights, str):
        raise StitchError(f"weights must be None, 'uniform' or an (N, N) array, got {weights!r}")
    w = np.asarray(weights)
    if w.shape != (n, n) or np.iscomplexobj(w) or not np.issubdtype(w.dtype, np.number):
        raise StitchError(f"weights must be a real ({n}, {n}) array (probe intensity), "
                          f"got shape {w.shape} dtype {w.dtype}")
    w = w[start:start + m, start:start + m].astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise StitchError("weights must be finite and >= 0 (a probe intensity |P|^2)")
    if not (w > 0).any():
        raise StitchError(f"weights are zero everywhere in the central {m}x{m} crop")
    return w


def _legacy_side(side: int | None, shape: tuple[int, int] | None) -> int:
    """Validate the fixed side of the legacy canvas."""
    if shape is not None:
        raise StitchError(f"shape applies to frame='object' only; frame='legacy' has a fixed side, got shape={shape!r}")
    if side is None or isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
        raise StitchError(f"frame='legacy' needs side = a positive int (the fixed canvas side), got {side!r}")
    return int(side)


def _stitch_clipped(flat: np.ndarray, pos: np.ndarray, w: np.ndarray, start: int, m: int, side: int,
                    chunk: int) -> StitchResult:
    """The ``"legacy"`` frame: a fixed ``side x side`` canvas centred on the mean position; every
    contribution outside it is dropped (accumulated on a canvas that holds every footprint, then cut)."""
    origin = pos.mean(axis=0) - side // 2
    corner = _snap(pos - m // 2 - origin)
    lo = np.floor(corner)
    hi = lo + m - 1 + (corner > lo)  # last touched pixel, bilinear spill included
    off = np.minimum(lo.min(axis=0), 0.0).astype(np.int64)  # (x, y): where the full canvas starts
    far = np.maximum(hi.max(axis=0) + 1, side).astype(np.int64)
    full = (int(far[1] - off[1]), int(far[0] - off[0]))
    num_re, num_im, den = _accumulate(flat, corner - off, w, start, full, chunk)
    keep = (slice(int(-off[1]), int(-off[1]) + side), slice(int(-off[0]), int(-off[0]) + side))
    cut = [a.reshape(full)[keep].ravel() for a in (num_re, num_im, den)]
    return _finish(cut[0], cut[1], cut[2], (side, side), origin, m, "legacy")


def _layout(pos: np.ndarray, m: int, frame: str, shape: tuple[int, int] | None
            ) -> tuple[np.ndarray, tuple[int, int]]:
    """Canvas origin (x, y) and shape (H', W') for the frame."""
    if frame not in _FRAMES:
        raise StitchError(f"frame must be one of {_FRAMES}, got {frame!r}")
    if frame == "centered":
        if shape is not None:
            raise StitchError("shape applies to frame='object' only; frame='centered' sizes its "
                              f"own canvas, got shape={shape!r}")
        mean = pos.mean(axis=0)
        side = m + 2 * even_ceil(float(np.max(np.abs(pos - mean))))
        return mean - side // 2, (side, side)
    if shape is not None:
        return np.zeros(2), _check_shape(shape)
    corner = _snap(pos - m // 2)
    lo = np.floor(corner)
    hi = lo + m - 1 + (corner > lo)
    origin = lo.min(axis=0)
    width, height = (hi.max(axis=0) - origin + 1).astype(int)
    return origin, (int(height), int(width))


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Validate an explicit canvas shape."""
    try:
        h, w = (int(s) for s in shape)
        ok = all(float(s) == int(s) for s in shape) and h >= 1 and w >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StitchError(f"shape must be (H, W) with positive ints, got {shape!r}")
    return h, w


def _snap(coords: np.ndarray) -> np.ndarray:
    """Snap coordinates within 1e-9 of an integer to that integer (exact integer placement)."""
    r = np.round(coords)
    return np.where(np.abs(coords - r) < _SNAP_ATOL, r, coords)


def _check_inside(corner: np.ndarray, pos: np.ndarray, m: int, canvas_shape: tuple[int, int],
                  frame: str) -> None:
    """Raise when a footprint (incl. bilinear support) leaves the canvas; never clip."""
    lo = np.floor(corner)
    hi = lo + m - 1 + (corner > lo)
    limit = np.array([canvas_shape[1] - 1, canvas_shape[0] - 1], dtype=np.float64)
    over = np.maximum(np.max(-lo, axis=1), np.max(hi - limit, axis=1))
    bad = over > 0
    if bad.any():
        k = int(np.argmax(over))
        raise StitchError(
            f"{int(bad.sum())} of {len(pos)} positions put their {m}x{m} crop outside the "
            f"{canvas_shape[0]}x{canvas_shape[1]} canvas (frame={frame!r}); worst: index {k} at "
            f"(x, y) = ({pos[k, 0]:.6g}, {pos[k, 1]:.6g}), {over[k]:.6g} px outside. Nothing is "
            "clipped: give the object's true shape, or shape=None for a bounding-box canvas")


def _accumulate(flat: np.ndarray, corner: np.ndarray, w: np.ndarray, start: int,
                canvas_shape: tuple[int, int], chunk: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter-add the splatted crops chunk by chunk.

    Parameters
    ----------
    flat : numpy.ndarray, complex or float, shape (n, N, N)
        Patches; only the central crop ``[start:start + M, start:start + M]`` is read.
    corner : numpy.ndarray, float64, shape (n, 2)
        Canvas coordinates ``(x, y)`` of crop pixel ``(0, 0)`` (snapped, footprints inside).
    w : numpy.ndarray, float64, shape (M, M)
        Placement weights of the crop.
    start : int
        First row/column of the crop in the patch.
    canvas_shape : tuple of int
        ``(H, W)``.
    chunk : int
        Patches per scatter-add.

    Returns
    -------
    num_re, num_im, den : numpy.ndarray, shape (H * W,)
        Flat float64 sums (float32 sums were tried: they lose ~1e-5 relative where the coverage
        is small, from cancellation, and change the results).

    Notes
    -----
    The numerator is one :func:`numpy.add.at` per chunk of the splatted crops (complex128, see
    :func:`_splat`). With uniform weights the denominator is a sum of four
    integer boxes per patch (weights ``(1-fy)(1-fx)``, ``(1-fy) fx``, ``fy (1-fx)``, ``fy fx``),
    accumulated as corner points of a difference array and integrated by two cumulative sums; an
    exact integer count of the boxes with non-zero weight keeps uncovered pixels at exactly 0.
    """
    h, wd = canvas_shape
    m = w.shape[0]
    kind = np.complex128 if np.iscomplexobj(flat) else np.float64
    pad_w = wd + 1  # padded canvas: the spill row/column (weight 0) of a crop never wraps
    num = np.zeros((h + 1) * pad_w, dtype=kind)
    local = (np.arange(m + 1)[:, None] * pad_w + np.arange(m + 1)[None, :]).ravel()
    uniform = bool(np.all(w == 1.0))
    den = np.zeros((h + 1) * pad_w)
    for lo in range(0, flat.shape[0], chunk):
        block = flat[lo:lo + chunk, start:start + m, start:start + m]
        base = np.floor(corner[lo:lo + chunk])
        frac = corner[lo:lo + chunk] - base
        idx = ((base[:, 1] * pad_w + base[:, 0]).astype(np.int64)[:, None] + local[None, :]).ravel()
        np.add.at(num, idx, _splat(block if uniform else block * w, frac, kind).ravel())
        if not uniform:
            np.add.at(den, idx, _splat(np.broadcast_to(w, block.shape), frac, np.float64).ravel())
    if uniform:
        den = _box_coverage(corner, m, (h + 1, pad_w))
    num = num.reshape(h + 1, pad_w)[:h, :wd]
    if not np.isfinite(num).all():
        _raise_non_finite(flat, start, m, chunk)
    den_cut = den.reshape(h + 1, pad_w)[:h, :wd].ravel()
    num_im = num.imag if np.iscomplexobj(num) else np.zeros_like(num)
    return np.ascontiguousarray(num.real).ravel(), np.ascontiguousarray(num_im).ravel(), den_cut


def _splat(values: np.ndarray, frac: np.ndarray, dtype: type) -> np.ndarray:
    """Bilinear splat of (k, M, M) values at fractional offsets (k, 2) -> (k, M+1, M+1) ``dtype``.

    Output pixel (a, b) receives the values at (a - fy, b - fx) with bilinear weights; the
    extra row/column is the spill of the fractional part (all zero when the fraction is 0).

    The crop is copied once into a zero-padded (k, M+1, M+1) buffer and every step works on
    its flattened rows (k, (M+1)^2): a shift by one column is a flat shift by 1 and a shift by
    one row a flat shift by M+1 (the padding is zero, so nothing wraps into a wrong pixel), so
    that each elementwise pass has a long contiguous inner loop.
    """
    k, m, _ = values.shape
    t = m + 1
    real = np.float32 if dtype in (np.complex64, np.float32) else np.float64
    out = np.zeros((k, t, t), dtype=dtype)
    out[:, :m, :m] = values
    flat = out.reshape(k, t * t)
    fx = frac[:, 0, None].astype(real)
    fy = frac[:, 1, None].astype(real)
    tmp = flat * fx
    flat -= tmp
    flat[:, 1:] += tmp[:, :-1]
    np.multiply(flat, fy, out=tmp)
    flat -= tmp
    flat[:, t:] += tmp[:, :-t]
    return out


def _box_coverage(corner: np.ndarray, m: int, shape: tuple[int, int]) -> np.ndarray:
    """Summed bilinear splats of uniform (M, M) crops, flat float64 of ``shape`` (H+1, W+1).

    The splat of a box of ones at fractional offset ``(fx, fy)`` is the sum of four integer
    ``M x M`` boxes at offsets (0, 0), (0, 1), (1, 0), (1, 1) with weights ``(1-fy)(1-fx)``,
    ``(1-fy) fx``, ``fy (1-fx)`` and ``fy fx``. Each box adds its weight at four corners of a
    difference array; two cumulative sums integrate it. Pixels that no box of non-zero weight
    covers (an exact integer count of the boxes) are exactly 0.
    """
    h, wd = shape
    base = np.floor(corner).astype(np.int64)
    fx, fy = (corner - base).T
    weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx])  # (4, n)
    dy = np.array([0, 0, 1, 1])[:, None, None]
    dx = np.array([0, 1, 0, 1])[:, None, None]
    cy = np.array([0, 0, m, m])[None, :, None]  # the four corners of a box, with their signs
    cx = np.array([0, m, 0, m])[None, :, None]
    sign = np.array([1, -1, -1, 1])[None, :, None]
    flat = ((base[:, 1] + dy + cy) * (wd + 1) + base[:, 0] + dx + cx).ravel()  # (4, 4, n)
    size = (h + 1) * (wd + 1)
    diff = np.bincount(flat, weights=(sign * weight[:, None, :]).ravel(), minlength=size)
    count = np.bincount(flat, weights=(sign * (weight[:, None, :] > 0)).ravel(), minlength=size)
    den = np.cumsum(np.cumsum(diff.reshape(h + 1, wd + 1), axis=0), axis=1)[:h, :wd]
    covered = np.cumsum(np.cumsum(count.reshape(h + 1, wd + 1), axis=0), axis=1)[:h, :wd] > 0.5
    return np.where(covered, den, 0.0).ravel()


def _raise_non_finite(flat: np.ndarray, start: int, m: int, chunk: int) -> None:
    """Locate the patches with NaN/inf in their crop and raise (only after a non-finite sum)."""
    for lo in range(0, flat.shape[0], chunk):
        block = flat[lo:lo + chunk, start:start + m, start:start + m]
        bad = int(np.count_nonzero(~np.isfinite(block).all(axis=(1, 2))))
        if bad:
            raise StitchError(f"patches must be finite; {bad} patch(es) in [{lo}, "
                              f"{lo + len(block)}) contain NaN/inf in their central crop")
    raise StitchError("the stitched sums overflowed (patch values too large for the accumulator "
                      f"precision {flat.dtype}); pass complex128 patches")


def _splat_adjoint(windows: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`_splat`: (k, M+1, M+1) windows at fractional offsets (k, 2) -> (k, M, M).

    Output pixel (a, b) reads the window at (a, b), (a, b+1), (a+1, b), (a+1, b+1) with the
    weights ``_splat`` gave those pixels: ``(1-fy)(1-fx)``, ``(1-fy) fx``, ``fy (1-fx)``, ``fy fx``.
    """
    fx = frac[:, 0, None, None]
    fy = frac[:, 1, None, None]
    along_y = (1.0 - fy) * windows[:, :-1, :] + fy * windows[:, 1:, :]
    return (1.0 - fx) * along_y[:, :, :-1] + fx * along_y[:, :, 1:]


def _finish(num_re: np.ndarray, num_im: np.ndarray, den: np.ndarray,
            canvas_shape: tuple[int, int], origin: np.ndarray, m: int, frame: str
            ) -> StitchResult:
    """Divide by the coverage, put NaN where nothing landed, and package the result."""
    covered = den > 0
    np.divide(num_re, den, out=num_re, where=covered)  # in place: no extra canvas-sized temps
    np.divide(num_im, den, out=num_im, where=covered)
    canvas = np.empty(den.shape, dtype=np.complex64)
    canvas.real = num_re
    canvas.imag = num_im
    canvas[~covered] = np.nan + 1j * np.nan
    arrays = (canvas.reshape(canvas_shape), den.astype(np.float32).reshape(canvas_shape),
              np.array(origin, dtype=np.float64))
    for a in arrays:
        a.setflags(write=False)
    return StitchResult(canvas=arrays[0], coverage=arrays[1], origin=arrays[2], crop=int(m),
                        frame=str(frame))
