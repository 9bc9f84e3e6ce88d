"""Explicit, transcribable layers of the PINN in PyTorch.

Every operation here is written with plain indexing and arithmetic so that the TensorFlow backend
can reproduce it to float32 rounding (no ``grid_sample``, no library image transforms). The exact
definitions are in ``docs/weight_layout.md``; the formulas are repeated in each docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bilinear_shift",
    "pad_central",
    "upsample_nearest",
    "overlap_constraint",
    "far_field_amplitude",
]


def bilinear_shift(x: Tensor, shift: Tensor) -> Tensor:
    """Translate images by per-item sub-pixel offsets with bilinear interpolation, zero outside.

    ``out[..., y, x] = x(y - dy, x - dx)``: content moves by ``+dx`` columns and ``+dy`` rows.
    With ``sx = -dx``, ``x0 = floor(sx)``, ``fx = sx - x0`` (same for y)::

        out[y, x] = (1-fy)(1-fx) g(y+y0, x+x0) + (1-fy) fx g(y+y0, x+x0+1)
                  + fy (1-fx) g(y+y0+1, x+x0) + fy fx g(y+y0+1, x+x0+1)

    (summed in that order), where ``g(r, c)`` is the input pixel, or 0 when (r, c) is outside.

    Parameters
    ----------
    x : Tensor, float32 or complex64, shape (..., H, W)
        Images; the leading shape is arbitrary.
    shift : Tensor, float, shape (..., 2)
        ``(dx, dy)`` in pixels per image (leading shape equal to ``x``'s).

    Returns
    -------
    Tensor, same dtype and shape as ``x``.
    """
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, h, w)
    s = shift.reshape(-1, 2).to(torch.float32)
    sx, sy = -s[:, 0], -s[:, 1]
    x0, y0 = torch.floor(sx), torch.floor(sy)
    fx, fy = (sx - x0)[:, None, None], (sy - y0)[:, None, None]
    cols = torch.arange(w, device=x.device)[None, :] + x0.to(torch.long)[:, None]
    rows = torch.arange(h, device=x.device)[None, :] + y0.to(torch.long)[:, None]
    g00 = _gather(flat, rows, cols)
    g01 = _gather(flat, rows, cols + 1)
    g10 = _gather(flat, rows + 1, cols)
    g11 = _gather(flat, rows + 1, cols + 1)
    out = (1 - fy) * (1 - fx) * g00 + (1 - fy) * fx * g01 + fy * (1 - fx) * g10 + fy * fx * g11
    return out.reshape(*lead, h, w)


def _gather(flat: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``flat[l, rows[l, i], cols[l, j]]`` for (L, H, W) input, 0 where an index is out of range."""
    l, h, w = flat.shape
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    r = rows.clamp(0, h - 1)[:, :, None]
    c = cols.clamp(0, w - 1)[:, None, :]
    idx = torch.arange(l, device=flat.device)[:, None, None]
    picked = flat[idx, r, c]
    return torch.where(valid, picked, torch.zeros((), dtype=flat.dtype, device=flat.device))


def pad_central(x: Tensor) -> Tensor:
    """Zero-pad (..., M, M) to (..., 2M, 2M) with M/2 zeros on each side (N/4 for M = N/2)."""
    p = x.shape[-1] // 2
    return F.pad(x, (p, p, p, p))


def upsample_nearest(x: Tensor) -> Tensor:
    """2x nearest-neighbour upsampling of (..., H, W): ``out[..., y, x] = x[..., y // 2, x // 2]``."""
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def overlap_constraint(patches: Tensor, relative: Tensor, window: Tensor) -> Tensor:
    """Overlap constraint ("object big"): average the group's patches on a shared canvas.

    For member i, the canvas is taken in member i's own frame, which needs no canvas size and
    clips nothing; member j's patch sits there at offset ``r_j - r_i`` (relative = member - centre)::

        num_i = sum_j shift(m * O_j, r_j - r_i)
        den_i = sum_j shift(m, r_j - r_i)
        O'_i  = num_i / den_i where den_i != 0, else 0          (TF: divide_no_nan)

    with ``m`` the central-window mask and ``shift`` :func:`bilinear_shift`; the sums run over
    j = 0 .. C-1 in order. Equal offsets give every member the mean of the group's patches.

    Parameters
    ----------
    patches : Tensor, complex64, shape (B, C, N, N)
    relative : Tensor, float32, shape (B, C, 2)
        ``(x, y)`` offsets of the members from the group centre, in pixels.
    window : Tensor, float32, shape (N, N)
        Central-window mask (ones on the central N/2 x N/2 pixels).

    Returns
    -------
    Tensor, complex64, shape (B, C, N, N)
    """
    b, c, n, _ = patches.shape
    offsets = relative[:, None, :, :] - relative[:, :, None, :]          # (B, i, j, 2) = r_j - r_i
    src = (patches * window)[:, None].expand(b, c, c, n, n)
    masks = window.expand(b, c, c, n, n)
    num = bilinear_shift(src, offsets).sum(dim=2)
    den = bilinear_shift(masks, offsets).sum(dim=2)
    covered = den != 0
    safe = torch.where(covered, den, torch.ones_like(den))
    return torch.where(covered, num / safe, torch.zeros_like(num))


def far_field_amplitude(obj: Tensor, probe: Tensor, log_scale: Tensor) -> Tensor:
    """Physics layer: ``|fftshift(fft2(P * O))| / N * exp(log_scale)`` over the last two axes.

    Unnormalized ``fft2`` divided by N (= orthonormal for N x N), zero frequency moved to pixel
    N//2 by ``fftshift``, no shift before the FFT (PHYSICS.md, "Forward model").

    Parameters
    ----------
    obj : Tensor, complex64, shape (..., N, N)
    probe : Tensor, complex64, shape (N, N)
    log_scale : Tensor, float32, shape ()

    Returns
    -------
    Tensor, float32, shape (..., N, N)
        Predicted amplitude in count units.
    """
    n = obj.shape[-1]
    spectrum = torch.fft.fftshift(torch.fft.fft2(probe * obj), dim=(-2, -1))
    return torch.abs(spectrum) / n * torch.exp(log_scale)
