"""Training and inference of the TF PINN on tiny synthetic data (N = 32, few epochs), with the
semantics of the torch backend (tests/models/test_train.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ptycho_dist.errors import SpecError  # noqa: E402
from ptycho_dist.models.common import (  # noqa: E402
    HISTORY_KEYS,
    InferResult,
    PinnConfig,
    TrainData,
    TrainResult,
    initial_log_scale,
    normalization_factor,
    train_val_split,
)
from ptycho_dist.models.tf.train import (  # noqa: E402
    EarlyStop,
    PlateauSchedule,
    infer_pinn,
    resolve_device,
    train_pinn,
)

pytestmark = pytest.mark.tf


def _infer(result: TrainResult, data: TrainData, cfg: PinnConfig, **over: float) -> InferResult:
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
    assert all(row["train_loss"] > 0 and row["seconds"] > 0 for row in h)
    assert not any(row["nonfinite"] for row in h)
    assert trained_g1.diverged_epoch is None
    assert all(row["lr"] == 3e-3 for row in h)
    assert h[-1]["intensity_scale"] == pytest.approx(math.exp(trained_g1.log_scale), rel=1e-6)
    assert (trained_g1.n_train, trained_g1.n_val) == (36, 4)
    assert trained_g1.seconds >= sum(row["seconds"] for row in h)


def test_norm_factor_is_from_training_split(trained_g1: TrainResult, data_g1: TrainData) -> None:
    train_idx, _ = train_val_split(40, val_fraction=0.1, seed=0)
    amps = np.sqrt(data_g1.counts[train_idx].astype(np.float64)) / data_g1.scale
    assert trained_g1.norm_factor == pytest.approx(normalization_factor(amps), rel=1e-12)
    all_amps = np.sqrt(data_g1.counts.astype(np.float64)) / data_g1.scale
    assert trained_g1.norm_factor != normalization_factor(all_amps)


def test_fixed_log_scale_keeps_its_start(data_g1: TrainData,
                                         make_config: Callable[..., PinnConfig]) -> None:
    cfg = make_config(epochs=1, trainable_scale=False, log_scale_init="nphotons")
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert result.log_scale == pytest.approx(initial_log_scale(1e5, 32), rel=1e-6)
    assert result.history[0]["intensity_scale"] == pytest.approx(math.sqrt(1e5) / 16, rel=1e-6)


def test_same_seed_same_weights(data_g2: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    cfg = make_config(gridsize=2)
    a = train_pinn(data_g2, cfg, seed=5, accelerator="cpu")
    b = train_pinn(data_g2, cfg, seed=5, accelerator="cpu")
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert a.log_scale == b.log_scale
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert len(a.history) == 2 and a.diverged_epoch is None
    assert a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def test_different_seed_different_run(trained_g1: TrainResult, data_g1: TrainData,
                                      config_g1: PinnConfig) -> None:
    other = train_pinn(data_g1, PinnConfig(**{**config_g1.to_dict(), "filters": (8, 16),
                                              "epochs": 1}), seed=1, accelerator="cpu")
    assert not np.array_equal(other.weights["encoder.0.conv0.kernel"],
                              trained_g1.weights["encoder.0.conv0.kernel"])
    assert other.n_val == 4 and other.norm_factor != trained_g1.norm_factor  # another split


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
    # (epoch 0 improves on inf, epochs 1.. do not): early stopping with patience 4 ends after
    # epoch 4, the 4th epoch without improvement
    cfg = make_config(lr=1e3, min_lr=300.0, trainable_scale=False, plateau_patience=0, epochs=8,
                      early_stopping_patience=4)
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert [r["lr"] for r in result.history] == [1000.0, 1000.0, 500.0, 300.0, 300.0]
    assert result.diverged_epoch is None
    assert len({r["val_loss"] for r in result.history[1:]}) == 1   # saturated: a plateau


def test_early_stopping(data_g1: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    cfg = make_config(lr=1e3, min_lr=0.0, trainable_scale=False, early_stopping_patience=0,
                      epochs=6)
    result = train_pinn(data_g1, cfg, seed=0, accelerator="cpu")
    assert len(result.history) == 2


def test_train_without_validation(data_g1: TrainData, make_config: Callable[..., PinnConfig],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(val_fraction=0.0, epochs=1, trainable_scale=False, log_scale_init="dose")
    result = train_pinn(data_g1, cfg, seed=2**62 + 5, accelerator="cpu",   # 63-bit stage seeds work
                        progress=True)
    assert "train_loss" in capsys.readouterr().out                         # the progress bar
    assert result.log_scale == pytest.approx(math.log(data_g1.scale), rel=1e-6)
    assert (result.n_train, result.n_val) == (40, 0)
    assert math.isnan(result.history[0]["val_loss"])
    assert math.isfinite(result.history[0]["train_loss"])


def test_train_rejects_bad_requests(data_g2: TrainData, make_config: Callable[..., PinnConfig]) -> None:
    with pytest.raises(SpecError, match=r"data has N=32, C=4 but the config expects N=32, C=1"):
        train_pinn(data_g2, make_config(), seed=0, accelerator="cpu")
    with pytest.raises(SpecError, match="accelerator must be 'auto', 'cpu' or 'gpu', got 'tpu'"):
        train_pinn(data_g2, make_config(gridsize=2), seed=0, accelerator="tpu")
    with pytest.raises(SpecError, match="uses devices=1, got 2"):
        train_pinn(data_g2, make_config(gridsize=2), seed=0, accelerator="cpu", devices=2)


def test_plateau_schedule_matches_torch_rule() -> None:
    sched = PlateauSchedule(lr=1.0, factor=0.5, patience=1, min_lr=0.2)
    # 10 best; 9.9995 is within the 1e-4 relative threshold: not an improvement
    lrs = [sched.step(v) for v in (10.0, 9.9995, 9.9995, 5.0, 5.0, 5.0, 5.0, 5.0, math.nan, 5.0)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_early_stop_rule() -> None:
    stop = EarlyStop(patience=2)
    assert [stop.step(v) for v in (3.0, 2.0, 2.0, 1.0, 1.0, math.nan)] == [
        False, False, False, False, False, True]


def test_inference_shapes_and_batches(trained_g1: TrainResult, data_g1: TrainData,
                                      config_g1: PinnConfig) -> None:
    out = _infer(trained_g1, data_g1, config_g1)
    assert out.object_patches.shape == (40, 1, 32, 32) and out.object_patches.dtype == np.complex64
    assert out.pred_amplitude.shape == (40, 1, 32, 32) and out.pred_amplitude.dtype == np.float32
    small = infer_pinn(trained_g1.weights, config_g1, counts=data_g1.counts[:5], scale=data_g1.scale,
                       probe=data_g1.probe, relative=data_g1.relative[:5],
                       norm_factor=trained_g1.norm_factor, log_scale=trained_g1.log_scale,
                       batch_size=2, device="cpu")
    np.testing.assert_allclose(small.pred_amplitude, out.pred_amplitude[:5], rtol=1e-5, atol=1e-4)
    # the fit's own validation loss is reproduced by inference on the validation split
    _, val_idx = train_val_split(40, val_fraction=0.1, seed=0)
    lam = out.pred_amplitude[val_idx].astype(np.float64) ** 2
    import reference_pinn

    val = reference_pinn.poisson_nll(np.sqrt(lam), data_g1.counts[val_idx])
    assert val == pytest.approx(trained_g1.history[-1]["val_loss"], rel=1e-4)


def test_inference_uses_given_norm_factor_and_log_scale(trained_g1: TrainResult, data_g1: TrainData,
                                                        config_g1: PinnConfig) -> None:
    base = _infer(trained_g1, data_g1, config_g1)
    scaled = _infer(trained_g1, data_g1, config_g1, log_scale=trained_g1.log_scale + 0.5)
    np.testing.assert_array_equal(scaled.object_patches, base.object_patches)
    np.testing.assert_allclose(scaled.pred_amplitude, base.pred_amplitude * math.exp(0.5),
                               rtol=1e-5, atol=1e-5)
    renorm = _infer(trained_g1, data_g1, config_g1, norm_factor=trained_g1.norm_factor * 3)
    assert np.abs(renorm.object_patches - base.object_patches).max() > 1e-3


def test_inference_rejects_bad_input(trained_g1: TrainResult, data_g1: TrainData,
                                     config_g1: PinnConfig) -> None:
    with pytest.raises(SpecError, match="norm_factor must be > 0 and log_scale finite"):
        _infer(trained_g1, data_g1, config_g1, norm_factor=0.0)
    with pytest.raises(SpecError, match="norm_factor must be > 0 and log_scale finite"):
        _infer(trained_g1, data_g1, config_g1, log_scale=math.nan)
    with pytest.raises(SpecError, match=r"counts have shape \(40, 1, 32, 32\) but the config "
                                        r"expects \(B, 4, 32, 32\)"):
        _infer(trained_g1, data_g1, PinnConfig(**{**config_g1.to_dict(), "filters": (8, 16),
                                                   "gridsize": 2}))
    empty = infer_pinn(trained_g1.weights, config_g1, counts=data_g1.counts[:0], scale=data_g1.scale,
                       probe=data_g1.probe, relative=data_g1.relative[:0],
                       norm_factor=trained_g1.norm_factor, log_scale=trained_g1.log_scale)
    assert empty.object_patches.shape == (0, 1, 32, 32)


@pytest.mark.parametrize(("device", "expected"), [
    ("cpu", "/CPU:0"), ("gpu", "/GPU:0"), ("cuda:1", "/GPU:1"), ("/GPU:2", "/GPU:2")])
def test_resolve_device(device: str, expected: str) -> None:
    assert resolve_device(device) == expected


def test_resolve_device_rejects_unknown() -> None:
    with pytest.raises(SpecError, match="device must be None, 'cpu'.*got 'tpu:0'"):
        resolve_device("tpu:0")
