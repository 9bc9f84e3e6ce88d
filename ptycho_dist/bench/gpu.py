"""``ptycho-dist bench gpu``: every GPU path against its same-run baseline, one JSON.

Sections (each a list of :class:`~ptycho_dist.bench.BenchRecord` dicts, ratio > 1 = faster):

``simulate``
    :func:`~ptycho_dist.models.device.simulate_on` on the device (FFT and Poisson draws) vs the
    numpy :func:`~ptycho_dist.physics.simulate_patterns` (every core), patterns/s; 64 x 64 grid
    scan, N = 64, nphotons 1e9 (the ``bench simulate`` workload).
``stitch``
    :func:`~ptycho_dist.models.device.stitch_on` vs the numpy :func:`~ptycho_dist.stitching.stitch`,
    patches/s; 4,000 patches of 64^2, crop 20 (the ``bench stitch`` workload).
``train``
    One epoch of :func:`~ptycho_dist.models.torch.train.train_pinn` with ``training.precision =
    "bf16-mixed"`` and ``model.channels_last`` vs float32, samples/s; N = 64, the reference width
    (filters (64, 128, 256)), batch 16, 128 groups.
``infer``
    :func:`~ptycho_dist.models.torch.multi.infer_many` over 4 bundles vs
    :func:`~ptycho_dist.models.torch.train.infer_pinn` per bundle, one after the other, samples/s.

``quick=True`` shrinks every workload (N = 32, small filters, a few hundred items; a smoke test
whose figures mean nothing). Without a GPU, the default device ``"auto"`` refuses to run
(:class:`NoGpuError`, saying so); ``device="cpu"`` runs the torch paths on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ptycho_dist.bench import BenchRecord, ratio_record, throughput
from ptycho_dist.models.device import Device

__all__ = ["run_gpu", "NoGpuError", "SECTIONS"]

SECTIONS = ("simulate", "stitch", "train", "infer")


class NoGpuError(RuntimeError):
    """``bench gpu`` on a machine where torch sees no CUDA device (and no ``--device cpu``)."""


def run_gpu(*, device: str = "auto", quick: bool = False) -> dict[str, Any]:
    """Run every GPU benchmark on ``device`` and return the JSON document.

    Parameters
    ----------
    device : {"auto", "cuda", "cpu"}
        ``"auto"``: CUDA when torch sees it, else :class:`NoGpuError`.
    quick : bool
        Small workloads (smoke test).

    Returns
    -------
    dict
        ``device``, ``gpu`` (bool), ``gpu_name``, ``quick``, ``seconds`` and one list of record
        dicts per name in :data:`SECTIONS`.
    """
    import torch

    cuda = torch.cuda.is_available()
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    if device in ("auto", "cuda") and not cuda:
        raise NoGpuError("bench gpu: torch sees no CUDA device on this machine, so no GPU figure "
                         "can be measured; run `ptycho-dist bench gpu --device cpu --quick` for a "
                         "smoke test of the torch paths on the CPU")
    dev: Device = "cpu" if device == "cpu" else "cuda"
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"device": dev, "gpu": dev == "cuda",
                           "gpu_name": torch.cuda.get_device_name(0) if dev == "cuda" else None,
                           "quick": bool(quick)}
    for name, fn in (("simulate", _simulate), ("stitch", _stitch), ("train", _train),
                     ("infer", _infer)):
        doc[name] = [r.to_dict() for r in fn(dev, quick)]
    doc["seconds"] = time.perf_counter() - t0
    return doc


def _simulate(dev: Device, quick: bool) -> list[BenchRecord]:
    from ptycho_dist import physics
    from ptycho_dist.models.device import simulate_on

    side, n, obj_side = (8, 32, 128) if quick else (64, 64, 392)
    obj = physics.lines_object((obj_side, obj_side), rng=0)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    pos = physics.grid_scan(obj.shape, n, step=(obj_side - n) / (side - 1))
    count = len(pos)
    simulate_on(obj, probe, pos, nphotons=1e9, rng=1, device=dev)  # warm-up (CUDA context, plans)

    def ours() -> object:
        return simulate_on(obj, probe, pos, nphotons=1e9, rng=1, device=dev)

    def numpy_path() -> object:
        return physics.simulate_patterns(obj, probe, pos, nphotons=1e9, rng=1, workers=-1)

    rate, base = _alternate(ours, numpy_path, count, rounds=1 if quick else 3)
    return [ratio_record("gpu.simulate", "patterns_per_s", rate, "patterns/s",
                         f"numpy simulate_patterns (all cores), {count} x {n}^2", base)]


def _stitch(dev: Device, quick: bool) -> list[BenchRecord]:
    from ptycho_dist.bench.stitch import make_workload
    from ptycho_dist.models.device import stitch_on
    from ptycho_dist.stitching import stitch

    count, side = (256, 128) if quick else (4000, 392)
    work = make_workload(count, object_side=side)
    shape = (side, side)
    stitch_on(work.patches, work.positions, crop=work.crop, shape=shape, device=dev)  # warm-up

    def ours() -> object:
        return stitch_on(work.patches, work.positions, crop=work.crop, shape=shape, device=dev)

    def numpy_path() -> object:
        return stitch(work.patches, work.positions, crop=work.crop, shape=shape)

    rate, base = _alternate(ours, numpy_path, count, rounds=1 if quick else 3)
    return [ratio_record("gpu.stitch", "patches_per_s", rate, "patches/s",
                         f"numpy stitch, {count} x 64^2, crop {work.crop}", base)]


def _train_setup(quick: bool) -> tuple[Any, dict[str, Any]]:
    from ptycho_dist.bench.train import bench_data

    if quick:
        return bench_data(32, 32, rng=0), {"n": 32, "filters": (8, 16)}
    return bench_data(64, 128, rng=0), {"n": 64}  # filters None: the reference width (64, 128, 256)


def _train(dev: Device, quick: bool) -> list[BenchRecord]:
    from ptycho_dist.models import PinnConfig
    from ptycho_dist.models.torch.train import train_pinn

    data, arch = _train_setup(quick)
    accel = "gpu" if dev == "cuda" else "cpu"
    epochs = 2 if quick else 3
    fp32 = PinnConfig(**arch, batch_size=16, epochs=epochs, val_fraction=0.0)
    fast = PinnConfig(**arch, batch_size=16, epochs=epochs, val_fraction=0.0,
                      precision="bf16-mixed", channels_last=True)
    n = data.counts.shape[0]

    def rate(cfg: PinnConfig) -> float:
        history = train_pinn(data, cfg, seed=0, accelerator=accel).history
        return n / min(row["seconds"] for row in history[1:] or history)

    base, ours = rate(fp32), rate(fast)
    return [ratio_record("gpu.train", "train_samples_per_s", ours, "samples/s",
                         f"float32, channels-first (N = {fp32.n}, filters {fp32.filters}, batch 16)",
                         base)]


def _infer(dev: Device, quick: bool) -> list[BenchRecord]:
    import torch

    from ptycho_dist.models import PinnConfig
    from ptycho_dist.models.torch.multi import InferRequest, infer_many
    from ptycho_dist.models.torch.net import PinnNet, export_weights
    from ptycho_dist.models.torch.train import infer_pinn

    data, arch = _train_setup(quick)
    cfg = PinnConfig(**arch, batch_size=16, epochs=1, val_fraction=0.0)
    reqs = []
    for k in range(4):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            net = PinnNet(cfg, data.probe, log_scale=float(np.log(data.scale)))
        reqs.append(InferRequest(export_weights(net), cfg, data.counts, data.scale, data.probe,
                                 data.relative, norm_factor=1.0, log_scale=float(np.log(data.scale))))
    total = sum(r.counts.shape[0] for r in reqs)

    def batched() -> object:
        return infer_many(reqs, device=dev, batch_size=64)

    def one_by_one() -> object:
        return [infer_pinn(r.weights, r.config, counts=r.counts, scale=r.scale, probe=r.probe,
                           relative=r.relative, norm_factor=r.norm_factor, log_scale=r.log_scale,
                           batch_size=64, device=dev) for r in reqs]

    batched()
    rate, base = _alternate(batched, one_by_one, total, rounds=1 if quick else 3)
    return [ratio_record("gpu.infer", "infer_samples_per_s", rate, "samples/s",
                         f"infer_pinn per bundle, {len(reqs)} bundles one after the other", base)]


def _alternate(ours: Callable[[], object], base: Callable[[], object], items: int, *,
               rounds: int) -> tuple[float, float]:
    """Best items/s of ``ours`` and ``base`` over alternating rounds (a busy machine hits both)."""
    a = b = 0.0
    for _ in range(rounds):
        a = max(a, throughput(ours, items, repeats=1, warmup=0))
        b = max(b, throughput(base, items, repeats=1, warmup=0))
    return a, b
