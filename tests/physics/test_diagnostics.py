"""Canvas requirement diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import PhysicsError
from ptycho_dist.physics.diagnostics import (
    canvas_requirement,
    legacy_canvas_side,
    scanned_fraction,
    window_energy_share,
)
from ptycho_dist.physics.probes import disk_probe


def _painted_share(positions: np.ndarray, weight: np.ndarray, centre: np.ndarray,
                   side: float) -> float:
    """Brute force: paint every patch pixel on a large canvas, count those in the window."""
    n = weight.shape[0]
    kept = total = 0.0
    for xk, yk in positions:
        for i in range(n):
            for j in range(n):
                y, x = yk - n / 2 + i, xk - n / 2 + j
                total += weight[i, j]
                if (centre[1] - side / 2 <= y < centre[1] + side / 2
                        and centre[0] - side / 2 <= x < centre[0] + side / 2):
                    kept += weight[i, j]
    return kept / total


@pytest.mark.parametrize("side", [10.0, 23.0, 40.0])
def test_window_share_matches_brute_force(rng: np.random.Generator, side: float) -> None:
    positions = rng.uniform(10, 40, size=(5, 2))
    weight = rng.random((16, 16))
    centre = positions.mean(axis=0)
    assert window_energy_share(positions, weight, centre=centre, side=side) == pytest.approx(
        _painted_share(positions, weight, centre, side), rel=1e-12)


def test_legacy_side() -> None:
    assert [legacy_canvas_side(64, g) for g in (1, 2, 3)] == [74, 78, 82]


def test_requirement_for_a_wide_scan() -> None:
    positions = np.array([[32.0, 40.0], [132.0, 40.0], [232.0, 40.5]])
    out = canvas_requirement(positions, 64, gridsize=1, object_shape=(120, 300))
    assert out["canvas_required_width"] == 200 + 64
    assert out["canvas_required_height"] == 1 + 64  # 0.5 px extent rounds up
    assert out["canvas_required_side"] == 264
    assert out["canvas_fixed_side"] == 74
    # uniform footprint: only the middle patch (centred on the mean x = 132) overlaps the window,
    # and lies wholly inside it: exactly a third of the energy
    assert out["canvas_fixed_energy_share"] == pytest.approx(1 / 3, rel=1e-12)
    assert out["canvas_fixed_clipped_share"] == pytest.approx(1 - out["canvas_fixed_energy_share"])
    assert out["canvas_energy_weight"] == "uniform_footprint"
    assert out["canvas_fits_object"] is True


def test_single_patch_fully_kept_with_probe_weight() -> None:
    out = canvas_requirement(np.array([[50.0, 50.0]]), 64, gridsize=2, probe=disk_probe(64))
    assert out["canvas_fixed_energy_share"] == pytest.approx(1.0)
    assert out["canvas_energy_weight"] == "probe_intensity"
    assert "canvas_fits_object" not in out


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gridsize": 4}, "gridsize must be 1, 2 or 3, got 4"),
    ({"gridsize": 1, "probe": np.ones((32, 32))},
     r"probe must have shape \(64, 64\), got \(32, 32\)"),
])
def test_requirement_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PhysicsError, match=message):
        canvas_requirement(np.array([[50.0, 50.0]]), 64, **kwargs)  # type: ignore[arg-type]


# --- scanned_fraction: the share of the object inside the central N/2 window of some position ---

def _painted_scanned(positions: np.ndarray, shape: tuple[int, int], window: float) -> float:
    """Brute force over every pixel."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    hit = np.zeros(shape, dtype=bool)
    for x, y in positions:
        hit |= ((x - window / 2 <= cols) & (cols < x + window / 2)
                & (y - window / 2 <= rows) & (rows < y + window / 2))
    return float(hit.mean())


def test_scanned_fraction_one_integer_position_is_one_central_window():
    # N = 32: the central window of a patch at (40, 30) is rows 22..37, columns 32..47
    assert scanned_fraction(np.array([[40.0, 30.0]]), (100, 80), 16) == pytest.approx(16 * 16 / 8000)


def test_scanned_fraction_matches_brute_force_and_clips_at_the_border(rng):
    pos = np.concatenate([rng.uniform(-5, 70, size=(40, 2)), [[0.3, 0.7], [63.5, 47.25]]])
    for window in (8, 16, 7.5):
        assert scanned_fraction(pos, (48, 64), window) == pytest.approx(_painted_scanned(pos, (48, 64), window))


def test_scanned_fraction_full_and_partial_grid():
    full = np.stack(np.meshgrid(np.arange(8, 64, 16.0), np.arange(8, 64, 16.0)), -1).reshape(-1, 2)
    assert scanned_fraction(full, (64, 64), 16) == 1.0  # windows tile the object
    assert scanned_fraction(full[:4], (64, 64), 16) == pytest.approx(0.25)  # one row of four: mostly unscanned


@pytest.mark.parametrize("args, message", [
    ((np.zeros((0, 2)), (10, 10), 4), "must not be empty"),
    ((np.zeros((3, 3)), (10, 10), 4), r"shape \(n, 2\)"),
    ((np.zeros((3, 2)), (0, 10), 4), "object_shape must be positive"),
    ((np.zeros((3, 2)), (10, 10), 0), "window must be a positive"),
    ((np.zeros((3, 2)), "big", 4), "object_shape must be"),
])
def test_scanned_fraction_bad_input(args, message):
    with pytest.raises(PhysicsError, match=message):
        scanned_fraction(*args)
