"""End-to-end simulation against the step-by-step functions."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics import (
    disk_probe,
    extract_patches,
    far_field_intensity,
    exit_waves,
    grid_scan,
    lines_object,
    normalize_probe,
    simulate_patterns,
)


@pytest.fixture(scope="module")
def setup() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obj = lines_object((96, 96), n_lines=60, rng=1)
    probe, _ = normalize_probe(disk_probe(32))
    positions = grid_scan((96, 96), 32, step=4.3, jitter=0.4, rng=2)  # sub-pixel positions
    return obj, probe, positions


@pytest.mark.parametrize("interpolation", ["bilinear", "fourier"])
def test_matches_step_by_step(setup: tuple[np.ndarray, ...], interpolation: str) -> None:
    obj, probe, positions = setup
    result = simulate_patterns(obj, probe, positions, nphotons=1e6, noise=False,
                               interpolation=interpolation, batch_size=50)
    patches = extract_patches(obj, positions, 32, interpolation=interpolation)
    intensity = far_field_intensity(exit_waves(probe, patches)).astype(np.float64)
    scale2 = 1e6 / intensity.sum(axis=(1, 2)).mean()
    np.testing.assert_array_equal(result.truth_patches, patches)
    expected = scale2 * intensity
    np.testing.assert_allclose(result.counts, expected, rtol=1e-4, atol=1e-6 * expected.max())
    assert result.scale == pytest.approx(np.sqrt(scale2), rel=1e-5)
    assert result.mean_total_counts == pytest.approx(1e6, rel=1e-5)
    assert result.counts.dtype == np.float32 and result.truth_patches.dtype == np.complex64


@pytest.mark.parametrize("nphotons", [1e4, 1e6, 1e9])
def test_mean_total_counts_within_three_sigma(setup: tuple[np.ndarray, ...],
                                              nphotons: float) -> None:
    obj, probe, positions = setup
    result = simulate_patterns(obj, probe, positions, nphotons=nphotons, rng=5)
    sigma = np.sqrt(nphotons / len(positions))  # total ~ Poisson(k * nphotons)
    assert abs(result.mean_total_counts - nphotons) < 3 * sigma
    amplitude = result.model_amplitude()
    np.testing.assert_allclose(amplitude, np.sqrt(result.counts) / result.scale, rtol=1e-6)


def test_result_independent_of_batching_and_threads(setup: tuple[np.ndarray, ...]) -> None:
    obj, probe, positions = setup
    ref = simulate_patterns(obj, probe, positions, nphotons=1e5, rng=9)
    other = simulate_patterns(obj, probe, positions, nphotons=1e5, rng=9, batch_size=7, workers=2)
    np.testing.assert_array_equal(ref.counts, other.counts)
    np.testing.assert_array_equal(ref.truth_patches, other.truth_patches)


def test_seed_determinism(setup: tuple[np.ndarray, ...]) -> None:
    obj, probe, positions = setup
    a = simulate_patterns(obj, probe, positions, nphotons=1e5, rng=3).counts
    b = simulate_patterns(obj, probe, positions, nphotons=1e5, rng=np.random.default_rng(3)).counts
    c = simulate_patterns(obj, probe, positions, nphotons=1e5, rng=4).counts
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_inputs_not_modified(setup: tuple[np.ndarray, ...]) -> None:
    obj, probe, positions = setup
    copies = [x.copy() for x in setup]
    simulate_patterns(obj, probe, positions, nphotons=1e3, rng=0)
    for before, after in zip(copies, setup):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(("change", "message"), [
    ({"nphotons": -5.0}, r"nphotons must be finite and > 0, got -5.0"),
    ({"probe": np.ones((32, 16))}, r"probe must be square \(N, N\), got shape \(32, 16\)"),
    ({"probe": np.ones((24, 24))}, r"power of two >= 2, got 24"),
    ({"positions": np.array([[10.0, 48.0]])}, r"1 of 1 positions put the 32x32 patch outside"),
    ({"interpolation": "nearest"}, "interpolation must be one of"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"workers": 0}, r"workers must be an integer >= 1 or -1"),
])
def test_bad_inputs(setup: tuple[np.ndarray, ...], change: dict[str, object], message: str) -> None:
    obj, probe, positions = setup
    args: dict[str, object] = {"obj": obj, "probe": probe, "positions": positions,
                               "nphotons": 1e3, **change}
    obj_arg, probe_arg, pos_arg = args.pop("obj"), args.pop("probe"), args.pop("positions")
    with pytest.raises(PhysicsError, match=message):
        simulate_patterns(obj_arg, probe_arg, pos_arg, **args)  # type: ignore[arg-type]
