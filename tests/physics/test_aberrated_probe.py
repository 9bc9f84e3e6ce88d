"""The generated experimental-like probe (``probe.kind = "aberrated"``) and Zernike polynomials."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.probes import (
    NOLL_LOW_ORDER,
    aberrated_probe,
    disk_probe,
    normalize_probe,
    radius_map,
    rotate_180,
    rotation_asymmetry,
    zernike,
)


def _aperture(n: int, radius: float, ellipticity: float, angle: float, offset: tuple[float, float]) -> np.ndarray:
    """The hard ellipse of the docstring, written independently: bool (N, N)."""
    cx, cy = n // 2 + offset[0], n // 2 + offset[1]
    y, x = np.indices((n, n), dtype=np.float64)
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = (y - cy) * math.cos(angle) - (x - cx) * math.sin(angle)
    return (u / radius) ** 2 + (v / (radius * (1 - ellipticity))) ** 2 <= 1


def _far_field_rms_radius(probe: np.ndarray) -> float:
    p, _ = normalize_probe(probe)
    power = np.abs(np.fft.fftshift(np.fft.fft2(p))) ** 2
    return float(np.sqrt((power * radius_map(p.shape[0]) ** 2).sum() / power.sum()))


def test_zernike_polynomials_are_orthonormal_on_the_unit_disk() -> None:
    y, x = (np.mgrid[-1:1:801j, -1:1:801j])
    inside = np.hypot(x, y) <= 1
    rho, theta = np.hypot(x, y)[inside], np.arctan2(y, x)[inside]
    basis = np.array([zernike(*NOLL_LOW_ORDER[j], rho, theta) for j in sorted(NOLL_LOW_ORDER)])
    gram = basis @ basis.T / inside.sum()
    np.testing.assert_allclose(gram, np.eye(len(NOLL_LOW_ORDER)), atol=0.01)
    # Noll's forms: Z4 = sqrt3 (2 rho^2 - 1), Z8 = sqrt8 (3 rho^3 - 2 rho) cos(theta), Z9 = sqrt8 rho^3 sin(3 theta)
    r, t = np.array([0.3, 0.9]), np.array([0.4, 2.0])
    np.testing.assert_allclose(zernike(2, 0, r, t), math.sqrt(3) * (2 * r**2 - 1))
    np.testing.assert_allclose(zernike(3, 1, r, t), math.sqrt(8) * (3 * r**3 - 2 * r) * np.cos(t))
    np.testing.assert_allclose(zernike(3, -3, r, t), math.sqrt(8) * r**3 * np.sin(3 * t))


def test_breaks_the_180_degree_symmetry_of_the_disk() -> None:
    disk = disk_probe(64)
    assert rotation_asymmetry(disk) < 1e-7 and rotation_asymmetry(disk, conjugate=True) < 1e-7
    for seed in range(3):
        probe = aberrated_probe(64, rng=seed)
        assert rotation_asymmetry(probe) > 0.5
        assert rotation_asymmetry(probe, conjugate=True) > 0.5  # the twin-image symmetry too
    # centred circular aperture, no aberration: symmetric again (the measure can say 0)
    plain = aberrated_probe(64, ellipticity=0.0, aperture_offset=(0.0, 0.0), zernike_rms=0.0)
    assert rotation_asymmetry(plain) < 1e-7


def test_rotate_180_is_about_the_centre_pixel() -> None:
    a = np.zeros((8, 8))
    a[4 + 1, 4 + 2] = 1.0  # (y, x) offset (+1, +2) from the centre (4, 4)
    turned = rotate_180(a)
    assert turned[4 - 1, 4 - 2] == 1.0 and turned.sum() == 1.0


@pytest.mark.parametrize("rms", [0.2, 0.5])
def test_zernike_rms_matches_the_request(rms: float) -> None:
    n, radius, e, angle, offset = 64, 12.8, 0.3, 0.5, (1.5, -1.0)
    probe = aberrated_probe(n, zernike_rms=rms, rng=11)
    phase = np.angle(probe[_aperture(n, radius, e, angle, offset)]).astype(np.float64)
    assert np.abs(phase).max() < np.pi - 0.1  # no wrapping: the angle is the Zernike phase itself
    assert float(np.std(phase)) == pytest.approx(rms, rel=1e-4)


def test_phase_is_the_stated_zernike_sum_plus_defocus() -> None:
    n, radius, offset, defocus = 64, 12.8, (1.5, -1.0), 1.2
    probe = aberrated_probe(n, defocus=defocus, zernike_rms=0.5, rng=4)
    flat = aberrated_probe(n, defocus=0.0, zernike_rms=0.5, rng=4)
    y, x = np.indices((n, n), dtype=np.float64)
    rho = np.hypot(x - n // 2 - offset[0], y - n // 2 - offset[1]) / radius
    inside = _aperture(n, radius, 0.3, 0.5, offset)
    extra = np.angle(probe[inside] * np.conj(flat[inside]))
    np.testing.assert_allclose(extra, defocus * rho[inside] ** 2, atol=2e-6)
    # the seeded part is a combination of Z4..Z10 about the aperture centre: least squares fits it exactly
    theta = np.arctan2(y - n // 2 - offset[1], x - n // 2 - offset[0])
    basis = np.stack([zernike(*NOLL_LOW_ORDER[j], rho[inside], theta[inside]) for j in sorted(NOLL_LOW_ORDER)], 1)
    phase = np.angle(flat[inside])
    coef, *_ = np.linalg.lstsq(np.c_[basis, np.ones(len(phase))], phase, rcond=None)
    np.testing.assert_allclose(np.c_[basis, np.ones(len(phase))] @ coef, phase, atol=1e-5)


def test_aperture_is_elliptical_and_off_centre() -> None:
    probe = aberrated_probe(64, zernike_rms=0.0, blur=0.0)
    np.testing.assert_array_equal(np.abs(probe) > 0.5, _aperture(64, 12.8, 0.3, 0.5, (1.5, -1.0)))
    weights = np.abs(probe) ** 2
    y, x = np.indices(probe.shape)
    assert (weights * x).sum() / weights.sum() - 32 == pytest.approx(1.5, abs=1e-6)
    assert (weights * y).sum() / weights.sum() - 32 == pytest.approx(-1.0, abs=1e-6)


def test_deterministic_finite_and_normalizable() -> None:
    a, b = aberrated_probe(64, rng=3), aberrated_probe(64, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, aberrated_probe(64, rng=4))
    assert a.shape == (64, 64) and a.dtype == np.complex64 and np.isfinite(a).all()
    assert float(np.abs(a).max()) == pytest.approx(1.0, abs=1e-6)
    normalized, factor = normalize_probe(a)
    assert np.isfinite(normalized).all() and factor > 0


def test_far_field_is_wider_than_the_disks() -> None:
    """rms radius of |F P|^2: 2.26 px for the disk, 3.17 px for the default aberrated probe (seed 0)."""
    disk, aberrated = _far_field_rms_radius(disk_probe(64)), _far_field_rms_radius(aberrated_probe(64, rng=0))
    assert disk == pytest.approx(2.263, abs=0.01)
    assert aberrated > 1.3 * disk


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ellipticity": 1.0}, "ellipticity must be in"),
    ({"aperture_offset": (20.0, 0.0)}, "must be at most N/2 - 1"),
    ({"aperture_offset": (float("nan"), 0.0)}, "must be finite"),
    ({"zernike_rms": -0.1}, "zernike_rms must be finite and >= 0"),
    ({"zernike_terms": (11,)}, "zernike_terms must be a non-empty subset"),
    ({"blur": -1.0}, "blur must be finite"),
])
def test_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        aberrated_probe(64, **kwargs)  # type: ignore[arg-type]
