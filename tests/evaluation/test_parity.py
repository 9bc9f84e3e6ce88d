"""Parity figures between two reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import EvaluationError
from ptycho_dist.evaluation.parity import max_differences, patch_variance_ratio, stitched_agreement


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
