"""Training and inference of the torch PINN on tiny synthetic data (N = 32, few epochs)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ptycho_dist.errors import SpecError  # noqa: E402
from ptycho_dist.models.common import (  # noqa: E402
    HISTORY_KEYS,
    PinnConfig,
    TrainData,
    TrainResult,
    initial_log_scale,
    normalization_factor,
    train_val_split,
)
from ptycho_dist.models.torch.train import infer_pinn, train_pinn  # noqa: E402


@pytest.fixture(scope="module")
def trained_g1(data_g1: TrainData) -> TrainResult:
    cfg = PinnConfig(n=32, filters=(8, 16), batch_size=8, epochs=4, lr=3e-3, log_scale_init="nphotons")
    return train_pinn(data_g1, cfg, seed=0, accelerator="cpu")


def _infer(result: TrainResult, data: TrainData, cfg: PinnConfig, **over: float):  # type: ignore[no-untyped-def]
    kwargs = {"norm_factor": result.norm_factor, "log_scale": result.log_scale}
    kwargs.update(over)
    return infer_pinn(result.weights, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                      relative=data.relative, batch_size=16, device="cpu", **kwargs)


def test_loss_falls_and_history(trained_g1: TrainResult) -> None:
    h = trained_g1.history
    assert [row["epoch"] for row in h] == [0, 1, 2, 3]
    assert all(tuple(row) == HISTORY_KEYS for row in h)
    assert h[-1]["train_loss"] < 0.8 * h[0]["train_loss"]  # Poisson NLL per pixel (>= 0)
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    assert not any(row["nonfinite"] for row in h)
    assert trained_g1.diverged_epoch is None
    assert all(row["lr"] == pytest.approx(3e-3) for row in h)
    assert h[-1]["intensity_scale"] == pytest.approx(math.exp(trained_g1.log_scale), rel=1e-6)
    assert (trained_g1.n_train, trained_g1.n_val) == (36, 4)


def test_norm_factor_is_from_training_split(trained_g1: TrainResult, data_g1: TrainData) -> None:
    train_idx, _ = train_val_split(40, val_fraction=0.1, seed=0)
    amps = np.sqrt(data_g1.counts[train_idx].astype(np.float64)) / data_g1.scale
    assert trained_g1.norm_factor == pytest.approx(normalization_factor(amps), rel=1e-12)
    all_amps = np.sqrt(data_g1.counts.astype(np.float64)) / data_g1.scale
    assert trained_g1.norm_factor != normalization_factor(all_amps)


def test_log_scale_starts_at_nphotons_rule(data_g1: TrainData) -> None:
    cfg = PinnConfig(n=32, filters=(8, 16), batch_size=8, epochs=1, trainable_scale=False,
                     log_scale_init="nphotons")
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert result.log_scale == pytest.approx(initial_log_scale(1e5, 32), rel=1e-6)
    dose = train_pinn(data_g1, PinnConfig(**{**cfg.to_dict(), "filters": (8, 16),
                                              "log_scale_init": "dose"}), seed=0, accelerator="cpu")
    assert dose.log_scale == pytest.approx(math.log(data_g1.scale), rel=1e-6)


def test_same_seed_same_weights(data_g2: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    cfg = make_config(gridsize=2)
    a = train_pinn(data_g2, cfg, seed=5, accelerator="cpu")
    b = train_pinn(data_g2, cfg, seed=5, accelerator="cpu")
    c = train_pinn(data_g2, cfg, seed=6, accelerator="cpu")
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert a.log_scale == b.log_scale
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert not np.array_equal(a.weights["encoder.0.conv0.kernel"], c.weights["encoder.0.conv0.kernel"])


def test_huge_lr_diverges_without_exception(data_g1: TrainData,
                                            make_config: Callable[..., PinnConfig]) -> None:
    result = train_pinn(data_g1, make_config(lr=1e6, min_lr=0.0, epochs=5), seed=0,
                        accelerator="cpu")
    assert result.diverged_epoch == 0
    assert len(result.history) == 1                      # stopped at the diverged epoch
    assert result.history[0]["nonfinite"] is True
    assert not math.isfinite(result.history[0]["train_loss"])


def test_plateau_halves_lr_down_to_floor(data_g1: TrainData,
                                         make_config: Callable[..., PinnConfig]) -> None:
    # lr 1e3 with a fixed scale saturates the network after a few steps: the validation loss is
    # then constant, so every later epoch is a plateau epoch
    cfg = make_config(lr=1e3, min_lr=300.0, trainable_scale=False, plateau_patience=0, epochs=5)
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert [r["lr"] for r in result.history] == [1000.0, 1000.0, 500.0, 300.0, 300.0]
    assert result.diverged_epoch is None


def test_early_stopping(data_g1: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    cfg = make_config(lr=1e3, min_lr=0.0, trainable_scale=False, early_stopping_patience=0,
                      epochs=6)
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert len(result.history) == 2


def test_train_without_validation(data_g1: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    result = train_pinn(data_g1, make_config(val_fraction=0.0, epochs=1), seed=0, accelerator="cpu")
    assert (result.n_train, result.n_val) == (40, 0)
    assert math.isnan(result.history[0]["val_loss"])
    assert math.isfinite(result.history[0]["train_loss"])


def test_train_rejects_mismatched_config(data_g2: TrainData,
                                         make_config: Callable[..., PinnConfig]) -> None:
    with pytest.raises(SpecError, match=r"data has N=32, C=4 but the config expects N=32, C=1"):
        train_pinn(data_g2, make_config(), seed=0, accelerator="cpu")
    with pytest.raises(SpecError, match="accelerator must be 'auto', 'cpu' or 'gpu', got 'tpu'"):
        train_pinn(data_g2, make_config(gridsize=2), seed=0, accelerator="tpu")


def test_inference_shapes_and_consistency(trained_g1: TrainResult, data_g1: TrainData) -> None:
    cfg = PinnConfig(n=32, filters=(8, 16), batch_size=8, epochs=4, lr=3e-3, log_scale_init="nphotons")
    out = _infer(trained_g1, data_g1, cfg)
    assert out.object_patches.shape == (40, 1, 32, 32) and out.object_patches.dtype == np.complex64
    assert out.pred_amplitude.shape == (40, 1, 32, 32) and out.pred_amplitude.dtype == np.float32
    # batch size does not change the result
    small = infer_pinn(trained_g1.weights, cfg, counts=data_g1.counts[:5], scale=data_g1.scale,
                       probe=data_g1.probe, relative=data_g1.relative[:5],
                       norm_factor=trained_g1.norm_factor, log_scale=trained_g1.log_scale,
                       batch_size=2, device="cpu")
    np.testing.assert_allclose(small.pred_amplitude, out.pred_amplitude[:5], rtol=1e-5, atol=1e-4)


def test_inference_uses_given_norm_factor_and_log_scale(trained_g1: TrainResult,
                                                        data_g1: TrainData) -> None:
    cfg = PinnConfig(n=32, filters=(8, 16), batch_size=8, epochs=4, lr=3e-3, log_scale_init="nphotons")
    base = _infer(trained_g1, data_g1, cfg)
    scaled = _infer(trained_g1, data_g1, cfg, log_scale=trained_g1.log_scale + 0.5)
    np.testing.assert_array_equal(scaled.object_patches, base.object_patches)
    np.testing.assert_allclose(scaled.pred_amplitude, base.pred_amplitude * math.exp(0.5),
                               rtol=1e-5, atol=1e-5)
    renorm = _infer(trained_g1, data_g1, cfg, norm_factor=trained_g1.norm_factor * 3)
    diff = np.abs(renorm.object_patches - base.object_patches).max()
    assert diff > 1e-3


def test_inference_rejects_bad_scalars(trained_g1: TrainResult, data_g1: TrainData) -> None:
    cfg = PinnConfig(n=32, filters=(8, 16))
    with pytest.raises(SpecError, match="norm_factor must be > 0 and log_scale finite"):
        _infer(trained_g1, data_g1, cfg, norm_factor=0.0)
    with pytest.raises(SpecError, match="norm_factor must be > 0 and log_scale finite"):
        _infer(trained_g1, data_g1, cfg, log_scale=math.nan)
