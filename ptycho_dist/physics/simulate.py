"""Diffraction simulation, end to end (pure composite used by the ``simulate`` pipeline stage).

``simulate_patterns`` = :func:`~ptycho_dist.physics.forward.extract_patches` ->
:func:`~ptycho_dist.physics.forward.exit_waves` ->
:func:`~ptycho_dist.physics.forward.far_field_intensity` ->
:func:`~ptycho_dist.physics.dose.dose_scale` -> Poisson counts, computed batch by batch so that no
temporary larger than one batch is made, and optionally on several threads. The centring
``fftshift`` and the 1/N of the orthonormal transform are folded into the probe once
(:func:`~ptycho_dist.physics.forward.centered_fft_factor`); a test pins that the result equals
the step-by-step functions.

Reproducibility: the Poisson draws of patterns ``[64 b, 64 b + 64)`` use the ``b``-th child of a
``SeedSequence`` seeded from ``rng``, so counts depend on ``rng`` only, not on ``batch_size`` or
``workers``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics._checks import as_finite_array, check_positive, check_power_of_two
from ptycho_dist.physics.dose import POISSON_LAM_MAX, scale_from_mean_energy
from ptycho_dist.physics.forward import (
    INTERPOLATIONS,
    Interpolation,
    centered_fft_factor,
    fill_patches,
    patch_source,
)
from ptycho_dist.physics.scans import check_scan_fits

__all__ = ["SimResult", "simulate_patterns", "apply_dose", "RNG_BLOCK"]

#: patterns per independent Poisson stream (fixed, so results do not depend on batching)
RNG_BLOCK = 64


@dataclass(frozen=True)
class SimResult:
    """Output of :func:`simulate_patterns`.

    Attributes
    ----------
    counts : ndarray, float32, shape (k, N, N)
        Poisson counts (or expected counts ``s^2 I`` when ``noise`` is False), zero frequency at
        pixel (N//2, N//2).
    scale : float
        Intensity scale ``s`` (``s^2 = nphotons / mean_k sum |psi_k|^2``).
    truth_patches : ndarray, complex64, shape (k, N, N)
        Object patches ``O_k`` under each position.
    mean_total_counts : float
        ``mean_k sum_pixels counts_k`` (float64 accumulation).
    nphotons : float
        The requested mean total count per pattern.
    noise : bool
        Whether ``counts`` are Poisson draws.
    """

    counts: np.ndarray
    scale: float
    truth_patches: np.ndarray
    mean_total_counts: float
    nphotons: float
    noise: bool

    def model_amplitude(self) -> np.ndarray:
        """``sqrt(counts) / scale``, the amplitude the model sees; float32 (k, N, N)."""
        return (np.sqrt(self.counts) / np.float32(self.scale)).astype(np.float32)


def _check_inputs(obj: object, probe: object, positions: object,
                  interpolation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if interpolation not in INTERPOLATIONS:
        raise PhysicsError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    o = as_finite_array(obj, name="object", ndim=2).astype(np.complex64, copy=False)
    p = as_finite_array(probe, name="probe", ndim=2).astype(np.complex64, copy=False)
    if p.shape[0] != p.shape[1]:
        raise PhysicsError(f"probe must be square (N, N), got shape {p.shape}")
    n = check_power_of_two(p.shape[0])
    return o, p, check_scan_fits(positions, o.shape, n)


def _thread_map(fn: Callable[[tuple[int, int]], None], spans: Sequence[tuple[int, int]],
                workers: int) -> None:
    if workers == 1 or len(spans) == 1:
        for span in spans:
            fn(span)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, spans))  # list() re-raises the first exception


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, total)) for a in range(0, total, size)]


def _resolve_workers(workers: int) -> int:
    if workers == -1:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise PhysicsError(f"workers must be an integer >= 1 or -1 (all cores), got {workers!r}")
    return int(workers)


def simulate_patterns(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray, *,
                      nphotons: float, noise: bool = True,
                      interpolation: Interpolation = "bilinear",
                      rng: np.random.Generator | int | None = None, batch_size: int = 256,
                      workers: int = 1) -> SimResult:
    """Simulate diffraction counts for a scan (PHYSICS.md "Forward model" and "Dose").

    ``psi_k = P * O_k``; ``I_k = |fftshift(fft2(psi_k))|^2 / N^2``;
    ``s^2 = nphotons / mean_k sum I_k``; ``C_k ~ Poisson(s^2 I_k)``.

    Parameters
    ----------
    obj : ndarray, complex, shape (H, W)
        Finite object.
    probe : ndarray, complex, shape (N, N)
        Probe, N a power of two (already normalized, see ``normalize_probe``).
    positions : ndarray, float, shape (k, 2)
        Probe-centre positions (x, y); every patch inside the object.
    nphotons : float
        Mean total count per pattern, > 0.
    noise : bool
        Poisson counts (True) or expected counts ``s^2 I``.
    interpolation : {"bilinear", "fourier"}
        Sub-pixel patch extraction.
    rng : Generator, int or None
        Random source for the Poisson draws.
    batch_size : int
        Patterns per work unit (bounds temporary memory to about 16 * N^2 * batch_size bytes per
        thread).
    workers : int
        Threads (``-1`` = all cores). Results do not depend on it.

    Returns
    -------
    SimResult
    """
    o, p, pos = _check_inputs(obj, probe, positions, interpolation)
    photons = check_positive(nphotons, name="nphotons")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise PhysicsError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    threads, n, k = _resolve_workers(workers), p.shape[0], len(pos)
    truth = np.empty((k, n, n), dtype=np.complex64)
    counts = np.empty((k, n, n), dtype=np.float32)
    energy = np.empty(k, dtype=np.float64)
    probe_c = (p * centered_fft_factor(n)).astype(np.complex64)
    source = patch_source(o, n, interpolation)

    def forward(span: tuple[int, int]) -> None:
        a, b = span
        fill_patches(source, pos[a:b], n, truth[a:b], interpolation=interpolation)
        spectrum = sfft.fft2(truth[a:b] * probe_c, overwrite_x=True, workers=1)
        np.square(spectrum.real, out=counts[a:b])
        counts[a:b] += np.square(spectrum.imag)
        energy[a:b] = counts[a:b].sum(axis=(1, 2), dtype=np.float64)

    _thread_map(forward, _spans(k, int(batch_size)), threads)
    scale = scale_from_mean_energy(float(energy.mean()), nphotons=photons)
    apply_dose(counts, scale * scale, noise=noise, rng=rng, workers=threads)
    mean_total = float(counts.sum(axis=(1, 2), dtype=np.float64).mean())
    return SimResult(counts, scale, truth, mean_total, photons, bool(noise))


def apply_dose(counts: np.ndarray, s2: float, *, noise: bool,
               rng: np.random.Generator | int | None, workers: int = 1) -> None:
    """Replace intensities in ``counts`` (in place) by Poisson(s2 * I) or s2 * I.

    Parameters
    ----------
    counts : ndarray, float32, shape (k, N, N)
        Far-field intensities ``I`` on entry; counts on return.
    s2 : float
        Squared intensity scale ``s^2``.
    noise : bool
        Exact Poisson draws (numpy ``Generator.poisson``) or the expected counts.
    rng : Generator, int or None
        Random source; patterns ``[64 b, 64 b + 64)`` use the ``b``-th spawned stream.
    workers : int
        Threads (already resolved, >= 1).
    """
    if not noise:
        counts *= np.float32(s2)
        return
    peak = s2 * float(counts.max())
    if peak > POISSON_LAM_MAX:
        raise PhysicsError(f"expected counts up to {peak:.3g} exceed the Poisson sampler's limit "
                           f"{POISSON_LAM_MAX:.3g}; lower nphotons")
    spans = _spans(len(counts), RNG_BLOCK)
    seed = int(np.random.default_rng(rng).integers(2**63))
    children = np.random.SeedSequence(seed).spawn(len(spans))

    def draw(span: tuple[int, int]) -> None:
        a, b = span
        gen = np.random.default_rng(children[a // RNG_BLOCK])
        counts[a:b] = gen.poisson(s2 * counts[a:b].astype(np.float64))

    _thread_map(draw, spans, workers)
