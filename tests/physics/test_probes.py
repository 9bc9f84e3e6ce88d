"""Probes: generators, validation, normalization, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.probes import (
    disk_probe,
    gaussian_probe,
    normalize_probe,
    probe_from_array,
    probe_mask,
    probe_statistics,
    zone_plate_probe,
)


def _mean_abs_in_mask_reference(probe: np.ndarray) -> float:
    """Independent computation: disk of radius N/4 about (N//2, N//2), mean over all N^2 pixels."""
    n = probe.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            if (i - n // 2) ** 2 + (j - n // 2) ** 2 <= (n / 4) ** 2:
                total += abs(complex(probe[i, j]))
    return total / n**2


@pytest.mark.parametrize("probe_scale", [4.0, 1.0, 10.0])
@pytest.mark.parametrize("make", [lambda: disk_probe(32), lambda: gaussian_probe(32, sigma=5.0),
                                  lambda: zone_plate_probe(32, defocus=3.0, central_stop=0.2)])
def test_normalization_pins_mean_abs_in_mask(make: object, probe_scale: float) -> None:
    probe = make()  # type: ignore[operator]
    before = probe.copy()
    normalized, factor = normalize_probe(probe, probe_scale=probe_scale)
    assert _mean_abs_in_mask_reference(normalized) == pytest.approx(1 / probe_scale, rel=1e-5)
    assert factor == pytest.approx(1 / (probe_scale * _mean_abs_in_mask_reference(probe)), rel=1e-5)
    np.testing.assert_allclose(normalized, probe * factor, rtol=1e-6)
    np.testing.assert_array_equal(probe, before)
    assert normalized.dtype == np.complex64


def test_normalization_factor_of_a_flat_probe() -> None:
    n = 16
    count = int(probe_mask(n).sum())  # pixels with r <= 4 about (8, 8): 49
    assert count == 49
    _, factor = normalize_probe(np.full((n, n), 2.0 + 0j), probe_scale=4.0)
    assert factor == pytest.approx(1 / (4.0 * 2.0 * count / n**2))


@pytest.mark.parametrize(("array", "kwargs", "message"), [
    (np.ones((16, 16)), {"probe_scale": 0.0}, "probe_scale must be finite and > 0, got 0.0"),
    (np.ones((12, 12)), {}, "power of two >= 2, got 12"),
    (np.ones((16, 8)), {}, r"square \(N, N\), got shape \(16, 8\)"),
    (np.zeros((16, 16)), {}, "zero inside the N/4 mask"),
])
def test_normalization_errors(array: np.ndarray, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        normalize_probe(array, **kwargs)


@pytest.mark.parametrize("n", [16, 64])
def test_disk_probe_is_centred_flat_phase(n: int) -> None:
    probe = disk_probe(n)
    assert probe.shape == (n, n) and probe.dtype == np.complex64
    assert np.abs(probe).max() == pytest.approx(1.0)
    assert abs(probe[n // 2, n // 2]) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(probe.imag, 0)
    stats = probe_statistics(probe)
    assert abs(stats["probe_centroid_dx"]) < 1e-9 and abs(stats["probe_centroid_dy"]) < 1e-9
    # the 1/2 level of a blurred disk edge sits at the disk radius (0.2 N by default)
    row = np.abs(probe[n // 2, n // 2:])
    half = np.argmax(row < 0.5)
    assert 0.2 * n - 1 <= half <= 0.2 * n + 1


def test_gaussian_probe_statistics_match_analytic_values() -> None:
    sigma = 5.0
    stats = probe_statistics(gaussian_probe(64, sigma=sigma))
    # |P|^2 = exp(-r^2 / sigma^2): power = pi sigma^2, <r^2> = sigma^2
    assert stats["probe_power"] == pytest.approx(np.pi * sigma**2, rel=1e-4)
    assert stats["probe_rms_radius"] == pytest.approx(sigma, rel=1e-4)
    assert stats["probe_peak_amplitude"] == pytest.approx(1.0)
    # share of power inside r <= 16: 1 - exp(-16^2 / 25) on a continuous disk
    assert stats["probe_power_fraction_in_mask"] == pytest.approx(1 - np.exp(-256 / 25), abs=1e-3)


def test_statistics_see_an_off_centre_probe() -> None:
    probe = np.roll(gaussian_probe(32, sigma=3.0), (2, -3), axis=(0, 1))
    stats = probe_statistics(probe)
    assert stats["probe_centroid_dy"] == pytest.approx(2.0, abs=1e-6)
    assert stats["probe_centroid_dx"] == pytest.approx(-3.0, abs=1e-6)
    assert stats["probe_centroid_offset"] == pytest.approx(np.hypot(2, 3), abs=1e-6)


def test_zone_plate_has_quadratic_phase_and_stop() -> None:
    n, radius, defocus = 64, 16.0, 2.0
    probe = zone_plate_probe(n, radius=radius, defocus=defocus, central_stop=0.25, blur=0.0)
    assert abs(probe[n // 2, n // 2]) == 0.0  # inside the central stop
    assert abs(probe[n // 2, n // 2 + 8]) == pytest.approx(1.0)
    expected_phase = defocus * (8 / radius) ** 2
    assert np.angle(probe[n // 2, n // 2 + 8]) == pytest.approx(expected_phase, abs=1e-6)
    assert abs(probe[n // 2, n // 2 + 17]) == 0.0  # outside the aperture
    flat = zone_plate_probe(n, radius=radius, defocus=0.0)
    np.testing.assert_array_equal(flat.imag, 0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"defocus": float("nan")}, "defocus must be finite"),
    ({"central_stop": 1.0}, r"central_stop must be in \[0, 1\), got 1.0"),
    ({"radius": -1.0}, "radius must be finite and > 0, got -1.0"),
])
def test_zone_plate_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        zone_plate_probe(32, **kwargs)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: disk_probe(48), "power of two >= 2, got 48"),
    (lambda: gaussian_probe(32, sigma=0.0), "sigma must be finite and > 0, got 0.0"),
    (lambda: disk_probe(32, blur=-1.0), "blur must be finite and >= 0, got -1.0"),
])
def test_generator_errors(call: object, message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        call()  # type: ignore[operator]


def test_probe_from_array_validates() -> None:
    out = probe_from_array(np.ones((16, 16)), n=16)
    assert out.dtype == np.complex64 and out.shape == (16, 16)
    with pytest.raises(PhysicsError,
                       match=r"probe array must have shape \(16, 16\), got \(16, 32\)"):
        probe_from_array(np.ones((16, 32)), n=16)
    with pytest.raises(PhysicsError, match=r"must be 2-D, got shape \(2, 16, 16\)"):
        probe_from_array(np.ones((2, 16, 16)), n=16)
    bad = np.ones((16, 16), np.complex64)
    bad[0, :3] = np.inf
    with pytest.raises(PhysicsError, match="got 3 NaN/inf value"):
        probe_from_array(bad, n=16)


@pytest.mark.parametrize("error", [0.0, 0.1, 0.45, 0.9])
def test_perturbed_probe_has_the_requested_error(error: float) -> None:
    from ptycho_dist.physics import perturbed_probe, probe_relative_error

    probe, _ = normalize_probe(disk_probe(32))
    p0 = perturbed_probe(probe, relative_error=error, rng=3)
    assert p0.dtype == np.complex64 and p0.shape == probe.shape
    assert probe_relative_error(p0, probe) == pytest.approx(error, abs=1e-5)
    assert np.all(p0[np.abs(probe) == 0] == 0)  # the error lives where the probe does
    np.testing.assert_array_equal(p0, perturbed_probe(probe, relative_error=error, rng=3))


def test_probe_relative_error_ignores_scale_and_phase() -> None:
    from ptycho_dist.physics import probe_relative_error

    probe, _ = normalize_probe(disk_probe(32))
    assert probe_relative_error(3.0 * np.exp(1j * 0.7) * probe, probe) == pytest.approx(0.0, abs=1e-6)
    assert probe_relative_error(np.zeros_like(probe), probe) == pytest.approx(1.0)
    with pytest.raises(PhysicsError):
        probe_relative_error(probe[:16], probe)
