"""Pure numpy physics of ptychographic simulation (PHYSICS.md).

Conventions, pinned by ``tests/physics``:

* object ``O`` complex64 (H, W), row = y, column = x; probe ``P`` complex64 (N, N), N a power of
  two, centred on pixel (N//2, N//2);
* positions float64 (n, 2) as (x, y) = probe centre in object pixels; object pixel (y, x) appears
  in patch k at (y - y_k + N//2, x - x_k + N//2); bilinear sub-pixel sampling by default;
* far field ``A = |fftshift(fft2(P * O_k))| / N`` (orthonormal, zero frequency at N//2);
* dose ``s^2 = nphotons / mean_k sum |psi_k|^2``, counts ``Poisson(s^2 A^2)``, model input
  ``sqrt(C) / s``;
* probe normalization ``P / (probe_scale * mean |mask * P|)`` with the mean over all N^2 pixels.

No I/O, no Ray, no torch/tf here; randomness only through an ``rng`` argument.
"""

from __future__ import annotations

from ptycho_dist.physics.diagnostics import canvas_requirement, legacy_canvas_side
from ptycho_dist.physics.dose import dose_scale, model_amplitude, sample_counts
from ptycho_dist.physics.forward import (
    INTERPOLATIONS,
    exit_waves,
    extract_patches,
    far_field_amplitude,
    far_field_intensity,
)
from ptycho_dist.physics.objects import (
    gaussian_random_field_object,
    lines_object,
    mean_patch_max,
    normalize_by_mean_patch_max,
    object_from_array,
    ptychopinn_lines_amplitude,
    ptychopinn_lines_object,
    reference_tanh_phase,
    siemens_star_object,
)
from ptycho_dist.physics.probes import (
    DEFAULT_PROBE_SCALE,
    aberrated_probe,
    disk_probe,
    gaussian_probe,
    normalize_probe,
    perturbed_probe,
    probe_from_array,
    probe_mask,
    probe_relative_error,
    probe_statistics,
    rotation_asymmetry,
    zernike,
    zone_plate_probe,
)
from ptycho_dist.physics.scans import (
    check_scan_fits,
    cluster_layout,
    fermat_scan,
    grid_scan,
    grid_shape,
    random_scan,
    scan_box,
)
from ptycho_dist.physics.simulate import SimResult, apply_dose, simulate_patterns

__all__ = [
    "DEFAULT_PROBE_SCALE",
    "INTERPOLATIONS",
    "SimResult",
    "aberrated_probe",
    "apply_dose",
    "canvas_requirement",
    "check_scan_fits",
    "cluster_layout",
    "disk_probe",
    "dose_scale",
    "exit_waves",
    "extract_patches",
    "far_field_amplitude",
    "far_field_intensity",
    "fermat_scan",
    "gaussian_probe",
    "gaussian_random_field_object",
    "grid_scan",
    "grid_shape",
    "legacy_canvas_side",
    "lines_object",
    "mean_patch_max",
    "model_amplitude",
    "normalize_by_mean_patch_max",
    "normalize_probe",
    "object_from_array",
    "perturbed_probe",
    "probe_from_array",
    "probe_mask",
    "probe_relative_error",
    "probe_statistics",
    "ptychopinn_lines_amplitude",
    "ptychopinn_lines_object",
    "random_scan",
    "reference_tanh_phase",
    "rotation_asymmetry",
    "sample_counts",
    "scan_box",
    "siemens_star_object",
    "simulate_patterns",
    "zernike",
    "zone_plate_probe",
]
