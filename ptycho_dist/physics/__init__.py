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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; at run time each name is imported on first use (__getattr__)
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

#: public name -> (module, name): importing one physics module (the spec imports ``scans``) does not
#: import the others (scipy, the probes and objects)
_LAZY = {
    "DEFAULT_PROBE_SCALE": ("ptycho_dist.physics.probes", "DEFAULT_PROBE_SCALE"),
    "INTERPOLATIONS": ("ptycho_dist.physics.forward", "INTERPOLATIONS"),
    "SimResult": ("ptycho_dist.physics.simulate", "SimResult"),
    "aberrated_probe": ("ptycho_dist.physics.probes", "aberrated_probe"),
    "apply_dose": ("ptycho_dist.physics.simulate", "apply_dose"),
    "canvas_requirement": ("ptycho_dist.physics.diagnostics", "canvas_requirement"),
    "check_scan_fits": ("ptycho_dist.physics.scans", "check_scan_fits"),
    "cluster_layout": ("ptycho_dist.physics.scans", "cluster_layout"),
    "disk_probe": ("ptycho_dist.physics.probes", "disk_probe"),
    "dose_scale": ("ptycho_dist.physics.dose", "dose_scale"),
    "exit_waves": ("ptycho_dist.physics.forward", "exit_waves"),
    "extract_patches": ("ptycho_dist.physics.forward", "extract_patches"),
    "far_field_amplitude": ("ptycho_dist.physics.forward", "far_field_amplitude"),
    "far_field_intensity": ("ptycho_dist.physics.forward", "far_field_intensity"),
    "fermat_scan": ("ptycho_dist.physics.scans", "fermat_scan"),
    "gaussian_probe": ("ptycho_dist.physics.probes", "gaussian_probe"),
    "gaussian_random_field_object": ("ptycho_dist.physics.objects", "gaussian_random_field_object"),
    "grid_scan": ("ptycho_dist.physics.scans", "grid_scan"),
    "grid_shape": ("ptycho_dist.physics.scans", "grid_shape"),
    "legacy_canvas_side": ("ptycho_dist.physics.diagnostics", "legacy_canvas_side"),
    "lines_object": ("ptycho_dist.physics.objects", "lines_object"),
    "mean_patch_max": ("ptycho_dist.physics.objects", "mean_patch_max"),
    "model_amplitude": ("ptycho_dist.physics.dose", "model_amplitude"),
    "normalize_by_mean_patch_max": ("ptycho_dist.physics.objects", "normalize_by_mean_patch_max"),
    "normalize_probe": ("ptycho_dist.physics.probes", "normalize_probe"),
    "object_from_array": ("ptycho_dist.physics.objects", "object_from_array"),
    "perturbed_probe": ("ptycho_dist.physics.probes", "perturbed_probe"),
    "probe_from_array": ("ptycho_dist.physics.probes", "probe_from_array"),
    "probe_mask": ("ptycho_dist.physics.probes", "probe_mask"),
    "probe_relative_error": ("ptycho_dist.physics.probes", "probe_relative_error"),
    "probe_statistics": ("ptycho_dist.physics.probes", "probe_statistics"),
    "ptychopinn_lines_amplitude": ("ptycho_dist.physics.objects", "ptychopinn_lines_amplitude"),
    "ptychopinn_lines_object": ("ptycho_dist.physics.objects", "ptychopinn_lines_object"),
    "random_scan": ("ptycho_dist.physics.scans", "random_scan"),
    "reference_tanh_phase": ("ptycho_dist.physics.objects", "reference_tanh_phase"),
    "rotation_asymmetry": ("ptycho_dist.physics.probes", "rotation_asymmetry"),
    "sample_counts": ("ptycho_dist.physics.dose", "sample_counts"),
    "scan_box": ("ptycho_dist.physics.scans", "scan_box"),
    "siemens_star_object": ("ptycho_dist.physics.objects", "siemens_star_object"),
    "simulate_patterns": ("ptycho_dist.physics.simulate", "simulate_patterns"),
    "zernike": ("ptycho_dist.physics.probes", "zernike"),
    "zone_plate_probe": ("ptycho_dist.physics.probes", "zone_plate_probe"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ptycho_dist.physics' has no attribute {name!r}")


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
