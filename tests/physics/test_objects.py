"""Object generators and validation of user arrays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.objects import (
    gaussian_random_field_object,
    lines_object,
    object_from_array,
    siemens_star_object,
)

GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "lines": lambda **kw: lines_object((64, 80), n_lines=50, **kw),
    "grf": lambda **kw: gaussian_random_field_object((64, 80), correlation_length=4.0, **kw),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_random_objects_span_the_ranges(name: str) -> None:
    obj = GENERATORS[name](amplitude_range=(0.2, 0.9), phase_range=(-0.3, 0.6), rng=1)
    assert obj.shape == (64, 80) and obj.dtype == np.complex64
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert amplitude.min() == pytest.approx(0.2, abs=1e-6)
    assert amplitude.max() == pytest.approx(0.9, abs=1e-6)
    assert phase.min() == pytest.approx(-0.3, abs=1e-6)
    assert phase.max() == pytest.approx(0.6, abs=1e-6)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_random_objects_are_seeded(name: str) -> None:
    make = GENERATORS[name]
    np.testing.assert_array_equal(make(rng=5), make(rng=np.random.default_rng(5)))
    assert not np.array_equal(make(rng=5), make(rng=6))


def test_lines_object_is_amplitude_dominant_by_default() -> None:
    obj = lines_object((64, 64), rng=0)
    assert np.ptp(np.abs(obj)) == pytest.approx(0.5, abs=1e-6)
    assert np.ptp(np.angle(obj)) == pytest.approx(0.5, abs=1e-6)
    # amplitude and phase come from the same line map: perfectly rank-correlated
    assert np.corrcoef(np.abs(obj).ravel(), np.angle(obj).ravel())[0, 1] > 0.999


def test_lines_object_has_line_structure() -> None:
    """Thin lines: most pixels near the background, a few bright ones."""
    obj = lines_object((128, 128), n_lines=40, widths=(0.5,), rng=3)
    unit = (np.abs(obj) - 0.5) / 0.5
    assert np.median(unit) < 0.05
    assert (unit > 0.2).mean() > 0.02


def test_siemens_star_is_deterministic_and_has_spokes() -> None:
    star = siemens_star_object((65, 65), n_spokes=8, amplitude_range=(0.0, 1.0), phase_range=(0, 0))
    np.testing.assert_array_equal(star, siemens_star_object((65, 65), n_spokes=8,
                                                            amplitude_range=(0.0, 1.0),
                                                            phase_range=(0, 0)))
    # along a circle of radius 20 the map switches 2 * n_spokes times
    theta = np.linspace(0, 2 * np.pi, 720, endpoint=False) + 0.01
    ring = np.abs(star[np.rint(32 + 20 * np.sin(theta)).astype(int),
                       np.rint(32 + 20 * np.cos(theta)).astype(int)]) > 0.5
    assert int(np.count_nonzero(ring != np.roll(ring, 1))) == 16
    assert abs(star[0, 0]) == 0.0  # outside the star disk


@pytest.mark.parametrize(("call", "message"), [
    (lambda: lines_object((0, 10)), r"two positive integers \(H, W\), got \(0, 10\)"),
    (lambda: lines_object((10, 10), n_lines=0), "n_lines must be an integer >= 1, got 0"),
    (lambda: lines_object((10, 10), widths=(1.0, -1.0)), "each line width must be finite and > 0"),
    (lambda: lines_object((10, 10), amplitude_range=(1.0, 0.5)), r"low <= high, got \(1.0, 0.5\)"),
    (lambda: lines_object((10, 10), amplitude_range=(-0.5, 1.0)), "must start at >= 0.0"),
    (lambda: gaussian_random_field_object((10, 10), correlation_length=0),
     "correlation_length must be finite and > 0, got 0"),
    (lambda: siemens_star_object((10, 10), n_spokes=0), "n_spokes must be an integer >= 1, got 0"),
])
def test_generator_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        call()


def test_object_from_array_counts_bad_pixels() -> None:
    arr = np.ones((8, 8))
    arr[1, 2], arr[3, 3], arr[4, 4] = np.nan, np.inf, -np.inf
    with pytest.raises(PhysicsError, match=r"object array must be finite everywhere, got 3 NaN/inf "
                                           r"value\(s\) of 64"):
        object_from_array(arr)


def test_object_from_array_converts_real_and_copies() -> None:
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    obj = object_from_array(arr)
    assert obj.dtype == np.complex64
    np.testing.assert_array_equal(obj, arr)
    obj[0, 0] = 99
    assert arr[0, 0] == 1.0


def test_object_from_array_rescales_into_ranges() -> None:
    arr = np.array([[1.0, 2.0], [3.0, 5.0]]) * np.exp(1j * np.array([[0.0, 0.1], [0.2, 0.4]]))
    obj = object_from_array(arr, amplitude_range=(0.5, 1.0), phase_range=(0.0, 1.0))
    np.testing.assert_allclose(np.abs(obj), [[0.5, 0.625], [0.75, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(np.angle(obj), [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)


@pytest.mark.parametrize(("array", "message"), [
    (np.ones(5), r"must be 2-D, got shape \(5,\)"),
    (np.ones((0, 4)), "must not be empty"),
    (np.array([["a", "b"]]), "must be a numeric array"),
])
def test_object_from_array_shape_errors(array: np.ndarray, message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        object_from_array(array)
