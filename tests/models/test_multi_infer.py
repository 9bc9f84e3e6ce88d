"""infer_many: several bundles' inference batched in one process equals infer_pinn per bundle."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from ptycho_dist.bench.train import bench_data  # noqa: E402
from ptycho_dist.models import PinnConfig  # noqa: E402
from ptycho_dist.models.torch.multi import InferRequest, infer_many  # noqa: E402
from ptycho_dist.models.torch.net import PinnNet, export_weights  # noqa: E402
from ptycho_dist.models.torch.train import infer_pinn  # noqa: E402


def _request(seed: int, n_groups: int, filters: tuple[int, ...]) -> InferRequest:
    import torch

    data = bench_data(32, n_groups, rng=seed)
    cfg = PinnConfig(n=32, filters=filters, epochs=1, val_fraction=0.0)
    torch.manual_seed(seed)
    net = PinnNet(cfg, data.probe, log_scale=0.5 + seed)
    return InferRequest(export_weights(net), cfg, data.counts, data.scale, data.probe, data.relative,
                        norm_factor=1.0 + 0.1 * seed, log_scale=0.5 + 0.1 * seed)


def test_infer_many_matches_infer_pinn_per_bundle():
    reqs = [_request(0, 20, (8, 16)), _request(1, 13, (8, 16)), _request(2, 9, (4, 8)),
            _request(3, 20, (8, 16))]
    got = infer_many(reqs, device="cpu", batch_size=8)
    assert len(got) == len(reqs)
    for r, g in zip(reqs, got, strict=True):
        ref = infer_pinn(r.weights, r.config, counts=r.counts, scale=r.scale, probe=r.probe,
                         relative=r.relative, norm_factor=r.norm_factor, log_scale=r.log_scale,
                         batch_size=8, device="cpu")
        assert g.object_patches.shape == ref.object_patches.shape == r.counts.shape
        assert g.object_patches.dtype == np.complex64 and g.pred_amplitude.dtype == np.float32
        np.testing.assert_allclose(g.object_patches, ref.object_patches, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.pred_amplitude, ref.pred_amplitude, rtol=1e-4,
                                   atol=1e-5 * float(np.abs(ref.pred_amplitude).max()))
    # the bundles differ, so a mix-up of weights or inputs would show
    assert not np.allclose(got[0].pred_amplitude[:13], got[1].pred_amplitude)
