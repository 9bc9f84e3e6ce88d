"""Dose: scale, Poisson counts, model amplitude (PHYSICS.md "Dose")."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.dose import dose_scale, model_amplitude, sample_counts
from ptycho_dist.physics.forward import far_field_intensity


@pytest.fixture
def waves(rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal((40, 16, 16)) + 1j * rng.standard_normal((40, 16, 16))).astype(
        np.complex64)


def test_scale_definition(waves: np.ndarray) -> None:
    energy = (np.abs(waves.astype(np.complex128)) ** 2).sum(axis=(1, 2)).mean()
    assert dose_scale(waves, nphotons=1e6) == pytest.approx(np.sqrt(1e6 / energy), rel=1e-12)


def test_scale_same_from_waves_or_intensity(waves: np.ndarray) -> None:
    from_waves = dose_scale(waves, nphotons=1e5)
    from_intensity = dose_scale(far_field_intensity(waves), nphotons=1e5)
    assert from_intensity == pytest.approx(from_waves, rel=1e-5)


@pytest.mark.parametrize("nphotons", [1e4, 1e5, 1e6, 1e7, 1e8, 1e9])
def test_mean_total_counts_within_three_sigma(waves: np.ndarray, nphotons: float,
                                              rng: np.random.Generator) -> None:
    intensity = far_field_intensity(waves)
    s = dose_scale(intensity, nphotons=nphotons)
    counts = sample_counts(intensity, scale=s, rng=rng)
    k = len(counts)
    mean_total = counts.sum(axis=(1, 2), dtype=np.float64).mean()
    # the grand total is Poisson with mean exactly k * nphotons (up to float32 rounding of I),
    # so the mean per pattern has sigma sqrt(k * nphotons) / k = sqrt(nphotons / k)
    sigma = np.sqrt(nphotons / k)
    assert abs(mean_total - nphotons) < 3 * sigma
    assert counts.dtype == np.float32 and counts.shape == intensity.shape
    np.testing.assert_array_equal(counts, np.round(counts))  # integers (all < 2**24 here)


@pytest.mark.parametrize("nphotons", [1e4, 1e9])
def test_total_count_z_scores_are_standard(waves: np.ndarray, nphotons: float) -> None:
    """Over 100 seeds, (mean total - nphotons) / sqrt(nphotons / k) has mean 0 and std 1."""
    intensity = far_field_intensity(waves)
    s = dose_scale(intensity, nphotons=nphotons)
    k = len(intensity)
    z = np.array([(sample_counts(intensity, scale=s, rng=seed).sum(dtype=np.float64) / k
                   - nphotons) / np.sqrt(nphotons / k) for seed in range(100)])
    assert abs(z.mean()) < 0.3  # 3 standard errors of the mean of 100 unit normals
    assert 0.75 < z.std() < 1.25


def test_noise_free_is_exactly_scaled(waves: np.ndarray) -> None:
    intensity = far_field_intensity(waves)
    s = dose_scale(intensity, nphotons=1e4)
    expected = sample_counts(intensity, scale=s, noise=False)
    np.testing.assert_allclose(expected, s * s * intensity.astype(np.float64), rtol=1e-6)
    assert expected.sum(axis=(1, 2), dtype=np.float64).mean() == pytest.approx(1e4, rel=1e-5)


def test_counts_are_poisson_distributed() -> None:
    lam = np.full(200_000, 50.0)
    counts = sample_counts(lam, scale=1.0, rng=3)
    # mean and variance both 50; standard errors ~0.016 and ~0.16
    assert counts.mean() == pytest.approx(50.0, abs=0.08)
    assert counts.var() == pytest.approx(50.0, abs=0.8)


def test_determinism(waves: np.ndarray) -> None:
    intensity = far_field_intensity(waves)
    a = sample_counts(intensity, scale=10.0, rng=11)
    b = sample_counts(intensity, scale=10.0, rng=np.random.default_rng(11))
    c = sample_counts(intensity, scale=10.0, rng=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_model_amplitude_inverts_the_scale() -> None:
    counts = np.array([[0.0, 4.0], [100.0, 9.0]], np.float32)
    np.testing.assert_allclose(model_amplitude(counts, scale=2.0), [[0, 1], [5, 1.5]])


@pytest.mark.parametrize("nphotons", [-1.0, 0.0, float("nan"), float("inf")])
def test_bad_nphotons(waves: np.ndarray, nphotons: float) -> None:
    with pytest.raises(PhysicsError, match=rf"nphotons must be finite and > 0, got {nphotons!r}"):
        dose_scale(waves, nphotons=nphotons)


def test_zero_waves_cannot_set_a_dose() -> None:
    with pytest.raises(PhysicsError,
                       match=r"mean pattern energy must be finite and > 0 to set a dose, got 0.0"):
        dose_scale(np.zeros((2, 4, 4), np.complex64), nphotons=1e3)


@pytest.mark.parametrize(("intensity", "message"), [
    (np.array([[1.0, -0.5]]), "intensity must be >= 0, got minimum -0.5"),
    (np.array([[1.0, np.nan]]), "got 1 NaN/inf"),
    (np.array([[1.0 + 1j]]), "intensity must be real"),
])
def test_bad_intensity(intensity: np.ndarray, message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        sample_counts(intensity, scale=1.0, rng=0)


def test_bad_scale() -> None:
    with pytest.raises(PhysicsError, match="scale must be finite and > 0, got -2.0"):
        sample_counts(np.ones((2, 2)), scale=-2.0)


def test_too_large_mean_is_refused() -> None:
    with pytest.raises(PhysicsError, match="exceed the Poisson sampler's limit"):
        sample_counts(np.array([1e19]), scale=1.0, rng=0)
