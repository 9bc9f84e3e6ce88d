"""Framework-free PINN helpers: config, normalization, split, weight layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptycho_dist.errors import SpecError
from ptycho_dist.models.common import (
    PinnConfig,
    TrainData,
    central_window,
    check_weights,
    decoder_filters,
    default_filters,
    initial_log_scale,
    normalization_factor,
    normalized_inputs,
    prepare_arrays,
    starting_log_scale,
    train_val_split,
    weight_layout,
)


@pytest.mark.parametrize(("n", "filters", "dec"), [
    (32, (64, 128), (64,)),
    (64, (64, 128, 256), (128, 64)),
    (128, (64, 128, 256, 512), (256, 128, 64)),
])
def test_default_filters_scale_with_n(n: int, filters: tuple[int, ...], dec: tuple[int, ...]) -> None:
    assert default_filters(n) == filters
    assert PinnConfig(n=n).filters == filters
    assert decoder_filters(filters) == dec


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([32, 64, 128]), gridsize=st.integers(1, 3),
       loss=st.sampled_from(["poisson", "mae"]), lr=st.floats(1e-4, 1.0),
       esp=st.none() | st.integers(0, 10), val=st.floats(0.0, 0.9),
       init=st.sampled_from(["nphotons", "dose"]))
def test_config_dict_round_trip(n: int, gridsize: int, loss: str, lr: float, esp: int | None,
                                val: float, init: str) -> None:
    cfg = PinnConfig(n=n, gridsize=gridsize, loss=loss, lr=lr, early_stopping_patience=esp,  # type: ignore[arg-type]
                     val_fraction=val, log_scale_init=init, min_lr=min(1e-4, lr))  # type: ignore[arg-type]
    d = cfg.to_dict()
    assert isinstance(d["filters"], list)
    assert PinnConfig.from_dict(d) == cfg


def test_config_unknown_key_suggests() -> None:
    with pytest.raises(SpecError, match="unknown key 'gridsise'; did you mean 'gridsize'"):
        PinnConfig.from_dict({"gridsise": 2})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 48}, r"n must be one of \[32, 64, 128\], got 48"),
    ({"gridsize": 4}, r"gridsize must be one of \[1, 2, 3\], got 4"),
    ({"loss": "mse"}, r"loss must be one of \['poisson', 'mae'\], got 'mse'"),
    ({"n": 32, "filters": (8, 16, 32)}, r"filters must have 2 entries for n=32"),
    ({"n": 32, "filters": (8, 0)}, r"filters must be positive integers"),
    ({"lr": 0.0}, r"lr must be > 0, got 0.0"),
    ({"val_fraction": 0.95}, r"val_fraction must be in \[0, 0.9\]"),
    ({"min_lr": 0.1}, r"min_lr must be in \[0, lr\]"),
    ({"early_stopping_patience": -1}, r"early_stopping_patience must be None or >= 0"),
    ({"log_scale_init": "data"}, r"log_scale_init must be one of"),
])
def test_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        PinnConfig(**kwargs)  # type: ignore[arg-type]


def test_channels() -> None:
    assert [PinnConfig(gridsize=g).channels for g in (1, 2, 3)] == [1, 4, 9]


def test_normalization_factor_definition(rng: np.random.Generator) -> None:
    amps = rng.uniform(0, 3, size=(5, 4, 32, 32))
    f = normalization_factor(amps)
    # independent check: per-pattern energy, averaged over all 20 patterns
    energies = [np.sum((f * amps[b, c]) ** 2) for b in range(5) for c in range(4)]
    assert np.mean(energies) == pytest.approx(16.0**2, rel=1e-12)
    assert normalization_factor(np.ones((3, 64, 64))) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8)), np.ones((2, 8, 4)), np.ones((0, 8, 8))])
def test_normalization_factor_rejects(bad: np.ndarray) -> None:
    with pytest.raises(SpecError, match="amplitudes must"):
        normalization_factor(bad)


def test_normalized_inputs() -> None:
    counts = np.full((1, 1, 4, 4), 16.0, dtype=np.float32)
    x = normalized_inputs(counts, scale=2.0, norm_factor=3.0)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, np.full((1, 1, 4, 4), 6.0, dtype=np.float32))


def test_initial_log_scale() -> None:
    assert initial_log_scale(1e6, 64) == pytest.approx(math.log(1000 / 32))
    with pytest.raises(SpecError, match="nphotons > 0"):
        initial_log_scale(0.0, 64)


def test_starting_log_scale_modes() -> None:
    compat = PinnConfig(log_scale_init="nphotons")
    assert starting_log_scale(compat, nphotons=1e6, scale=7.0) == pytest.approx(math.log(1000 / 32))
    assert PinnConfig().log_scale_init == "dose"
    dose = PinnConfig(log_scale_init="dose")
    assert starting_log_scale(dose, nphotons=1e6, scale=7.0) == pytest.approx(math.log(7.0))


@pytest.mark.parametrize(("n", "frac", "n_val"), [(10, 0.1, 1), (10, 0.25, 2), (7, 0.0, 0), (3, 0.01, 1)])
def test_train_val_split(n: int, frac: float, n_val: int) -> None:
    tr, va = train_val_split(n, val_fraction=frac, seed=3)
    assert len(va) == n_val and len(tr) == n - n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    tr2, va2 = train_val_split(n, val_fraction=frac, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)


def test_train_val_split_needs_training_group() -> None:
    with pytest.raises(SpecError, match="need at least one training group: 1 groups"):
        train_val_split(1, val_fraction=0.5, seed=0)


def test_central_window() -> None:
    m = central_window(32)
    assert m.shape == (32, 32) and m.dtype == np.float32
    assert m.sum() == 16 * 16
    assert m[8, 8] == 1 and m[23, 23] == 1 and m[7, 8] == 0 and m[24, 23] == 0


def test_weight_layout_default_n64() -> None:
    layout = weight_layout(PinnConfig(n=64, gridsize=2))
    assert layout["encoder.0.conv0.kernel"] == (3, 3, 4, 64)
    assert layout["encoder.2.conv1.kernel"] == (3, 3, 256, 256)
    assert layout["decoder_amp.0.conv0.kernel"] == (3, 3, 256, 128)
    assert layout["decoder_phase.1.conv1.bias"] == (64,)
    assert layout["decoder_phase.final.kernel"] == (3, 3, 64, 4)
    assert len(layout) == 3 * 4 + 2 * (2 * 4 + 2)  # 3 encoder blocks, 2 decoders of 2 blocks + final
    n_params = sum(int(np.prod(s)) for s in layout.values())
    assert n_params == 2_257_288  # counted by hand from the layer list


def test_check_weights_messages() -> None:
    cfg = PinnConfig(n=32, filters=(4, 8))
    weights = {k: np.zeros(s, np.float32) for k, s in weight_layout(cfg).items()}
    check_weights(weights, cfg)
    bad = dict(weights, **{"encoder.0.conv0.kernel": np.zeros((3, 3, 4, 1), np.float32)})
    with pytest.raises(SpecError, match=r"'encoder.0.conv0.kernel': expected shape \(3, 3, 1, 4\), got \(3, 3, 4, 1\)"):
        check_weights(bad, cfg)
    with pytest.raises(SpecError, match=r"missing \['encoder.0.conv0.bias'\]"):
        check_weights({k: v for k, v in weights.items() if k != "encoder.0.conv0.bias"}, cfg)


def test_train_data_validation() -> None:
    counts = np.zeros((2, 1, 8, 8), np.float32)
    probe = np.ones((8, 8), np.complex64)
    rel = np.zeros((2, 1, 2))
    TrainData(counts, 1.0, probe, rel, 10.0)
    with pytest.raises(SpecError, match=r"relative must have shape \(2, 1, 2\) to match counts, got \(2, 2\)"):
        TrainData(counts, 1.0, probe, rel[:, 0], 10.0)
    with pytest.raises(SpecError, match=r"probe must have shape \(8, 8\)"):
        TrainData(counts, 1.0, probe[:4], rel, 10.0)
    with pytest.raises(SpecError, match="probe must be complex"):
        TrainData(counts, 1.0, probe.real, rel, 10.0)
    with pytest.raises(SpecError, match="counts must be finite and >= 0"):
        TrainData(counts - 1, 1.0, probe, rel, 10.0)
    with pytest.raises(SpecError, match="scale must be finite and > 0"):
        TrainData(counts, 0.0, probe, rel, 10.0)


def test_prepare_arrays_normalizes_on_training_split(data_g2: TrainData) -> None:
    cfg = PinnConfig(n=32, gridsize=2, filters=(8, 16), val_fraction=0.25)
    arrays = prepare_arrays(data_g2, cfg, seed=4)
    assert arrays.inputs.dtype == np.float32 and arrays.inputs.shape == (24, 4, 32, 32)
    assert arrays.relative.dtype == np.float32 and arrays.counts.dtype == np.float32
    assert (len(arrays.train_idx), len(arrays.val_idx)) == (18, 6)
    energy = np.sum(arrays.inputs[arrays.train_idx].astype(np.float64) ** 2, axis=(-2, -1))
    assert energy.mean() == pytest.approx(16.0**2, rel=1e-5)
    with pytest.raises(SpecError, match=r"data has N=32, C=4 but the config expects N=32, C=9"):
        prepare_arrays(data_g2, PinnConfig(n=32, gridsize=3, filters=(8, 16)), seed=0)
