"""``ptycho-dist bench simulate``: diffraction simulation throughput vs a bare FFT.

Workload: a 64 x 64 grid scan (4096 positions, step (392 - 64) / 63 px) over a 392 x 392 ``lines``
object, 64 x 64 normalized disk probe, nphotons = 1e9, Poisson noise. Both sides use every core
(``workers=-1``).

Records (``patterns_per_s``, greater is better):

* ``patterns_per_s`` of the full :func:`~ptycho_dist.physics.simulate_patterns` (patch extraction,
  exit waves, FFT, dose, Poisson draws) vs baseline ``fft_only``: one batched
  ``scipy.fft.fft2`` (+ ``np.abs``) of the same, precomputed exit waves (the best of a
  measurement before and one after the simulations);
* ``patterns_per_s_noise_free``: the same simulation without the Poisson draw vs the same
  baseline, which shows how much of the time the (exact) Poisson sampling takes;
* ``poisson_draws_per_s``: the exact Poisson draws alone (:func:`~ptycho_dist.physics.simulate.
  apply_dose` on precomputed intensities, every core) vs the same baseline. When this ratio is
  below 1, drawing the noise alone costs more than the FFT, and the full simulation cannot reach
  half the FFT-only throughput whatever the rest costs (it does at least an FFT plus the draws).

``quick=True`` uses a 16 x 16 grid (256 patterns) and one repeat, for tests.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft as sfft

from ptycho_dist.bench import BenchRecord, ratio_record, throughput
from ptycho_dist.physics import (
    apply_dose,
    disk_probe,
    extract_patches,
    grid_scan,
    lines_object,
    normalize_probe,
    simulate_patterns,
)

__all__ = ["run", "OBJECT_SIDE", "PROBE_SIZE", "NPHOTONS"]

OBJECT_SIDE = 392
PROBE_SIZE = 64
NPHOTONS = 1e9


def _workload(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object (392, 392), probe (64, 64) and a side x side grid of positions."""
    obj = lines_object((OBJECT_SIDE, OBJECT_SIDE), rng=0)
    probe, _ = normalize_probe(disk_probe(PROBE_SIZE))
    step = (OBJECT_SIDE - PROBE_SIZE) / (side - 1)
    positions = grid_scan((OBJECT_SIDE, OBJECT_SIDE), PROBE_SIZE, step=step)
    if len(positions) != side * side:  # pragma: no cover - guards the workload definition
        raise RuntimeError(f"grid scan gave {len(positions)} positions, expected {side * side}")
    return obj, probe, positions


def run(*, quick: bool = False) -> list[BenchRecord]:
    """Measure simulation and FFT-only throughput in the same run; see the module docstring."""
    side, repeats = (16, 1) if quick else (64, 3)
    obj, probe, positions = _workload(side)
    count = len(positions)
    psi = extract_patches(obj, positions, PROBE_SIZE) * probe

    def full() -> object:
        return simulate_patterns(obj, probe, positions, nphotons=NPHOTONS, rng=1, workers=-1)

    def noise_free() -> object:
        return simulate_patterns(obj, probe, positions, nphotons=NPHOTONS, noise=False, workers=-1)

    def fft_only() -> object:
        return np.abs(sfft.fft2(psi, workers=-1))

    intensity = simulate_patterns(obj, probe, positions, nphotons=NPHOTONS, noise=False,
                                  workers=-1).counts
    threads = os.cpu_count() or 1

    def draws_only() -> object:
        counts = intensity.copy()  # a memcpy, negligible next to the draws
        apply_dose(counts, 1.0, noise=True, rng=1, workers=threads)
        return counts

    first = throughput(fft_only, count, repeats=repeats)
    full_rate = throughput(full, count, repeats=repeats)
    noise_free_rate = throughput(noise_free, count, repeats=repeats)
    draws_rate = throughput(draws_only, count, repeats=repeats)
    baseline = max(first, throughput(fft_only, count, repeats=repeats))  # best of before/after
    return [
        ratio_record("simulate", "patterns_per_s", full_rate, "patterns/s", "fft_only", baseline),
        ratio_record("simulate", "patterns_per_s_noise_free", noise_free_rate, "patterns/s",
                     "fft_only", baseline),
        ratio_record("simulate", "poisson_draws_per_s", draws_rate, "patterns/s", "fft_only",
                     baseline),
    ]
