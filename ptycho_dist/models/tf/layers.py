"""Explicit, transcribable layers of the PINN in TensorFlow.

The same operations as ``ptycho_dist/models/torch/layers.py``, written with plain gathers and
arithmetic in the same order (no ``tfa``, no ``tf.image`` transforms, no ``ImageProjectiveTransform``
with its own corner conventions), so that both backends agree to float32 rounding. The exact
definitions are in ``docs/weight_layout.md``; the formulas are repeated in each docstring.

Layouts: the object-side layers (:func:`bilinear_shift`, :func:`pad_central`,
:func:`overlap_constraint`, :func:`far_field_amplitude`) act on the last two axes, i.e. on
channels-first ``(B, C, N, N)`` tensors like the torch backend; :func:`upsample_nearest` acts on the
channels-last ``(B, H, W, C)`` tensors of the convolution stack.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "bilinear_shift",
    "pad_central",
    "upsample_nearest",
    "overlap_constraint",
    "far_field_amplitude",
]


def bilinear_shift(x: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Translate images by per-item sub-pixel offsets with bilinear interpolation, zero outside.

    ``out[..., y, x] = x(y - dy, x - dx)``: content moves by ``+dx`` columns and ``+dy`` rows.
    With ``sx = -dx``, ``x0 = floor(sx)``, ``fx = sx - x0`` (float32; same for y)::

        out[y, x] = (1-fy)(1-fx) g(y+y0, x+x0) + (1-fy) fx g(y+y0, x+x0+1)
                  + fy (1-fx) g(y+y0+1, x+x0) + fy fx g(y+y0+1, x+x0+1)

    (summed in that order), where ``g(r, c)`` is the input pixel, or 0 when (r, c) is outside.
    Equals ``scipy.ndimage.shift(img, (dy, dx), order=1, mode="grid-constant")``. Complex images
    are shifted as their real and imaginary parts (the same numbers as a complex shift).

    Parameters
    ----------
    x : tf.Tensor, float32 or complex64, shape (..., H, W)
        Images; the leading shape is arbitrary (H and W must be static).
    shift : tf.Tensor, float, shape (..., 2)
        ``(dx, dy)`` in pixels per image (leading shape equal to ``x``'s).

    Returns
    -------
    tf.Tensor, same dtype and shape as ``x``.
    """
    if x.dtype.is_complex:
        parts = bilinear_shift(tf.stack([tf.math.real(x), tf.math.imag(x)]),
                               tf.stack([shift, shift]))
        return tf.complex(parts[0], parts[1])
    h, w = int(x.shape[-2]), int(x.shape[-1])
    flat = tf.reshape(x, [-1, h, w])
    s = tf.reshape(tf.cast(shift, tf.float32), [-1, 2])
    sx, sy = -s[:, 0], -s[:, 1]
    x0, y0 = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0)[:, None, None], (sy - y0)[:, None, None]
    cols = tf.range(w)[None, :] + tf.cast(x0, tf.int32)[:, None]
    rows = tf.range(h)[None, :] + tf.cast(y0, tf.int32)[:, None]
    g00 = _gather(flat, rows, cols)
    g01 = _gather(flat, rows, cols + 1)
    g10 = _gather(flat, rows + 1, cols)
    g11 = _gather(flat, rows + 1, cols + 1)
    out = (1 - fy) * (1 - fx) * g00 + (1 - fy) * fx * g01 + fy * (1 - fx) * g10 + fy * fx * g11
    return tf.reshape(out, tf.shape(x))


def _gather(flat: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """``flat[l, rows[l, i], cols[l, j]]`` for (L, H, W) input, 0 where an index is out of range."""
    h, w = int(flat.shape[-2]), int(flat.shape[-1])
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    r = tf.clip_by_value(rows, 0, h - 1)
    c = tf.clip_by_value(cols, 0, w - 1)
    picked = tf.gather(tf.gather(flat, r, axis=1, batch_dims=1), c, axis=2, batch_dims=1)
    return tf.where(valid, picked, tf.zeros((), dtype=flat.dtype))


def pad_central(x: tf.Tensor) -> tf.Tensor:
    """Zero-pad (..., M, M) to (..., 2M, 2M) with M/2 zeros on each side (N/4 for M = N/2)."""
    p = int(x.shape[-1]) // 2
    paddings = [[0, 0]] * (len(x.shape) - 2) + [[p, p], [p, p]]
    return tf.pad(x, paddings)


def upsample_nearest(x: tf.Tensor) -> tf.Tensor:
    """2x nearest-neighbour upsampling of channels-last (B, H, W, C): ``out[:, y, x] = x[:, y//2, x//2]``.

    The same as Keras ``UpSampling2D(2, interpolation="nearest")`` and the torch backend's
    ``repeat_interleave`` on channels-first tensors.
    """
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def overlap_constraint(patches: tf.Tensor, relative: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Overlap constraint ("object big"): average the group's patches on a shared canvas.

    For member i, the canvas is taken in member i's own frame, which needs no canvas size and
    clips nothing; member j's patch sits there at offset ``r_j - r_i`` (relative = member - centre)::

        num_i = sum_j shift(m * O_j, r_j - r_i)
        den_i = sum_j shift(m, r_j - r_i)
        O'_i  = num_i / den_i where den_i != 0, else 0          (tf.math.divide_no_nan)

    with ``m`` the central-window mask and ``shift`` :func:`bilinear_shift`. Equal offsets give
    every member the mean of the group's patches.

    Parameters
    ----------
    patches : tf.Tensor, complex64, shape (B, C, N, N)
    relative : tf.Tensor, float32, shape (B, C, 2)
        ``(x, y)`` offsets of the members from the group centre, in pixels.
    window : tf.Tensor, float32, shape (N, N)
        Central-window mask (ones on the central N/2 x N/2 pixels).

    Returns
    -------
    tf.Tensor, complex64, shape (B, C, N, N)
    """
    c, n = int(patches.shape[1]), int(patches.shape[-1])
    b = tf.shape(patches)[0]
    rel = tf.cast(relative, tf.float32)
    offsets = rel[:, None, :, :] - rel[:, :, None, :]                     # (B, i, j, 2) = r_j - r_i
    m = tf.cast(window, tf.float32)
    src = tf.broadcast_to(patches[:, None], [b, c, c, n, n])
    parts = tf.stack([tf.math.real(src) * m, tf.math.imag(src) * m,       # real, imag, mask
                      tf.broadcast_to(m, [b, c, c, n, n])])
    shifted = tf.reduce_sum(bilinear_shift(parts, tf.stack([offsets] * 3)), axis=3)
    return tf.complex(tf.math.divide_no_nan(shifted[0], shifted[2]),
                      tf.math.divide_no_nan(shifted[1], shifted[2]))


def far_field_amplitude(obj: tf.Tensor, probe: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
    """Physics layer: ``|fftshift(fft2(P * O))| / N * exp(log_scale)`` over the last two axes.

    Unnormalized ``tf.signal.fft2d`` (complex64) divided by N (= orthonormal for N x N), then an
    explicit ``fftshift`` (a roll by N//2 on both axes, N even: zero frequency at pixel N//2);
    no shift before the FFT (PHYSICS.md, "Forward model").

    Parameters
    ----------
    obj : tf.Tensor, complex64, shape (..., N, N)
    probe : tf.Tensor, complex64, shape (N, N)
    log_scale : tf.Tensor or tf.Variable, float32, shape ()

    Returns
    -------
    tf.Tensor, float32, shape (..., N, N)
        Predicted amplitude in count units.
    """
    n = int(obj.shape[-1])
    spectrum = tf.signal.fft2d(tf.cast(probe, tf.complex64) * obj)
    shifted = tf.roll(spectrum, shift=[n // 2, n // 2], axis=[-2, -1])
    return tf.abs(shifted) / n * tf.exp(tf.cast(log_scale, tf.float32))
