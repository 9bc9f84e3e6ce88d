"""This project's conventions -> pty-chi's (pure numpy; docs/conventions.md, "The iterative arm").

This project (PHYSICS.md): a probe-centre position ``(x, y)`` in object pixels puts probe pixel
``(i, j)`` on object pixel ``(y - N/2 + i, x - N/2 + j)``; counts ``C = s^2 |fftshift(fft2(P O))|^2 /
N^2`` (orthonormal FFT, zero frequency at pixel N//2).

pty-chi 2.2 (``ptychi.data_structures.object.PlanarObject``, ``ptychi.image_proc``,
``ptychi.forward_models``): positions are two arrays ``y`` and ``x`` relative to an origin
``o = round(shape / 2) - 0.5`` of the object buffer (``ObjectPosOriginCoordsMethods.SUPPORT``,
``round`` half to even). The patch of position ``p`` starts at buffer pixel
``round(p) + o - (N - 1) / 2`` (patches are cut at the rounded position) and the probe is shifted
by the residual ``p - round(p)`` (Fourier or bilinear shift of the *probe*, not of the object);
the far field is ``fft2`` without normalization, with the measured intensities fft-shifted
(``fft_shift=True``) so that zero frequency sits at pixel 0.

Hence, on an object buffer padded by ``pad`` pixels on every side:

* ``p = (y + pad) - o_y - 1/2`` and likewise for x (:func:`to_ptychi_positions`);
* the engine's probe is ``P s / N`` (:func:`ptychi_probe`), so that ``|fft2(P s/N O)|^2 = C``;
* the data are the counts as they are (intensities, not amplitudes), with ``fft_shift=True``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OBJECT_PAD", "ptychi_origin", "to_ptychi_positions", "from_ptychi_positions", "ptychi_probe"]

#: pixels of free object added on every side of the engine's buffer (pty-chi wants the patches
#: plus a pixel inside it, and position correction may move a patch outward); cropped afterwards
OBJECT_PAD = 8


def ptychi_origin(buffer_shape: tuple[int, int]) -> np.ndarray:
    """pty-chi's position origin ``round(shape / 2) - 0.5`` as (y, x), float64 (half to even)."""
    return np.round(np.asarray(buffer_shape, dtype=np.float64) / 2.0) - 0.5


def to_ptychi_positions(positions: np.ndarray, object_shape: tuple[int, int], *,
                        pad: int = OBJECT_PAD) -> tuple[np.ndarray, np.ndarray]:
    """This project's probe-centre positions (n, 2) ``(x, y)`` -> pty-chi's ``(y, x)`` arrays.

    Parameters
    ----------
    positions : ndarray, float, shape (n, 2)
        ``(x, y)`` in pixels of the object of shape ``object_shape``.
    object_shape : (H, W)
    pad : int
        Pixels added on each side of the engine's object buffer (shape ``(H + 2 pad, W + 2 pad)``).

    Returns
    -------
    (y, x) : two float64 arrays (n,)
    """
    pos = np.asarray(positions, dtype=np.float64)
    origin = ptychi_origin((object_shape[0] + 2 * pad, object_shape[1] + 2 * pad))
    return pos[:, 1] + pad - origin[0] - 0.5, pos[:, 0] + pad - origin[1] - 0.5


def from_ptychi_positions(y: np.ndarray, x: np.ndarray, object_shape: tuple[int, int], *,
                          pad: int = OBJECT_PAD) -> np.ndarray:
    """The inverse of :func:`to_ptychi_positions`: float64 (n, 2) ``(x, y)`` in object pixels."""
    origin = ptychi_origin((object_shape[0] + 2 * pad, object_shape[1] + 2 * pad))
    return np.stack([np.asarray(x, np.float64) + origin[1] + 0.5 - pad,
                     np.asarray(y, np.float64) + origin[0] + 0.5 - pad], axis=1)


def ptychi_probe(probe: np.ndarray, scale: float) -> np.ndarray:
    """The engine's probe: ``P s / N`` (unnormalized FFT, counts as data), complex64, same shape.

    ``probe`` is (N, N) or (modes, N, N) in the data's normalization; ``scale`` is the dose scale s.
    """
    p = np.asarray(probe)
    return (p * (scale / p.shape[-1])).astype(np.complex64)
