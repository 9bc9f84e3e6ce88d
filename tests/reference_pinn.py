"""Independent numpy/scipy forward pass of the PINN, written from docs/weight_layout.md.

Shared by the torch tests (tests/models) and the TF tests (tests/tf); it imports neither
framework. Everything is float64 / complex128 on channels-first ``(B, C, N, N)`` arrays with the
canonical HWIO weights, so both backends are checked against the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, special

from ptycho_dist.models import PinnConfig, central_window, decoder_filters, weight_layout

__all__ = [
    "conv3x3",
    "block",
    "maxpool",
    "upsample",
    "pad_central",
    "shift",
    "overlap",
    "far_field",
    "poisson_nll",
    "patches",
    "forward",
    "random_weights",
]


def conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' 3x3 cross-correlation; x (B, I, H, W), kernel HWIO (3, 3, I, O)."""
    _, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], kernel.shape[3], h, w))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("bihw,io->bohw", xp[:, :, dy: dy + h, dx: dx + w], kernel[dy, dx])
    return out + bias[None, :, None, None]


def block(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """Conv3x3 -> ReLU -> Conv3x3 -> ReLU with the weights ``{prefix}.conv{0,1}.*``."""
    x = np.maximum(conv3x3(x, w[f"{prefix}.conv0.kernel"], w[f"{prefix}.conv0.bias"]), 0)
    return np.maximum(conv3x3(x, w[f"{prefix}.conv1.kernel"], w[f"{prefix}.conv1.bias"]), 0)


def maxpool(x: np.ndarray) -> np.ndarray:
    """2 x 2 max-pool, stride 2, of (B, C, H, W)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def upsample(x: np.ndarray) -> np.ndarray:
    """2x nearest upsampling of the last two axes."""
    return x.repeat(2, axis=-2).repeat(2, axis=-1)


def pad_central(x: np.ndarray) -> np.ndarray:
    """Zero-pad (..., M, M) by M/2 on each side of the last two axes."""
    q = x.shape[-1] // 2
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(q, q), (q, q)])


def shift(img: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Bilinear shift of a real or complex (H, W) image by d = (dx, dy), zero outside (scipy)."""
    def real(a: np.ndarray) -> np.ndarray:
        return ndimage.shift(a, (d[1], d[0]), order=1, mode="grid-constant", cval=0.0)

    if np.iscomplexobj(img):
        return real(img.real) + 1j * real(img.imag)
    return real(img)


def overlap(obj: np.ndarray, rel: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Overlap constraint: member i = sum_j shift(m O_j, r_j - r_i) / sum_j shift(m, r_j - r_i)."""
    out = np.zeros_like(obj)
    b_count, c_count = obj.shape[:2]
    for b in range(b_count):
        for i in range(c_count):
            num = np.zeros(obj.shape[-2:], complex)
            den = np.zeros(obj.shape[-2:])
            for j in range(c_count):
                d = rel[b, j] - rel[b, i]
                num += shift(m * obj[b, j], d)
                den += shift(m, d)
            out[b, i] = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return out


def far_field(obj: np.ndarray, probe: np.ndarray, log_scale: float) -> np.ndarray:
    """``|fftshift(fft2(P O))| / N * exp(log_scale)`` over the last two axes."""
    n = obj.shape[-1]
    spectrum = np.fft.fftshift(np.fft.fft2(probe * obj), axes=(-2, -1))
    return np.abs(spectrum) / n * math.exp(log_scale)


def poisson_nll(amplitude: np.ndarray, counts: np.ndarray, eps: float = 1e-7) -> float:
    """``mean [lam - k log(lam + eps) + log(k!)]``, lam = amplitude**2 (scipy gammaln)."""
    lam = np.asarray(amplitude, np.float64) ** 2
    k = np.asarray(counts, np.float64)
    return float(np.mean(lam - k * np.log(lam + eps) + special.gammaln(k + 1)))


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    sig = 1 / (1 + np.exp(-x))
    return {"sigmoid": sig, "softplus": np.logaddexp(0, x), "swish": x * sig}[name]


def patches(w: dict[str, np.ndarray], cfg: PinnConfig, x: np.ndarray) -> np.ndarray:
    """Object patches before the overlap constraint, complex128 (B, C, N, N)."""
    z = np.asarray(x, np.float64)
    for i in range(len(cfg.resolved_filters)):
        z = maxpool(block(z, w, f"encoder.{i}"))
    heads = {}
    for head in ("decoder_amp", "decoder_phase"):
        y = z
        for j in range(len(decoder_filters(cfg.resolved_filters))):
            y = upsample(block(y, w, f"{head}.{j}"))
        heads[head] = conv3x3(y, w[f"{head}.final.kernel"], w[f"{head}.final.bias"])
    amp = pad_central(_activation(cfg.amp_activation, heads["decoder_amp"]))
    phase = pad_central(math.pi * np.tanh(heads["decoder_phase"]))
    return amp * np.exp(1j * phase)


def forward(w: dict[str, np.ndarray], cfg: PinnConfig, x: np.ndarray, rel: np.ndarray,
            probe: np.ndarray, log_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Object patches (complex128) and predicted amplitudes (float64), both (B, C, N, N)."""
    w64 = {k: np.asarray(v, np.float64) for k, v in w.items()}
    obj = patches(w64, cfg, x)
    if cfg.channels > 1 and cfg.object_big:
        obj = overlap(obj, np.asarray(rel, np.float64), central_window(cfg.n).astype(np.float64))
    return obj, far_field(obj, np.asarray(probe, np.complex128), log_scale)


def random_weights(cfg: PinnConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Canonical float32 weights drawn independently of either backend: He-scaled normal kernels
    (final layers x4, so that amplitude and phase vary over the patch), biases U(-0.2, 0.2)."""
    out = {}
    for name, shape in weight_layout(cfg).items():
        if name.endswith("kernel"):
            gain = 4.0 if ".final." in name else 1.0
            out[name] = rng.normal(0, gain * math.sqrt(2 / (9 * shape[2])), size=shape)
        else:
            out[name] = rng.uniform(-0.2, 0.2, size=shape)
    return {k: v.astype(np.float32) for k, v in out.items()}
