"""``ptycho-dist bench stitch``: scatter-add stitching vs the older dense canvas-per-patch code.

Workload: ``n`` complex64 patches of 64 x 64 at uniform random sub-pixel positions over a square
object (392 px; full patches inside it), central crop 20, uniform weights, object frame.

Baselines, measured in the same run:

``dense``
    The older algorithm: every cropped patch is zero-padded into its own canvas-sized array,
    shifted there (bilinear, :func:`scipy.ndimage.shift` ``order=1``, which for a sub-pixel shift
    is the same bilinear placement as :func:`ptycho_dist.stitching.stitch`), and the stack of
    canvases is summed, together with a stack of shifted ones for the normalization. The older
    code held all ``n`` canvases at once; to keep the benchmark within a workstation's memory we
    hold ``dense_batch`` at a time, which *understates* the baseline's memory.
``dense-loop``
    The older code's later variant that keeps one canvas per patch alive at a time (memory of a
    few canvases, same speed as ``dense``). Reported for peak memory only, so that users see the
    honest comparison: ours holds canvas-sized float64 accumulators and is not smaller than it.

``floor``
    A numpy copy of the same cropped windows (``patches[:, s:s+M, s:s+M].copy()``), the least any
    stitching must do: read every cropped pixel once. Reported as bytes moved per second (the
    cropped input, ``n * M^2 * itemsize``, over the wall time) for both, so that the ratio is the
    fraction of the copy's speed that stitching reaches (``bytes_per_s``; target >= 0.3 at
    4,000 patches of 64^2, crop 20). Stitch and copy are measured in alternating rounds, best of
    each kept, so that a busy machine affects both alike.

The dense baselines are slow (about one full-canvas shift per patch), so their throughput and
memory are measured on the first ``n_dense`` patches; both are per-patch-linear (throughput) or
batch-bound (memory), so the figures carry over to ``n`` patches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ptycho_dist.bench import BenchRecord, peak_memory, ratio_record, throughput
from ptycho_dist.stitching import stitch

__all__ = ["run", "StitchWorkload", "make_workload", "dense_stitch"]

BENCH = "stitch"


@dataclass(frozen=True)
class StitchWorkload:
    """Patches (n, N, N) complex64, positions (n, 2) float64 (x, y), object side and crop."""

    patches: np.ndarray
    positions: np.ndarray
    object_side: int
    crop: int


def make_workload(n: int, *, patch: int = 64, object_side: int = 392, crop: int = 20,
                  rng: np.random.Generator | int | None = 0) -> StitchWorkload:
    """Random complex patches at uniform sub-pixel positions keeping whole patches inside."""
    gen = np.random.default_rng(rng)
    shape = (n, patch, patch)
    patches = (gen.standard_normal(shape, dtype=np.float32)
               + 1j * gen.standard_normal(shape, dtype=np.float32)).astype(np.complex64)
    lo, hi = patch // 2, object_side - patch // 2 - 1
    positions = gen.uniform(lo, hi, size=(n, 2))
    return StitchWorkload(patches, positions, object_side, crop)


def dense_stitch(patches: np.ndarray, positions: np.ndarray, *, crop: int,
                 shape: tuple[int, int], batch: int | None = None) -> np.ndarray:
    """The older algorithm: one canvas-sized array per patch, shifted, then summed.

    Parameters
    ----------
    patches : numpy.ndarray, complex64 (n, N, N)
    positions : numpy.ndarray, float64 (n, 2), (x, y) object pixels, footprints inside ``shape``
    crop : int
        Central crop ``M``.
    shape : tuple of int
        Canvas ``(H, W)``.
    batch : int or None
        Canvases alive at once (``None``: all ``n``, as in the older code; ``1``: the loop form).

    Returns
    -------
    numpy.ndarray, complex64 (H, W)
        Weighted average, NaN where nothing landed (same definition as ``stitch``).
    """
    n, size = patches.shape[0], patches.shape[-1]
    start = size // 2 - crop // 2
    batch = n if batch is None else batch
    total = np.zeros(shape, dtype=np.complex64)
    weight = np.zeros(shape, dtype=np.float32)
    for lo in range(0, n, batch):
        stack = np.zeros((min(batch, n - lo),) + tuple(shape), dtype=np.complex64)
        ones = np.zeros(stack.shape, dtype=np.float32)
        for j in range(stack.shape[0]):
            corner = positions[lo + j] - crop // 2
            base = np.floor(corner).astype(int)
            frac = (corner[1] - base[1], corner[0] - base[0])
            region = (slice(base[1], base[1] + crop), slice(base[0], base[0] + crop))
            stack[j][region] = patches[lo + j, start:start + crop, start:start + crop]
            ones[j][region] = 1.0
            stack[j] = ndimage.shift(stack[j], frac, order=1, mode="constant", cval=0.0)
            ones[j] = ndimage.shift(ones[j], frac, order=1, mode="constant", cval=0.0)
        total += stack.sum(axis=0)
        weight += ones.sum(axis=0)
        del stack, ones
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 1e-6, total / weight, np.nan).astype(np.complex64)


def run(*, quick: bool = False) -> list[BenchRecord]:
    """Measure patches/s and peak memory of ``stitch`` and the dense baselines.

    ``quick=True`` (tests) uses 256 patches on a 128-px object; the full run uses 4096 patches on
    a 392-px object (about a minute on one core, dominated by the dense baseline).
    """
    n, side, n_dense, dense_batch = (256, 128, 64, 32) if quick else (4096, 392, 512, 256)
    work = make_workload(n, object_side=side)
    shape = (side, side)

    def ours() -> object:
        return stitch(work.patches, work.positions, crop=work.crop, shape=shape)

    def dense(batch: int | None) -> object:
        return dense_stitch(work.patches[:n_dense], work.positions[:n_dense], crop=work.crop,
                            shape=shape, batch=batch)

    _check_agreement(work, shape, n_dense)
    moved, stitch_bps, floor_bps = _bytes_against_floor(work, ours, rounds=2 if quick else 5)
    ours_rate = throughput(ours, n)
    ours_peak = peak_memory(ours)
    dense_rate = throughput(lambda: dense(dense_batch), n_dense, repeats=1, warmup=0)
    dense_peak = peak_memory(lambda: dense(dense_batch))
    loop_peak = peak_memory(lambda: dense(1))
    label = f"dense canvas per patch ({side}x{side}, {dense_batch} alive)"
    return [
        ratio_record(BENCH, "patches_per_s", ours_rate, "patches/s", label, dense_rate),
        ratio_record(BENCH, "peak_bytes", ours_peak, "bytes", label, dense_peak,
                     higher_is_better=False),
        ratio_record(BENCH, "peak_bytes", ours_peak, "bytes",
                     f"dense-loop (one {side}x{side} canvas alive)", loop_peak,
                     higher_is_better=False),
        ratio_record(BENCH, "bytes_per_s", stitch_bps, "bytes/s",
                     f"floor: numpy copy of the {n} cropped {work.crop}x{work.crop} windows "
                     f"({moved} bytes)", floor_bps),
    ]


def _bytes_against_floor(work: StitchWorkload, ours: Callable[[], object], *, rounds: int
                         ) -> tuple[int, float, float]:
    """Bytes of the cropped windows and bytes/s of ``ours`` and of their numpy copy (same run)."""
    size, m = work.patches.shape[-1], work.crop
    s = size // 2 - m // 2
    moved = int(work.patches.shape[0] * m * m * work.patches.itemsize)

    def floor() -> object:
        return work.patches[:, s:s + m, s:s + m].copy()

    stitch_bps = floor_bps = 0.0
    for _ in range(rounds):
        stitch_bps = max(stitch_bps, throughput(ours, moved, repeats=1))
        floor_bps = max(floor_bps, throughput(floor, moved, repeats=3))
    return moved, stitch_bps, floor_bps


def _check_agreement(work: StitchWorkload, shape: tuple[int, int], n_dense: int) -> None:
    """Both algorithms must produce the same canvas (else the comparison is meaningless)."""
    mine = stitch(work.patches[:n_dense], work.positions[:n_dense], crop=work.crop, shape=shape)
    ref = dense_stitch(work.patches[:n_dense], work.positions[:n_dense], crop=work.crop,
                       shape=shape, batch=n_dense)
    both = np.isfinite(mine.canvas) & np.isfinite(ref)
    # the dense form divides by interpolated ones in float32: compare where weight is sizeable
    both &= mine.coverage > 1e-3
    err = float(np.max(np.abs(mine.canvas[both] - ref[both]))) if both.any() else np.inf
    if not err < 1e-3:
        raise RuntimeError(f"stitch and the dense baseline disagree (max |diff| = {err:.3g})")
