"""The torch network against an independent numpy/scipy forward pass written from
docs/weight_layout.md (canonical HWIO weights, channels-first arrays). The TF backend can be
checked against the same reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")

from ptycho_dist.models.common import PinnConfig, central_window, decoder_filters  # noqa: E402
from ptycho_dist.models.torch.net import PinnNet, export_weights  # noqa: E402


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' 3x3 cross-correlation; x (B, I, H, W), kernel HWIO (3, 3, I, O)."""
    _, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], kernel.shape[3], h, w))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("bihw,io->bohw", xp[:, :, dy: dy + h, dx: dx + w], kernel[dy, dx])
    return out + bias[None, :, None, None]


def _block(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    x = np.maximum(_conv3x3(x, w[f"{prefix}.conv0.kernel"], w[f"{prefix}.conv0.bias"]), 0)
    return np.maximum(_conv3x3(x, w[f"{prefix}.conv1.kernel"], w[f"{prefix}.conv1.bias"]), 0)


def _maxpool(x: np.ndarray) -> np.ndarray:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _reference(w: dict[str, np.ndarray], cfg: PinnConfig, x: np.ndarray, rel: np.ndarray,
               probe: np.ndarray, log_scale: float) -> tuple[np.ndarray, np.ndarray]:
    z = x.astype(np.float64)
    for i in range(len(cfg.resolved_filters)):
        z = _maxpool(_block(z, w, f"encoder.{i}"))
    heads = {}
    for head in ("decoder_amp", "decoder_phase"):
        y = z
        for j in range(len(decoder_filters(cfg.resolved_filters))):
            y = _block(y, w, f"{head}.{j}").repeat(2, axis=-2).repeat(2, axis=-1)
        heads[head] = _conv3x3(y, w[f"{head}.final.kernel"], w[f"{head}.final.bias"])
    q = cfg.n // 4
    pad = ((0, 0), (0, 0), (q, q), (q, q))
    amp = np.pad(1 / (1 + np.exp(-heads["decoder_amp"])), pad)
    phase = np.pad(math.pi * np.tanh(heads["decoder_phase"]), pad)
    obj = amp * np.exp(1j * phase)
    if cfg.channels > 1:
        obj = _overlap(obj, rel, central_window(cfg.n).astype(np.float64))
    psi = probe * obj
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(psi), axes=(-2, -1))) / cfg.n * math.exp(log_scale)
    return obj, amplitude


def _overlap(obj: np.ndarray, rel: np.ndarray, m: np.ndarray) -> np.ndarray:
    def shift(img: np.ndarray, d: np.ndarray) -> np.ndarray:
        return ndimage.shift(img, (d[1], d[0]), order=1, mode="grid-constant", cval=0.0)

    out = np.zeros_like(obj)
    b_count, c_count = obj.shape[:2]
    for b in range(b_count):
        for i in range(c_count):
            num = np.zeros(obj.shape[-2:], complex)
            den = np.zeros(obj.shape[-2:])
            for j in range(c_count):
                d = rel[b, j] - rel[b, i]
                num += shift((m * obj[b, j]).real, d) + 1j * shift((m * obj[b, j]).imag, d)
                den += shift(m, d)
            out[b, i] = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return out


@pytest.mark.parametrize(("gridsize", "filters"), [(1, (4, 8)), (2, (4, 8))])
def test_torch_matches_numpy_reference(rng: np.random.Generator, gridsize: int,
                                       filters: tuple[int, ...]) -> None:
    cfg = PinnConfig(n=32, gridsize=gridsize, filters=filters)
    c = cfg.channels
    yy, xx = np.mgrid[:32, :32] - 16
    probe = (np.hypot(xx, yy) < 9) * np.exp(0.01j * (xx**2 + yy**2))
    torch.manual_seed(7)
    net = PinnNet(cfg, probe.astype(np.complex64), log_scale=0.4)
    with torch.no_grad():  # non-trivial biases (default init is small but non-zero)
        for p in net.parameters():
            if p.ndim == 1:
                p.add_(0.05)
    weights = export_weights(net)
    x = rng.uniform(0, 2, size=(2, c, 32, 32)).astype(np.float32)
    rel = rng.uniform(-3.5, 3.5, size=(2, c, 2)).astype(np.float32)
    rel -= rel.mean(axis=1, keepdims=True)
    obj_t, amp_t = net(torch.from_numpy(x), torch.from_numpy(rel))
    obj_r, amp_r = _reference({k: v.astype(np.float64) for k, v in weights.items()}, cfg, x,
                              rel.astype(np.float64), probe.astype(np.complex64).astype(complex), 0.4)
    np.testing.assert_allclose(obj_t.detach().numpy(), obj_r, atol=2e-5)
    np.testing.assert_allclose(amp_t.detach().numpy(), amp_r, rtol=1e-4, atol=1e-4 * amp_r.max())
