"""The torch network: shapes, ranges, weight export/import, losses."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.special import gammaln

torch = pytest.importorskip("torch")

from ptycho_dist.models import PinnConfig, TrainData, weight_layout  # noqa: E402
from ptycho_dist.models.torch.losses import POISSON_EPS, mae_amplitude, poisson_nll  # noqa: E402
from ptycho_dist.models.torch.net import PinnNet, export_weights, import_weights  # noqa: E402


def _inputs(data: TrainData, b: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.sqrt(data.counts[:b]) / np.float32(data.scale))
    return x, torch.from_numpy(data.relative[:b].astype(np.float32))


def _net(cfg: PinnConfig, data: TrainData, seed: int, log_scale: float = 0.0) -> PinnNet:
    torch.manual_seed(seed)
    return PinnNet(cfg, data.probe, log_scale=log_scale)


@pytest.mark.parametrize("fixture", ["data_g1", "data_g2"])
def test_forward_shapes_and_ranges(request: pytest.FixtureRequest, fixture: str,
                                   make_config: Callable[..., PinnConfig]) -> None:
    data: TrainData = request.getfixturevalue(fixture)
    c = data.counts.shape[1]
    cfg = make_config(gridsize=int(math.isqrt(c)))
    net = _net(cfg, data, 0)
    x, rel = _inputs(data)
    obj, amp = net(x, rel)
    assert obj.shape == (4, c, 32, 32) and obj.dtype == torch.complex64
    assert amp.shape == (4, c, 32, 32) and amp.dtype == torch.float32
    raw = net.patches(x).detach().numpy()
    window = np.zeros((32, 32), bool)
    window[8:24, 8:24] = True
    assert np.all(raw[..., ~window] == 0)                    # zero-padded outside N/2 window
    assert np.all(np.abs(raw[..., window]) <= 1.0)           # sigmoid amplitude
    assert np.all(np.abs(np.angle(raw[..., window])) <= math.pi)


def test_gridsize1_forward_skips_overlap(data_g1: TrainData,
                                        make_config: Callable[..., PinnConfig]) -> None:
    net = _net(make_config(), data_g1, 0)
    x, rel = _inputs(data_g1)
    obj, _ = net(x, rel + 5.0)  # relative ignored for C = 1
    torch.testing.assert_close(obj, net.patches(x), rtol=0, atol=0)


def test_object_big_false_skips_constraint(data_g2: TrainData,
                                           make_config: Callable[..., PinnConfig]) -> None:
    on = _net(make_config(gridsize=2), data_g2, 0)
    off = _net(make_config(gridsize=2, object_big=False), data_g2, 0)
    x, rel = _inputs(data_g2)
    obj_off, _ = off(x, rel)
    torch.testing.assert_close(obj_off, off.patches(x), rtol=0, atol=0)
    assert not torch.allclose(on(x, rel)[0], obj_off)


def test_log_scale_multiplies_amplitude(data_g1: TrainData,
                                        make_config: Callable[..., PinnConfig]) -> None:
    x, rel = _inputs(data_g1)
    a0 = _net(make_config(), data_g1, 0, log_scale=0.0)(x, rel)[1]
    a1 = _net(make_config(), data_g1, 0, log_scale=1.5)(x, rel)[1]
    torch.testing.assert_close(a1, a0 * math.exp(1.5), rtol=1e-5, atol=1e-6)


def test_trainable_scale_flag(data_g1: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    assert _net(make_config(), data_g1, 0).log_scale.requires_grad
    assert not _net(make_config(trainable_scale=False), data_g1, 0).log_scale.requires_grad


@pytest.mark.parametrize("gridsize", [1, 2])
def test_export_import_round_trip(data_g1: TrainData, data_g2: TrainData, gridsize: int,
                                  make_config: Callable[..., PinnConfig]) -> None:
    data = data_g1 if gridsize == 1 else data_g2
    cfg = make_config(gridsize=gridsize)
    a, b = _net(cfg, data, 1), _net(cfg, data, 2)
    x, rel = _inputs(data)
    assert not torch.allclose(a(x, rel)[1], b(x, rel)[1])
    weights = export_weights(a)
    assert {k: v.shape for k, v in weights.items()} == weight_layout(cfg)
    assert all(v.dtype == np.float32 for v in weights.values())
    copy = {k: v.copy() for k, v in weights.items()}
    import_weights(b, weights)
    for k in weights:
        np.testing.assert_array_equal(weights[k], copy[k])  # inputs untouched
    obj_a, amp_a = a(x, rel)
    obj_b, amp_b = b(x, rel)
    torch.testing.assert_close(obj_b, obj_a, rtol=0, atol=0)
    torch.testing.assert_close(amp_b, amp_a, rtol=0, atol=0)


def test_kernel_layout_is_hwio(data_g1: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    net = _net(make_config(), data_g1, 3)
    kernel = export_weights(net)["encoder.1.conv0.kernel"]        # (3, 3, in=8, out=16)
    weight = net.encoder[1].conv0.weight.detach().numpy()         # (out=16, in=8, 3, 3)
    assert kernel.shape == (3, 3, 8, 16)
    assert kernel[2, 0, 5, 11] == weight[11, 5, 2, 0]
    final = export_weights(net)["decoder_phase.final.bias"]
    np.testing.assert_array_equal(final, net.decoder_phase["final"].bias.detach().numpy())


def test_poisson_nll_reference(rng: np.random.Generator) -> None:
    amp = rng.uniform(0, 5, size=(2, 1, 4, 4)).astype(np.float32)
    counts = rng.poisson(amp.astype(np.float64) ** 2).astype(np.float32)
    lam = amp.astype(np.float64) ** 2
    ref = np.mean(lam - counts * np.log(lam + POISSON_EPS) + gammaln(counts.astype(np.float64) + 1))
    got = float(poisson_nll(torch.from_numpy(amp), torch.from_numpy(counts)))
    assert got == pytest.approx(ref, rel=1e-5)
    assert got >= 0
    # the NLL is minimal (over a common scale) at the true intensity
    scaled = [float(poisson_nll(torch.from_numpy(amp * s), torch.from_numpy(lam.astype(np.float32))))
              for s in (0.8, 1.0, 1.25)]
    assert scaled[1] < scaled[0] and scaled[1] < scaled[2]


def test_mae_reference() -> None:
    amp = torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])
    counts = torch.tensor([[[[4.0, 4.0], [0.0, 9.0]]]])
    assert float(mae_amplitude(amp, counts)) == pytest.approx((1 + 0 + 3 + 3) / 4)
