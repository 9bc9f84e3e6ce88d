"""Column names of the ``metrics`` and ``bias`` tables (no dependencies: the table schemas import it)."""

from __future__ import annotations

__all__ = ["METRIC_KEYS", "BIAS_KEYS"]

METRIC_KEYS = ("target", "channel", "mae", "rmse", "max_error", "pearson_r", "psnr",
               "psnr_data_range", "psnr_legacy_255", "ssim", "frc_05", "frc_halfbit",
               "frc_undefined", "n_pixels")
BIAS_KEYS = ("shift_x", "shift_y", "ls_scale", "ls_phase", "amp_ratio_mean", "amp_ratio_median",
             "amp_ratio_p05", "amp_ratio_p95", "amp_mae_rescaled", "amp_rmse_rescaled",
             "phase_offset_mean")
