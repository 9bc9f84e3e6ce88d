"""Inference of several trained bundles in one process, their inputs batched together.

When several scenarios' models share one GPU, running them one after the other leaves the device
mostly idle at N = 64 (small convolutions). :func:`infer_many` groups the bundles whose networks
have the same architecture, stacks their weights (:func:`torch.func.stack_module_state`) and runs
the group as one vectorized call (:func:`torch.vmap` over :func:`torch.func.functional_call`):
every step evaluates ``K`` models on ``K`` batches at once. Results equal those of
:func:`~ptycho_dist.models.torch.train.infer_pinn` per bundle within float tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, stack_module_state

from ptycho_dist.models.config import PinnConfig
from ptycho_dist.models.data import InferResult, prepare_inference
from ptycho_dist.models.torch.net import PinnNet, import_weights

__all__ = ["InferRequest", "infer_many"]


@dataclass(frozen=True)
class InferRequest:
    """One bundle's inference: the arguments of :func:`~ptycho_dist.models.torch.train.infer_pinn`.

    Attributes
    ----------
    weights : dict of str to numpy.ndarray
        Canonical weights.
    config : PinnConfig
    counts : numpy.ndarray, float32, shape (B, C, N, N)
    scale : float
    probe : numpy.ndarray, complex64, shape (N, N)
    relative : numpy.ndarray, float, shape (B, C, 2)
    norm_factor, log_scale : float
    """

    weights: dict[str, np.ndarray]
    config: PinnConfig
    counts: np.ndarray
    scale: float
    probe: np.ndarray
    relative: np.ndarray
    norm_factor: float
    log_scale: float


def _architecture(config: PinnConfig) -> tuple[object, ...]:
    """What must agree for two networks to be stacked (shapes and forward computation)."""
    return (config.n, config.gridsize, config.filters, config.amp_activation, config.object_big,
            config.channels_last, config.precision)


def infer_many(requests: Sequence[InferRequest], *, device: str = "cpu", batch_size: int = 64
               ) -> list[InferResult]:
    """Run every request's inference, bundles of one architecture batched together.

    Parameters
    ----------
    requests : sequence of InferRequest
    device : str
        Torch device (``"cuda"`` on a GPU task).
    batch_size : int
        Groups per model per step (each step evaluates ``K x batch_size`` groups for a group of
        ``K`` stacked models).

    Returns
    -------
    list of InferResult
        In the order of ``requests``: ``object_patches`` complex64 (B, C, N, N),
        ``pred_amplitude`` float32 (B, C, N, N).
    """
    out: list[InferResult | None] = [None] * len(requests)
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(_architecture(r.config), []).append(i)
    for members in groups.values():
        for i, res in zip(members, _infer_group([requests[i] for i in members], torch.device(device),
                                                batch_size), strict=True):
            out[i] = res
    return [r for r in out if r is not None]


def _infer_group(reqs: list[InferRequest], dev: torch.device, batch_size: int) -> list[InferResult]:
    """Stacked, vmapped inference of bundles of one architecture."""
    inputs = [prepare_inference(r.config, counts=r.counts, scale=r.scale, probe=r.probe,
                                relative=r.relative, norm_factor=r.norm_factor,
                                log_scale=r.log_scale, batch_size=batch_size) for r in reqs]
    nets = []
    for r in reqs:
        net = PinnNet(r.config, r.probe, log_scale=r.log_scale)
        import_weights(net, r.weights)
        nets.append(net.to(dev).eval())
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor,
            rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return functional_call(base, (p, b), (x, rel))

    run = torch.vmap(one)
    cfg = reqs[0].config
    longest = max(x.shape[0] for x, _ in inputs)
    objs: list[list[np.ndarray]] = [[] for _ in reqs]
    amps: list[list[np.ndarray]] = [[] for _ in reqs]
    bf16 = cfg.precision == "bf16-mixed"
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, longest, batch_size):
            xs, rels, sizes = [], [], []
            for x, rel in inputs:  # pad every model's batch to the same length (then drop)
                xb, rb = x[start:start + batch_size], rel[start:start + batch_size]
                sizes.append(xb.shape[0])
                pad = batch_size - xb.shape[0]
                xs.append(np.concatenate([xb, np.zeros((pad,) + x.shape[1:], x.dtype)]))
                rels.append(np.concatenate([rb, np.zeros((pad,) + rel.shape[1:], rel.dtype)]))
            obj, amp = run(params, buffers, torch.from_numpy(np.stack(xs)).to(dev),
                           torch.from_numpy(np.stack(rels)).to(dev))
            obj_np, amp_np = obj.cpu().numpy(), amp.float().cpu().numpy()
            for k, size in enumerate(sizes):
                if size:
                    objs[k].append(obj_np[k, :size])
                    amps[k].append(amp_np[k, :size])
    return [InferResult(np.concatenate(o).astype(np.complex64), np.concatenate(a).astype(np.float32))
            if o else InferResult.empty(cfg) for o, a in zip(objs, amps, strict=True)]
