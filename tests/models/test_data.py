"""Numpy preprocessing shared by both backends: normalization, scales, split, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptycho_dist.errors import ModelError
from ptycho_dist.models import (
    InferResult,
    PinnConfig,
    TrainData,
    normalization_factor,
    normalized_inputs,
    prepare_arrays,
    prepare_inference,
    starting_log_scale,
    train_val_split,
)
from ptycho_dist.models.data import check_arrays, initial_log_scale


def test_normalization_factor_definition(rng: np.random.Generator) -> None:
    amps = rng.uniform(0, 3, size=(5, 4, 32, 32))
    f = normalization_factor(amps)
    # independent check: per-pattern energy, averaged over all 20 patterns
    energies = [np.sum((f * amps[b, c]) ** 2) for b in range(5) for c in range(4)]
    assert np.mean(energies) == pytest.approx(16.0**2, rel=1e-12)
    assert normalization_factor(np.ones((3, 64, 64))) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8)), np.ones((2, 8, 4)), np.ones((0, 8, 8))])
def test_normalization_factor_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ModelError, match="amplitudes must"):
        normalization_factor(bad)


def test_normalized_inputs() -> None:
    counts = np.full((1, 1, 4, 4), 16.0, dtype=np.float32)
    x = normalized_inputs(counts, scale=2.0, norm_factor=3.0)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, np.full((1, 1, 4, 4), 6.0, dtype=np.float32))


def test_initial_log_scale() -> None:
    assert initial_log_scale(1e6, 64) == pytest.approx(math.log(1000 / 32))
    with pytest.raises(ModelError, match="nphotons > 0"):
        initial_log_scale(0.0, 64)


def test_starting_log_scale_modes() -> None:
    compat = PinnConfig(log_scale_init="nphotons")
    assert starting_log_scale(compat, nphotons=1e6, scale=7.0) == pytest.approx(math.log(1000 / 32))
    assert PinnConfig().log_scale_init == "dose"
    dose = PinnConfig(log_scale_init="dose")
    assert starting_log_scale(dose, nphotons=1e6, scale=7.0) == pytest.approx(math.log(7.0))
    with pytest.raises(ModelError, match="log_scale_init='dose' needs a finite scale > 0, got nan"):
        starting_log_scale(dose, nphotons=1e6, scale=math.nan)


@pytest.mark.parametrize(("n", "frac", "n_val"),
                         [(10, 0.1, 1), (10, 0.25, 2), (7, 0.0, 0), (3, 0.01, 1), (5, 0.9, 4)])
def test_train_val_split(n: int, frac: float, n_val: int) -> None:
    tr, va = train_val_split(n, val_fraction=frac, seed=3)
    assert len(va) == n_val and len(tr) == n - n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    tr2, va2 = train_val_split(n, val_fraction=frac, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)


@pytest.mark.parametrize(("n", "frac", "n_val"), [(1, 0.5, 1), (1, 0.01, 1), (4, 0.9, 4)])
def test_train_val_split_needs_training_group(n: int, frac: float, n_val: int) -> None:
    with pytest.raises(ModelError, match=f"need at least one training group: {n} groups with "
                                         f"val_fraction={frac} leave {n_val} for validation"):
        train_val_split(n, val_fraction=frac, seed=0)


def _arrays(b: int = 2, c: int = 1, n: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros((b, c, n, n), np.float32), np.ones((n, n), np.complex64), np.zeros((b, c, 2)))


@pytest.mark.parametrize(("change", "message"), [
    ({"relative": np.zeros((2, 2))}, r"relative must have shape \(2, 1, 2\) to match counts, got \(2, 2\)"),
    ({"probe": np.ones((4, 8), np.complex64)}, r"probe must have shape \(8, 8\) to match counts"),
    ({"probe": np.ones((8, 8))}, "probe must be complex, got dtype float64"),
    ({"counts": -np.ones((2, 1, 8, 8))}, "counts must be finite and >= 0, got 128 of 128 values"),
    ({"counts": np.zeros((2, 1, 8, 4))}, r"counts must have shape \(B, C, N, N\), got \(2, 1, 8, 4\)"),
    ({"counts": np.zeros((2, 1, 8, 8), complex)}, "counts must be real numbers, got dtype complex128"),
    ({"relative": np.full((2, 1, 2), np.nan)}, "relative coordinates must be finite"),
])
def test_check_arrays(change: dict[str, np.ndarray], message: str) -> None:
    counts, probe, relative = _arrays()
    check_arrays(counts, probe, relative)
    args = {"counts": counts, "probe": probe, "relative": relative, **change}
    with pytest.raises(ModelError, match=message):
        check_arrays(args["counts"], args["probe"], args["relative"])


def test_train_data_validation() -> None:
    counts, probe, rel = _arrays()
    TrainData(counts, 1.0, probe, rel, 10.0)
    with pytest.raises(ModelError, match="probe must be complex"):
        TrainData(counts, 1.0, probe.real, rel, 10.0)
    with pytest.raises(ModelError, match="scale must be finite and > 0, got 0.0"):
        TrainData(counts, 0.0, probe, rel, 10.0)
    with pytest.raises(ModelError, match="nphotons must be finite and > 0, got inf"):
        TrainData(counts, 1.0, probe, rel, math.inf)


def test_prepare_arrays_normalizes_on_training_split(data_g2: TrainData) -> None:
    cfg = PinnConfig(n=32, gridsize=2, filters=(8, 16), val_fraction=0.25)
    arrays = prepare_arrays(data_g2, cfg, seed=4)
    assert arrays.inputs.dtype == np.float32 and arrays.inputs.shape == (24, 4, 32, 32)
    assert arrays.relative.dtype == np.float32 and arrays.counts.dtype == np.float32
    assert (len(arrays.train_idx), len(arrays.val_idx)) == (18, 6)
    energy = np.sum(arrays.inputs[arrays.train_idx].astype(np.float64) ** 2, axis=(-2, -1))
    assert energy.mean() == pytest.approx(16.0**2, rel=1e-5)
    with pytest.raises(ModelError, match=r"data have N=32, C=4 but the config expects N=32, C=9"):
        prepare_arrays(data_g2, PinnConfig(n=32, gridsize=3, filters=(8, 16)), seed=0)


def test_prepare_inference_returns_the_network_inputs(data_g2: TrainData) -> None:
    cfg = PinnConfig(n=32, gridsize=2, filters=(8, 16))
    x, rel = prepare_inference(cfg, counts=data_g2.counts, scale=data_g2.scale, probe=data_g2.probe,
                               relative=data_g2.relative, norm_factor=2.0, log_scale=0.0, batch_size=4)
    assert x.dtype == np.float32 and x.shape == (24, 4, 32, 32)
    np.testing.assert_array_equal(x, normalized_inputs(data_g2.counts, scale=data_g2.scale,
                                                       norm_factor=2.0))
    assert rel.dtype == np.float32 and rel.shape == (24, 4, 2)
    empty = InferResult.empty(cfg)
    assert empty.object_patches.shape == (0, 4, 32, 32) and empty.pred_amplitude.dtype == np.float32
