"""``ptycho-dist bench train``: PINN training and inference throughput (PyTorch backend).

Figures, in samples (groups) per second, at N = 64, batch 16, gridsize 1, default filters, on the
GPU when torch sees one, else on the CPU:

* ``train_samples_per_s``: one epoch of :func:`~ptycho_dist.models.torch.train.train_pinn`
  (Lightning; best epoch after the first) vs one epoch of an eager PyTorch loop of the same model,
  loss, optimizer and batch size.
* ``infer_samples_per_s``: :func:`~ptycho_dist.models.torch.train.infer_pinn` (weights import,
  normalization, batched inference) vs an eager ``no_grad`` loop over the same batches.

``quick=True`` uses N = 32, filters (8, 16) and 32 groups (seconds, for tests).
The data come from the package's physics and grouping (:func:`bench_data`): a lines object, the
default disk probe with the PHYSICS.md normalization, a raster scan, Poisson counts and
single-position groups, as a study's simulate and group stages make them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ptycho_dist import grouping, physics
from ptycho_dist.bench import BenchRecord, ratio_record, throughput
from ptycho_dist.models import PinnConfig, TrainData, normalized_inputs
from ptycho_dist.models.data import initial_log_scale

__all__ = ["run", "bench_data"]

BENCH = "train"


def bench_data(n: int, n_groups: int, *, nphotons: float = 1e6,
               rng: np.random.Generator | int | None = None) -> TrainData:
    """Training data of the benchmark, simulated with :mod:`ptycho_dist.physics`.

    A (3N, 3N) lines object (100 segments), ``disk_probe(n)`` normalized with ``probe_scale`` 4,
    a raster scan with step N/8 (17 x 17 = 289 positions), ``simulate_patterns`` with Poisson
    noise at ``nphotons``, and ``n_groups`` single-position groups (gridsize 1) drawn by
    :func:`ptycho_dist.grouping.group_positions`.

    Parameters
    ----------
    n : int
        Patch side N (a power of two).
    n_groups : int
        Number of groups B (at most 289).
    nphotons : float
        Mean total counts per pattern.
    rng : Generator, int or None
        Random source of the object, the counts and the groups.

    Returns
    -------
    TrainData
        counts float32 (B, 1, N, N), probe complex64 (N, N), relative float64 (B, 1, 2) (zeros).
    """
    gen = np.random.default_rng(rng)
    obj = physics.lines_object((3 * n, 3 * n), n_lines=100, rng=gen)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    positions = physics.grid_scan(obj.shape, n, step=n / 8)
    sim = physics.simulate_patterns(obj, probe, positions, nphotons=nphotons, rng=gen)
    groups = grouping.group_positions(positions, gridsize=1, n_groups=n_groups, rng=gen)
    return TrainData(counts=sim.counts[groups.indices], scale=float(sim.scale), probe=probe,
                     relative=groups.relative, nphotons=float(nphotons))


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _eager_epoch_fn(data: TrainData, config: PinnConfig, device: str) -> Callable[[], None]:
    """One epoch of a plain PyTorch loop (same model, loss, Adam, batch size) as a callable."""
    import torch

    from ptycho_dist.models.torch.losses import pinn_loss
    from ptycho_dist.models.torch.net import PinnNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = PinnNet(config, data.probe, log_scale=initial_log_scale(data.nphotons, config.n))
    net = net.to(device)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=config.lr)
    x = torch.from_numpy(normalized_inputs(data.counts, scale=data.scale, norm_factor=1.0)).to(device)
    rel = torch.from_numpy(data.relative.astype(np.float32)).to(device)
    counts = torch.from_numpy(data.counts).to(device)
    gen = torch.Generator().manual_seed(0)

    def epoch() -> None:
        for idx in torch.randperm(x.shape[0], generator=gen).split(config.batch_size):
            opt.zero_grad()
            _, pred = net(x[idx.to(device)], rel[idx.to(device)])
            pinn_loss(config.loss, pred, counts[idx.to(device)]).backward()
            opt.step()
        _sync(device)

    return epoch


def _eager_infer_fn(data: TrainData, config: PinnConfig, device: str) -> Callable[[], None]:
    """Inference over all groups with a plain ``no_grad`` loop of the same model."""
    import torch

    from ptycho_dist.models.torch.net import PinnNet

    net = PinnNet(config, data.probe, log_scale=0.0).to(device).eval()
    x = torch.from_numpy(normalized_inputs(data.counts, scale=data.scale, norm_factor=1.0))
    rel = torch.from_numpy(data.relative.astype(np.float32))

    def infer() -> None:
        with torch.no_grad():
            for xb, rb in zip(x.split(config.batch_size), rel.split(config.batch_size), strict=True):
                obj, amp = net(xb.to(device), rb.to(device))
                obj.cpu(), amp.cpu()

    return infer


def _setup(quick: bool) -> tuple[TrainData, PinnConfig]:
    if quick:
        cfg = PinnConfig(n=32, filters=(8, 16), batch_size=16, epochs=2, val_fraction=0.0)
        return bench_data(32, 32, rng=0), cfg
    cfg = PinnConfig(n=64, batch_size=16, epochs=3, val_fraction=0.0)
    return bench_data(64, 128, rng=0), cfg


def run(*, quick: bool = False) -> list[BenchRecord]:
    """Measure training and inference samples/s (project vs eager baseline, same run).

    Project and baseline are measured in alternating rounds (1 quick, 3 full) and the best of each
    is kept, so that a busy machine affects both alike.
    """
    import torch

    from ptycho_dist.models.torch.train import infer_pinn, train_pinn

    data, cfg = _setup(quick)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n, rounds = data.counts.shape[0], 1 if quick else 3
    eager_epoch = _eager_epoch_fn(data, cfg, device)
    eager_epoch()  # warm-up
    train_rate = base_train = 0.0
    for _ in range(rounds):
        result = train_pinn(data, cfg, seed=0, accelerator="gpu" if device == "cuda" else "cpu")
        epochs = [row["seconds"] for row in result.history]
        train_rate = max(train_rate, n / min(epochs[1:] or epochs))
        base_train = max(base_train, throughput(eager_epoch, n, repeats=1, warmup=0))

    def project_infer() -> None:
        infer_pinn(result.weights, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                   relative=data.relative, norm_factor=result.norm_factor,
                   log_scale=result.log_scale, batch_size=cfg.batch_size, device=device)
        _sync(device)

    eager_infer = _eager_infer_fn(data, cfg, device)
    infer_rate = base_infer = 0.0
    for _ in range(rounds):
        infer_rate = max(infer_rate, throughput(project_infer, n, repeats=1))
        base_infer = max(base_infer, throughput(eager_infer, n, repeats=1))
    label = f"eager PyTorch loop, same model, batch {cfg.batch_size} ({device})"
    return [
        ratio_record(BENCH, "train_samples_per_s", train_rate, "samples/s", label, base_train),
        ratio_record(BENCH, "infer_samples_per_s", infer_rate, "samples/s", label, base_infer),
    ]
