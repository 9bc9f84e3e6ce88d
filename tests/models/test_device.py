"""The torch paths of simulation and stitching (device="cpu" here) against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ptycho_dist import physics
from ptycho_dist.models.device import resolve_device, simulate_on, stitch_on
from ptycho_dist.stitching import stitch

pytest.importorskip("torch")


@pytest.mark.parametrize(("requested", "gpus", "cuda", "expected"), [
    ("auto", [0], True, "cuda"),
    ("auto", [], True, "numpy"),      # a GPU in the machine but none given to the task
    ("auto", [0], False, "numpy"),    # Ray gave an id but torch sees no CUDA
    ("numpy", [0], True, "numpy"),
    ("cpu", [0], True, "cpu"),
    ("cuda", [0], True, "cuda"),
])
def test_resolve_device(requested, gpus, cuda, expected):
    assert resolve_device(requested, gpu_ids=gpus, cuda_available=cuda) == expected


def test_resolve_device_rejects():
    with pytest.raises(ValueError, match="one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda", gpu_ids=[0], cuda_available=False)


def _scene(n: int = 32):
    obj = physics.lines_object((96, 96), rng=0)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    rng = np.random.default_rng(1)
    positions = rng.uniform(n / 2, 96 - n / 2 - 1, size=(50, 2))
    return obj, probe, positions


def test_simulate_expected_counts_match_numpy():
    obj, probe, pos = _scene()
    ref = physics.simulate_patterns(obj, probe, pos, nphotons=1e6, noise=False)
    got = simulate_on(obj, probe, pos, nphotons=1e6, noise=False, device="cpu")
    assert got.counts.dtype == np.float32 and got.counts.shape == ref.counts.shape
    assert got.scale == pytest.approx(ref.scale, rel=1e-5)
    np.testing.assert_array_equal(got.truth_patches, ref.truth_patches)
    np.testing.assert_allclose(got.counts, ref.counts, rtol=1e-4, atol=1e-3 * ref.counts.max())
    assert got.mean_total_counts == pytest.approx(1e6, rel=1e-4)


def test_simulate_poisson_draws_have_the_numpy_distribution():
    obj, probe, pos = _scene()
    expected = physics.simulate_patterns(obj, probe, pos, nphotons=1e6, noise=False).counts
    got = simulate_on(obj, probe, pos, nphotons=1e6, noise=True, rng=3, device="cpu").counts
    again = simulate_on(obj, probe, pos, nphotons=1e6, noise=True, rng=3, device="cpu").counts
    np.testing.assert_array_equal(got, again)  # seeded
    assert np.all(got == np.round(got)) and got.min() >= 0
    # standardized residuals (C - mu) / sqrt(mu) over pixels with mu > 20: mean 0, variance 1
    mask = expected > 20
    z = (got[mask] - expected[mask]) / np.sqrt(expected[mask])
    assert mask.sum() > 5000
    assert abs(z.mean()) < 5 / np.sqrt(mask.sum()) and abs(z.var() - 1) < 0.05
    # chi-square of low-mean pixels (mu in [0.5, 1.5]) binned by count, against Poisson(mu)
    low = (expected > 0.5) & (expected < 1.5)
    mu, c = expected[low].astype(np.float64), got[low]
    obs = np.array([(c == j).sum() for j in range(4)] + [(c >= 4).sum()])
    probs = np.array([stats.poisson.pmf(j, mu).sum() for j in range(4)]
                     + [stats.poisson.sf(3, mu).sum()])
    assert stats.chisquare(obs, probs * obs.sum() / probs.sum()).pvalue > 1e-3


def test_simulate_numpy_device_is_the_reference():
    obj, probe, pos = _scene()
    a = simulate_on(obj, probe, pos, nphotons=1e5, rng=2, device="numpy")
    b = physics.simulate_patterns(obj, probe, pos, nphotons=1e5, rng=2)
    np.testing.assert_array_equal(a.counts, b.counts)


@pytest.mark.parametrize("weights", [None, "probe"])
def test_stitch_on_torch_matches_numpy(weights):
    rng = np.random.default_rng(4)
    patches = (rng.standard_normal((60, 32, 32)) + 1j * rng.standard_normal((60, 32, 32))).astype(np.complex64)
    pos = rng.uniform(16, 80, size=(60, 2))
    pos[:5] = np.round(pos[:5])
    w = np.exp(-np.hypot(*(np.indices((32, 32)) - 16)) ** 2 / 32) if weights else None
    for shape in ((97, 97), None):
        ref = stitch(patches, pos, crop=12, shape=shape, weights=w)
        got = stitch_on(patches, pos, crop=12, shape=shape, weights=w, device="cpu", chunk_size=16)
        np.testing.assert_array_equal(got.origin, ref.origin)
        np.testing.assert_array_equal(got.covered, ref.covered)
        np.testing.assert_allclose(got.coverage, ref.coverage, rtol=1e-6, atol=1e-7)
        ok = ref.covered
        np.testing.assert_allclose(got.canvas[ok], ref.canvas[ok], rtol=1e-5, atol=1e-6)
        assert np.isnan(got.canvas[~ok]).all() and got.canvas.dtype == np.complex64
