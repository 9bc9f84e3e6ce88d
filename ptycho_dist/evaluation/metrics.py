"""Per-channel image metrics over a region (pure numpy / scikit-image).

All metrics compare a truth channel ``t`` and a reconstructed channel ``r`` (amplitude, or phase
in radians with the reconstruction on the branch nearest the truth) over region pixels only:

* ``mae = mean|r - t|``, ``rmse = sqrt(mean (r - t)^2)``, ``max_error = max|r - t|``;
* ``pearson_r``: Pearson correlation (NaN when either channel is constant);
* ``psnr = 10 log10(D^2 / mse)`` with the explicit data range ``D = max(t) - min(t)`` over the
  region (reported as ``psnr_data_range``; computed by
  :func:`skimage.metrics.peak_signal_noise_ratio`; ``inf`` when ``mse == 0``, NaN when ``D == 0``);
* ``ssim``: :func:`skimage.metrics.structural_similarity` (7 x 7 uniform window, explicit
  ``data_range``), reported as **the mean of the SSIM map over the region pixels whose whole
  7 x 7 window lies inside the region** (computed on the region's bounding box; values outside
  the region never enter a counted window). For a rectangular region this equals scikit-image's
  own mean SSIM on that rectangle. Amplitude uses ``data_range = D``; phase is mapped to
  ``(phi + pi) / (2 pi)`` and uses ``data_range = 1``;
* ``frc_05``, ``frc_halfbit``: FRC crossings (fraction of Nyquist, :mod:`.frc`); NaN with
  ``frc_undefined = True`` when the truth channel is constant over the region (its standard
  deviation is at most ``constant_tolerance * max(1, |mean|)``) or the region is too small;
* ``psnr_legacy_255`` (amplitude only, NaN for phase): ``10 log10(255^2 / mse)``, the older code's
  figure with an 8-bit peak on amplitudes of order 1 — about 48 dB above ``psnr`` for ``D = 1``.
  Offered only to compare with old reports; do not use it to judge a reconstruction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.frc import frc_curve, prepare_frc_image
from ptycho_dist.evaluation.region import erode

__all__ = ["channel_metrics", "psnr", "ssim_region", "pearson_r", "frc_crossings",
           "SSIM_WINDOW", "CHANNELS"]

SSIM_WINDOW = 7
CHANNELS = ("amplitude", "phase")


def psnr(truth: np.ndarray, rec: np.ndarray, data_range: float) -> float:
    """PSNR in dB of ``rec`` against ``truth`` (same shape) for an explicit ``data_range``."""
    t = np.asarray(truth, dtype=np.float64)
    r = np.asarray(rec, dtype=np.float64)
    if not data_range > 0:
        return float("nan")
    if np.array_equal(t, r):
        return float("inf")
    return float(peak_signal_noise_ratio(t, r, data_range=float(data_range)))


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length vectors; NaN when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    norm = float(np.sqrt(np.dot(da, da) * np.dot(db, db)))
    return float(np.dot(da, db) / norm) if norm > 0 else float("nan")


def ssim_region(truth: np.ndarray, rec: np.ndarray, mask: np.ndarray, *,
                data_range: float) -> float:
    """Mean SSIM over the masked pixels whose whole 7 x 7 window is masked.

    Parameters
    ----------
    truth, rec : numpy.ndarray, float (H, W) or stacks (k, H, W)
        NaN allowed outside ``mask``.
    mask : numpy.ndarray, bool, same shape
    data_range : float
        Passed to :func:`skimage.metrics.structural_similarity`.

    Returns
    -------
    float
        NaN when no pixel has its whole window inside the mask or ``data_range <= 0``.
    """
    t, r, m = (np.asarray(x) for x in (truth, rec, mask))
    if t.ndim == 2:
        t, r, m = t[None], r[None], m[None]
    interior = erode(m, SSIM_WINDOW // 2)
    if not data_range > 0 or not interior.any() or min(t.shape[-2:]) < SSIM_WINDOW:
        return float("nan")
    total, count = 0.0, 0
    for ti, ri, mi, ii in zip(t, r, m, interior):
        if not ii.any():
            continue
        _, smap = structural_similarity(np.where(mi, ti, 0.0), np.where(mi, ri, 0.0),
                                        win_size=SSIM_WINDOW, data_range=float(data_range),
                                        full=True)
        total += float(smap[ii].sum())
        count += int(ii.sum())
    return total / count


def frc_crossings(truth: np.ndarray, rec: np.ndarray, mask: np.ndarray, *, constant: bool
                  ) -> tuple[float, float, bool]:
    """``(frc_05, frc_halfbit, undefined)`` for one channel (images or stacks + mask)."""
    if constant:
        return float("nan"), float("nan"), True
    try:
        curve = frc_curve(prepare_frc_image(truth, mask), prepare_frc_image(rec, mask))
    except EvaluationError:
        return float("nan"), float("nan"), True
    return curve.crossing_05, curve.crossing_halfbit, False


def channel_metrics(truth: np.ndarray, rec: np.ndarray, mask: np.ndarray, *, channel: str,
                    constant_tolerance: float = 1e-6) -> dict[str, Any]:
    """Every metric of one channel over a region.

    Parameters
    ----------
    truth, rec : numpy.ndarray, float64 (H, W) or stacks (k, H, W)
        Channel images (amplitude, or phase in radians with ``rec`` on the truth's branch).
    mask : numpy.ndarray, bool, same shape
        Region; must hold at least one pixel.
    channel : {"amplitude", "phase"}
    constant_tolerance : float, optional
        A truth channel whose std over the region is at most ``tol * max(1, |mean|)`` is
        constant: its FRC is undefined.

    Returns
    -------
    dict
        Keys ``channel, mae, rmse, max_error, pearson_r, psnr, psnr_data_range, psnr_legacy_255,
        ssim, frc_05, frc_halfbit, frc_undefined, n_pixels``.
    """
    if channel not in CHANNELS:
        raise EvaluationError(f"channel must be one of {CHANNELS}, got {channel!r}")
    t_img, r_img = np.asarray(truth, np.float64), np.asarray(rec, np.float64)
    m = np.asarray(mask, dtype=bool)
    if not (t_img.shape == r_img.shape == m.shape):
        raise EvaluationError(f"truth, rec and mask must share a shape, got {t_img.shape}, "
                              f"{r_img.shape}, {m.shape}")
    if not m.any():
        raise EvaluationError("empty region: no pixel to evaluate")
    t, r = t_img[m], r_img[m]
    err = r - t
    mse = float(np.mean(err ** 2))
    data_range = float(t.max() - t.min())
    constant = float(t.std()) <= constant_tolerance * max(1.0, abs(float(t.mean())))
    frc05, frc_hb, undefined = frc_crossings(t_img, r_img, m, constant=constant)
    return {
        "channel": channel, "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(mse)),
        "max_error": float(np.max(np.abs(err))), "pearson_r": pearson_r(t, r),
        "psnr": psnr(t, r, data_range), "psnr_data_range": data_range,
        "psnr_legacy_255": _legacy_psnr(mse) if channel == "amplitude" else float("nan"),
        "ssim": _channel_ssim(t_img, r_img, m, channel=channel, data_range=data_range),
        "frc_05": frc05, "frc_halfbit": frc_hb, "frc_undefined": undefined,
        "n_pixels": int(m.sum()),
    }


def _channel_ssim(truth: np.ndarray, rec: np.ndarray, mask: np.ndarray, *, channel: str,
                  data_range: float) -> float:
    """SSIM with the channel's data range (phase mapped to [0, 1], data range 1)."""
    if channel == "phase":
        scale = 2.0 * np.pi
        return ssim_region((truth + np.pi) / scale, (rec + np.pi) / scale, mask, data_range=1.0)
    return ssim_region(truth, rec, mask, data_range=data_range)


def _legacy_psnr(mse: float) -> float:
    """The older code's PSNR with an 8-bit peak of 255 (compatibility column)."""
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))
