"""``ptycho-dist bench train``: PINN training and inference throughput (PyTorch backend).

Figures, in samples (groups) per second, at N = 64, batch 16, gridsize 1, default filters, on the
GPU when torch sees one, else on the CPU:

* ``train_samples_per_s``: one epoch of :func:`~ptycho_dist.models.torch.train.train_pinn`
  (Lightning; best epoch after the first) vs one epoch of an eager PyTorch loop of the same model,
  loss, optimizer and batch size.
* ``infer_samples_per_s``: :func:`~ptycho_dist.models.torch.train.infer_pinn` (weights import,
  normalization, batched inference) vs an eager ``no_grad`` loop over the same batches.

``quick=True`` uses N = 32, filters (8, 16) and 32 groups (seconds, for tests).
The data come from :func:`synthetic_data`, a small self-contained simulator (numpy only).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ptycho_dist.bench import BenchRecord, ratio_record, throughput
from ptycho_dist.models.common import PinnConfig, TrainData, initial_log_scale, normalized_inputs

__all__ = ["run", "synthetic_data", "synthetic_object", "soft_disk_probe"]

BENCH = "train"


def synthetic_object(size: int, *, rng: np.random.Generator | int | None = None,
                     n_lines: int = 40) -> np.ndarray:
    """Lines-like complex object: blurred random segments, amplitude in [0.3, 1], phase in [0, 0.6].

    Returns
    -------
    ndarray, complex64, shape (size, size)
    """
    gen = np.random.default_rng(rng)
    img = np.zeros((size, size))
    t = np.linspace(0.0, 1.0, 4 * size)
    for _ in range(n_lines):
        (x0, y0), (x1, y1) = gen.uniform(0, size - 1, size=(2, 2))
        rows = np.round(y0 + t * (y1 - y0)).astype(int)
        cols = np.round(x0 + t * (x1 - x0)).astype(int)
        img[rows, cols] = 1.0
    img = ndimage.gaussian_filter(img, 1.0) + ndimage.gaussian_filter(img, 3.0)
    img /= img.max()
    return ((0.3 + 0.7 * img) * np.exp(1j * 0.6 * img)).astype(np.complex64)


def soft_disk_probe(n: int) -> np.ndarray:
    """Soft disk probe: disk of radius N/4 blurred (sigma 1.5 px), flat phase, normalized so that
    ``mean |P|`` over the disk is 1/4 (PHYSICS.md probe normalization, probe_scale = 4).

    Returns
    -------
    ndarray, complex64, shape (n, n)
    """
    yy, xx = np.mgrid[:n, :n] - n // 2
    disk = (np.hypot(xx, yy) <= n / 4).astype(np.float64)
    probe = ndimage.gaussian_filter(disk, 1.5)
    probe /= 4.0 * np.mean(probe[disk > 0])
    return probe.astype(np.complex64)


def synthetic_data(*, n: int = 64, gridsize: int = 1, n_groups: int = 64, nphotons: float = 1e6,
                   rng: np.random.Generator | int | None = None) -> TrainData:
    """Small simulated training set (forward model of PHYSICS.md, integer scan positions).

    Groups are ``gridsize x gridsize`` grid positions with step N/4 starting at a random seed
    position; ``relative = member - mean(members)``. Counts ~ Poisson(s**2 |fftshift(fft2(P O_k))|**2
    / N**2) with ``s**2 = nphotons / mean_k sum |P O_k|**2``.

    Returns
    -------
    TrainData
        counts float32 (n_groups, C, N, N), relative float64 (n_groups, C, 2).
    """
    gen = np.random.default_rng(rng)
    step, size = n // 4, 3 * n
    obj, probe = synthetic_object(size, rng=gen), soft_disk_probe(n)
    grid = np.array([(i * step, j * step) for j in range(gridsize) for i in range(gridsize)])
    hi = size - n // 2 - (gridsize - 1) * step
    seeds = gen.integers(n // 2, hi, size=(n_groups, 1, 2))
    positions = seeds + grid[None]                                   # (B, C, 2) as (x, y)
    patches = np.stack([[obj[y - n // 2: y + n // 2, x - n // 2: x + n // 2] for x, y in grp]
                        for grp in positions])
    psi = probe * patches
    amp = np.abs(np.fft.fftshift(np.fft.fft2(psi), axes=(-2, -1))) / n
    s2 = nphotons / np.mean(np.sum(np.abs(psi) ** 2, axis=(-2, -1)))
    counts = gen.poisson(s2 * amp**2).astype(np.float32)
    relative = positions - positions.mean(axis=1, keepdims=True)
    return TrainData(counts=counts, scale=float(np.sqrt(s2)), probe=probe,
                     relative=relative.astype(np.float64), nphotons=float(nphotons))


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
        return synthetic_data(n=32, n_groups=32, rng=0), cfg
    cfg = PinnConfig(n=64, batch_size=16, epochs=3, val_fraction=0.0)
    return synthetic_data(n=64, n_groups=128, rng=0), cfg


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
