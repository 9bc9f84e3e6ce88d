"""The torch network against an independent numpy/scipy forward pass written from
docs/weight_layout.md (canonical HWIO weights, channels-first arrays): ``tests/reference_pinn.py``,
which the TF backend's tests (tests/tf) use too."""

from __future__ import annotations

import numpy as np
import pytest
from reference_pinn import forward as reference_forward

torch = pytest.importorskip("torch")

from ptycho_dist.models import PinnConfig  # noqa: E402
from ptycho_dist.models.torch.net import PinnNet, export_weights  # noqa: E402


@pytest.mark.parametrize(("gridsize", "filters"), [(1, (4, 8)), (2, (4, 8))])
def test_torch_matches_numpy_reference(rng: np.random.Generator, gridsize: int,
                                       filters: tuple[int, ...]) -> None:
    cfg = PinnConfig(n=32, gridsize=gridsize, filters=filters)
    c = cfg.channels
    yy, xx = np.mgrid[:32, :32] - 16
    probe = (np.hypot(xx, yy) < 9) * np.exp(0.01j * (xx**2 + yy**2))
    torch.manual_seed(7)
    net = PinnNet(cfg, probe.astype(np.complex64), log_scale=0.4)
    with torch.no_grad():  # non-trivial biases (the default "keras" init has zero biases)
        for p in net.parameters():
            if p.ndim == 1:
                p.add_(0.05)
    weights = export_weights(net)
    x = rng.uniform(0, 2, size=(2, c, 32, 32)).astype(np.float32)
    rel = rng.uniform(-3.5, 3.5, size=(2, c, 2)).astype(np.float32)
    rel -= rel.mean(axis=1, keepdims=True)
    obj_t, amp_t = net(torch.from_numpy(x), torch.from_numpy(rel))
    obj_r, amp_r = reference_forward({k: v.astype(np.float64) for k, v in weights.items()}, cfg, x,
                                     rel.astype(np.float64), probe.astype(np.complex64).astype(complex),
                                     0.4)
    np.testing.assert_allclose(obj_t.detach().numpy(), obj_r, atol=2e-5)
    np.testing.assert_allclose(amp_t.detach().numpy(), amp_r, rtol=1e-4, atol=1e-4 * amp_r.max())
