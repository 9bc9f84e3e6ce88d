"""The torch side of the cross-backend test, run ONLY as a child process (never imported by pytest:
TensorFlow and PyTorch must not share a process).

Usage: ``python tests/tf/torch_peer.py REQUEST.npz REPLY.npz``. The request holds cases; each case
``<name>/`` is ``infer`` (run the given canonical bundle with the torch ``infer_pinn``), ``train``
(train with the torch ``train_pinn``, then run the result) or ``steps`` (from the given weights,
one Adam step per given batch ``x``, ``rel``, ``batch_counts`` of shape (K, B, ...)). The reply
holds, per case, ``object_patches`` and ``pred_amplitude`` (not for ``steps``), the bundle
(``w/<weight name>``, ``norm_factor``, ``log_scale``) for ``train``, and ``losses`` (K,) and
``log_scale`` for ``steps``. Plain arrays only (``allow_pickle=False``).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from ptycho_dist.models import PinnConfig, TrainData
from ptycho_dist.models.torch.train import infer_pinn, train_pinn


def _weights(req: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/w/"
    return {k[len(prefix):]: req[k] for k in req if k.startswith(prefix)}


def _steps(req: dict[str, np.ndarray], name: str, cfg: PinnConfig) -> dict[str, np.ndarray]:
    import torch

    from ptycho_dist.models.torch.losses import pinn_loss
    from ptycho_dist.models.torch.net import PinnNet, import_weights

    get = lambda key: req[f"{name}/{key}"]  # noqa: E731
    net = PinnNet(cfg, get("probe"), log_scale=float(get("log_scale")))
    import_weights(net, _weights(req, name))
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    for x, rel, counts in zip(get("x"), get("rel"), get("batch_counts"), strict=True):
        _, amp = net(torch.from_numpy(x), torch.from_numpy(rel))
        loss = pinn_loss(cfg.loss, amp, torch.from_numpy(counts))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return {f"{name}/losses": np.array(losses), f"{name}/log_scale": np.float64(net.log_scale.detach())}


def _case(req: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    get = lambda key: req[f"{name}/{key}"]  # noqa: E731
    cfg = PinnConfig.from_dict(json.loads(str(get("config"))))
    if str(get("mode")) == "steps":
        return _steps(req, name, cfg)
    counts, probe, relative, scale = get("counts"), get("probe"), get("relative"), float(get("scale"))
    out: dict[str, np.ndarray] = {}
    if str(get("mode")) == "train":
        data = TrainData(counts=counts, scale=scale, probe=probe, relative=relative,
                         nphotons=float(get("nphotons")))
        result = train_pinn(data, cfg, seed=int(get("seed")), accelerator="cpu")
        weights, norm, log_scale = result.weights, result.norm_factor, result.log_scale
        out.update({f"w/{k}": v for k, v in weights.items()})
        out.update(norm_factor=np.float64(norm), log_scale=np.float64(log_scale))
    else:
        weights = _weights(req, name)
        norm, log_scale = float(get("norm_factor")), float(get("log_scale"))
    pred = infer_pinn(weights, cfg, counts=counts, scale=scale, probe=probe, relative=relative,
                      norm_factor=norm, log_scale=log_scale, device="cpu")
    out.update(object_patches=pred.object_patches, pred_amplitude=pred.pred_amplitude)
    return {f"{name}/{k}": v for k, v in out.items()}


def main(request: str, reply: str) -> None:
    with np.load(request, allow_pickle=False) as f:
        req = dict(f)
    out: dict[str, np.ndarray] = {}
    for name in json.loads(str(req["cases"])):
        out.update(_case(req, name))
    np.savez(reply, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
