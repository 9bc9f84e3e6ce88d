"""Simulation and stitching on torch devices (CUDA when a task has a GPU), numpy otherwise.

The numpy implementations (:func:`ptycho_dist.physics.simulate_patterns`,
:func:`ptycho_dist.stitching.stitch`) stay the reference; the torch paths here compute the same
quantities for the same inputs:

* :func:`simulate_on` -- patch extraction in numpy (cheap, exact), then exit waves, the centred
  FFT, the dose and the Poisson draws as torch ops on ``device``. Expected counts agree with the
  numpy path within float32 tolerance; Poisson counts have the same distribution (torch's
  generator, seeded from ``rng``), not the same bits.
* :func:`stitch_on` -- the object-frame stitch (bilinear splat + ``index_add_``) on ``device``,
  float64 accumulation like the numpy path.

Which path runs is a pure function of an explicit argument: :func:`resolve_device` maps a
requested device (``"auto"``, ``"numpy"``, ``"cpu"``, ``"cuda"``) and what the task was given
(Ray's ``ray.get_gpu_ids()``, ``torch.cuda.is_available()``) to the path; nothing is read from
global state. torch is imported lazily, so the numpy path never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from ptycho_dist.errors import PhysicsError, StitchError
from ptycho_dist.physics import extract_patches
from ptycho_dist.physics.dose import scale_from_mean_energy
from ptycho_dist.physics.forward import centered_fft_factor
from ptycho_dist.physics.simulate import SimResult
from ptycho_dist.stitching import StitchResult, object_layout

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Device", "resolve_device", "simulate_on", "stitch_on"]

Device = Literal["numpy", "cpu", "cuda"]
_REQUESTS = ("auto", "numpy", "cpu", "cuda")


def resolve_device(requested: str, *, gpu_ids: Sequence[object] = (), cuda_available: bool = False
                   ) -> Device:
    """The compute path for a task: ``"cuda"`` with a GPU, else numpy (or what was asked).

    Parameters
    ----------
    requested : {"auto", "numpy", "cpu", "cuda"}
        ``"auto"``: ``"cuda"`` when the task was given a GPU (``gpu_ids`` non-empty) and torch
        sees CUDA, else ``"numpy"``. ``"cpu"`` is the torch path on the CPU (tests, smoke runs).
    gpu_ids : sequence
        GPUs Ray gave the task (``ray.get_gpu_ids()``).
    cuda_available : bool
        ``torch.cuda.is_available()`` in the task's process.

    Returns
    -------
    {"numpy", "cpu", "cuda"}

    Raises
    ------
    ValueError
        Unknown request, or ``"cuda"`` asked for where no GPU is available.
    """
    if requested not in _REQUESTS:
        raise ValueError(f"device must be one of {_REQUESTS}, got {requested!r}")
    if requested == "auto":
        return "cuda" if (len(gpu_ids) > 0 and cuda_available) else "numpy"
    if requested == "cuda" and not cuda_available:
        raise ValueError("device='cuda' was requested but torch sees no CUDA device")
    return requested  # type: ignore[return-value]


def _generator(rng: np.random.Generator | int | None, device: str) -> torch.Generator:
    import torch

    seed = int(np.random.default_rng(rng).integers(2**63))
    return torch.Generator(device=device).manual_seed(seed)


def simulate_on(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray, *, nphotons: float,
                device: Device, noise: bool = True, rng: np.random.Generator | int | None = None,
                batch_size: int = 1024) -> SimResult:
    """:func:`ptycho_dist.physics.simulate_patterns` with the FFT and Poisson draws on ``device``.

    ``psi_k = P * O_k``; ``I_k = |fftshift(fft2(psi_k))|^2 / N^2``;
    ``s^2 = nphotons / mean_k sum I_k``; ``C_k ~ Poisson(s^2 I_k)`` (PHYSICS.md "Forward model").

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape (H, W)
    probe : numpy.ndarray, complex, shape (N, N)
    positions : numpy.ndarray, float, shape (k, 2)
        Probe-centre positions (x, y); bilinear patch extraction.
    nphotons : float
        Mean total count per pattern, > 0.
    device : {"numpy", "cpu", "cuda"}
        ``"numpy"`` calls the numpy reference; otherwise the torch device.
    noise : bool
        Poisson counts (True) or expected counts.
    rng : Generator, int or None
        Seeds the (torch) Poisson generator.
    batch_size : int
        Patterns per device batch (bounds device memory, about 24 N^2 bytes per pattern).

    Returns
    -------
    SimResult
        counts float32 (k, N, N), truth_patches complex64 (k, N, N), as the numpy path.
    """
    if device == "numpy":
        from ptycho_dist.physics import simulate_patterns

        return simulate_patterns(obj, probe, positions, nphotons=nphotons, noise=noise, rng=rng)
    import torch

    if not (np.isfinite(nphotons) and nphotons > 0):
        raise PhysicsError(f"nphotons must be finite and > 0, got {nphotons!r}")
    p = np.asarray(probe)
    n = p.shape[0]
    truth = extract_patches(obj, positions, n).astype(np.complex64)
    probe_t = torch.from_numpy((p * centered_fft_factor(n)).astype(np.complex64)).to(device)
    intensity = torch.empty((len(truth), n, n), dtype=torch.float32, device=device)
    for a in range(0, len(truth), batch_size):
        spectrum = torch.fft.fft2(torch.from_numpy(truth[a:a + batch_size]).to(device) * probe_t)
        intensity[a:a + batch_size] = spectrum.real.square() + spectrum.imag.square()
    energy = intensity.sum(dim=(1, 2), dtype=torch.float64)
    scale = scale_from_mean_energy(float(energy.mean()), nphotons=float(nphotons))
    expected = intensity.mul_(scale * scale)
    counts = torch.poisson(expected, generator=_generator(rng, device)) if noise else expected
    counts_np = counts.cpu().numpy().astype(np.float32, copy=False)
    mean_total = float(counts_np.sum(axis=(1, 2), dtype=np.float64).mean())
    return SimResult(counts_np, scale, truth, mean_total, float(nphotons), bool(noise))


def _splat(values: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Bilinear splat (k, M, M) -> (k, M+1, M+1) at fractional offsets (k, 2) (x, y)."""
    import torch

    k, m, _ = values.shape
    out = torch.zeros((k, m + 1, m + 1), dtype=values.dtype, device=values.device)
    out[:, :m, :m] = values
    fx = frac[:, 0, None, None].to(values.real.dtype if values.is_complex() else values.dtype)
    fy = frac[:, 1, None, None].to(fx.dtype)
    along_x = out * (1 - fx)
    along_x[:, :, 1:] += out[:, :, :-1] * fx
    res = along_x * (1 - fy)
    res[:, 1:, :] += along_x[:, :-1, :] * fy
    return res


def stitch_on(patches: np.ndarray, positions: np.ndarray, *, device: Device, crop: int | None = 20,
              shape: tuple[int, int] | None = None, weights: np.ndarray | None = None,
              chunk_size: int = 4096) -> StitchResult:
    """:func:`ptycho_dist.stitching.stitch` (object frame) with the accumulation on ``device``.

    Parameters
    ----------
    patches : numpy.ndarray, complex, shape (n, N, N) or (B, C, N, N)
    positions : numpy.ndarray, float, shape (n, 2) or (B, C, 2)
    device : {"numpy", "cpu", "cuda"}
        ``"numpy"`` calls :func:`~ptycho_dist.stitching.stitch`.
    crop, shape, weights
        As in :func:`~ptycho_dist.stitching.stitch` (``weights``: None or a real (N, N) array).
    chunk_size : int
        Patches per device step.

    Returns
    -------
    StitchResult
        canvas complex64 (H', W') (NaN where uncovered), coverage float32, origin float64 (2,).
    """
    from ptycho_dist.stitching import stitch

    if device == "numpy":
        return stitch(patches, positions, crop=crop, shape=shape, weights=weights)
    import torch

    flat, corner, start, m, origin, (h, wd) = object_layout(patches, positions, crop=crop, shape=shape)
    if not np.isfinite(flat[:, start:start + m, start:start + m]).all():
        raise StitchError("patches must be finite; NaN/inf in a central crop")
    w_np = np.ones((m, m)) if weights is None else np.asarray(weights, np.float64)[start:start + m, start:start + m]
    w = torch.from_numpy(w_np).to(device)
    pad_w = wd + 1
    num = torch.zeros((h + 1) * pad_w, dtype=torch.complex128, device=device)
    den = torch.zeros((h + 1) * pad_w, dtype=torch.float64, device=device)
    local = (torch.arange(m + 1)[:, None] * pad_w + torch.arange(m + 1)[None, :]).reshape(-1).to(device)
    for lo in range(0, len(flat), chunk_size):
        block = torch.from_numpy(np.ascontiguousarray(flat[lo:lo + chunk_size, start:start + m, start:start + m]))
        block = block.to(device=device, dtype=torch.complex128)
        c = torch.from_numpy(corner[lo:lo + chunk_size]).to(device)
        base = torch.floor(c)
        idx = ((base[:, 1] * pad_w + base[:, 0]).long()[:, None] + local[None, :]).reshape(-1)
        num.index_add_(0, idx, _splat(block * w, c - base).reshape(-1))
        den.index_add_(0, idx, _splat(w.expand(block.shape[0], m, m), c - base).reshape(-1))
    num_c = num.reshape(h + 1, pad_w)[:h, :wd]
    den_c = den.reshape(h + 1, pad_w)[:h, :wd]
    covered = den_c > 0
    canvas = torch.where(covered, num_c / torch.where(covered, den_c, 1.0),
                         torch.full_like(num_c, complex(np.nan, np.nan)))
    out = (canvas.to(torch.complex64).cpu().numpy(), den_c.to(torch.float32).cpu().numpy(),
           np.array(origin, dtype=np.float64))
    for a in out:
        a.setflags(write=False)
    return StitchResult(canvas=out[0], coverage=out[1], origin=out[2], crop=int(m), frame="object")
