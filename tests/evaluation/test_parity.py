"""Parity figures between two reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.parity import (
    max_differences,
    patch_variance_ratio,
    seed_spread_tolerance,
    stitched_agreement,
)


def test_max_differences(rng: np.random.Generator) -> None:
    a = (rng.normal(size=(3, 8, 8)) + 1j * rng.normal(size=(3, 8, 8))).astype(np.complex64)
    assert max_differences(a, a) == (0.0, 0.0)
    b = a.copy()
    b[1, 2, 3] += 0.5
    absd, reld = max_differences(a, b)
    assert absd == pytest.approx(0.5, rel=1e-6) and reld == pytest.approx(0.5 / np.abs(a).max(), rel=1e-6)
    with pytest.raises(EvaluationError, match="one shape"):
        max_differences(a, a[:2])


def test_variance_ratio_and_stitched_agreement(rng: np.random.Generator) -> None:
    a = rng.uniform(0.5, 1.0, size=(4, 16, 16)) * np.exp(1j * rng.uniform(0, 0.3, size=(4, 16, 16)))
    assert patch_variance_ratio(a, a) == pytest.approx(1.0)
    assert patch_variance_ratio(2 * a, a) == pytest.approx(4.0)
    canvas = rng.uniform(0.5, 1.0, size=(32, 32)).astype(np.complex64)
    canvas[:4] = np.nan
    same = stitched_agreement(canvas, canvas)
    assert same["stitched_amp_mae"] == 0.0 and same["stitched_amp_ssim"] == pytest.approx(1.0)
    worse = stitched_agreement(canvas, canvas * 0.9)
    assert worse["stitched_amp_mae"] > 0.04 and worse["stitched_amp_ssim"] < 1.0


def test_seed_spread_tolerance_by_hand() -> None:
    a, b = [0.50, 0.60, 0.70], [0.45, 0.55, 0.65, 0.75]
    out = seed_spread_tolerance(a, b)
    sa, sb = 0.1, float(np.std(b, ddof=1))  # sample standard deviations (ddof = 1)
    assert out["std_a"] == pytest.approx(sa) and out["std_b"] == pytest.approx(sb)
    assert out["tolerance"] == pytest.approx(3 * np.sqrt(sa**2 + sb**2))
    assert seed_spread_tolerance(a, b, k=2.0)["tolerance"] == pytest.approx(2 * np.sqrt(sa**2 + sb**2))
    assert out["mean_delta"] == pytest.approx(0.60 - 0.60)
    assert out["mean_delta_se"] == pytest.approx(np.sqrt(sa**2 / 3 + sb**2 / 4))
    assert (out["n_a"], out["n_b"]) == (3.0, 4.0)
    shifted = seed_spread_tolerance([x + 0.2 for x in a], b)
    assert shifted["z"] == pytest.approx(0.2 / out["mean_delta_se"])  # a systematic offset stands out
    assert shifted["tolerance"] == pytest.approx(out["tolerance"])   # the spread does not move


@pytest.mark.parametrize(("a", "b", "k", "match"), [
    ([0.5], [0.4, 0.5], 3.0, "ssim_a: the seed spread needs >= 2"),
    ([0.5, 0.6], [0.4, float("nan")], 3.0, "ssim_b"),
    ([0.5, 0.6], [0.4, 0.5], 0.0, "k must be"),
])
def test_seed_spread_tolerance_refuses(a: list[float], b: list[float], k: float, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        seed_spread_tolerance(a, b, k=k)
