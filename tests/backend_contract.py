"""The contract every PINN backend keeps, written once and run for each backend in its own process.

:class:`BackendContract` is subclassed by ``tests/models/test_torch_contract.py`` (backend
"torch") and ``tests/tf/test_tf_contract.py`` (backend "tf"; TensorFlow tests run in a pytest
process of their own, so torch and TF never share one). It checks, through the
:class:`ptycho_dist.models.Backend` interface only: shapes and dtypes, determinism by seed, that
the loss falls, divergence detection, the learning-rate schedule and early stopping, the canonical
weights, that inference reuses ``norm_factor`` and ``log_scale`` unchanged, and that bad input
raises the same exception type with the same message in both backends.

The data fixtures ``data_g1`` (40 groups, gridsize 1) and ``data_g2`` (24 groups, gridsize 2),
N = 32, come from the folder's conftest (``pinn_data.simulated_train_data``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import pytest
import reference_pinn as ref
from pinn_data import simulated_train_data

from ptycho_dist.errors import ModelError, SpecError
from ptycho_dist.models import (
    HISTORY_KEYS,
    Backend,
    InferResult,
    PinnConfig,
    TrainData,
    TrainResult,
    load_backend,
    normalization_factor,
    train_val_split,
    weight_layout,
)
from ptycho_dist.models.config import default_filters
from ptycho_dist.models.data import initial_log_scale
from ptycho_dist.models.schedule import Schedule
from ptycho_dist.models.weights import init_limits

__all__ = ["BackendContract", "small_config"]


def small_config(**overrides: Any) -> PinnConfig:
    """N = 32, filters (8, 16), batch 8, 2 epochs, default ("dose") scale init, plus overrides."""
    base: dict[str, Any] = {"n": 32, "filters": (8, 16), "batch_size": 8, "epochs": 2}
    return PinnConfig(**{**base, **overrides})


def _bypass(config: PinnConfig, **values: Any) -> PinnConfig:
    """A config whose fields are set *without* validation (what a hand-made object could hold)."""
    out = dataclasses.replace(config)
    for name, value in values.items():
        object.__setattr__(out, name, value)
    return out


class BackendContract:
    """Tests every backend passes; subclasses set :attr:`backend`."""

    backend: ClassVar[str]

    # ----------------------------------------------------------------------------- fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def impl(cls) -> Backend:
        return load_backend(cls.backend)

    @pytest.fixture(scope="class")
    @classmethod
    def config_g1(cls) -> PinnConfig:
        return small_config(epochs=4, lr=3e-3)

    @pytest.fixture(scope="class")
    @classmethod
    def trained_g1(cls, impl: Backend, data_g1: TrainData, config_g1: PinnConfig) -> TrainResult:
        return cls.train(impl, data_g1, config_g1, seed=0)

    # ----------------------------------------------------------------------------- helpers
    @staticmethod
    def gpu_available() -> bool:
        """Whether the backend sees a GPU (subclasses answer with their framework)."""
        raise NotImplementedError

    @staticmethod
    def train(impl: Backend, data: TrainData, config: PinnConfig, *, seed: int,
              accelerator: str = "cpu") -> TrainResult:
        return impl.train_pinn(data, config, seed=seed, accelerator=accelerator)  # type: ignore[call-arg]

    @staticmethod
    def infer(impl: Backend, result: TrainResult, data: TrainData, config: PinnConfig,
              **over: Any) -> InferResult:
        kwargs: dict[str, Any] = {"counts": data.counts, "scale": data.scale, "probe": data.probe,
                                  "relative": data.relative, "norm_factor": result.norm_factor,
                                  "log_scale": result.log_scale, "batch_size": 16, "device": "cpu"}
        kwargs.update(over)
        weights = kwargs.pop("weights", result.weights)
        return impl.infer_pinn(weights, config, **kwargs)

    # ----------------------------------------------------------------------------- training
    def test_loss_falls_and_history(self, trained_g1: TrainResult) -> None:
        h = trained_g1.history
        assert [row["epoch"] for row in h] == [0, 1, 2, 3]
        assert all(tuple(row) == HISTORY_KEYS for row in h)
        assert h[-1]["train_loss"] < 0.8 * h[0]["train_loss"]   # Poisson NLL per pixel (>= 0)
        assert h[-1]["val_loss"] < h[0]["val_loss"]
        assert all(row["train_loss"] > 0 and row["seconds"] > 0 for row in h)
        assert not any(row["nonfinite"] for row in h)
        assert trained_g1.diverged_epoch is None
        assert all(row["lr"] == pytest.approx(3e-3) for row in h)
        assert h[-1]["intensity_scale"] == pytest.approx(math.exp(trained_g1.log_scale), rel=1e-6)
        assert (trained_g1.n_train, trained_g1.n_val) == (36, 4)
        assert trained_g1.seconds >= sum(row["seconds"] for row in h)

    def test_weights_follow_the_canonical_layout(self, trained_g1: TrainResult,
                                                 config_g1: PinnConfig) -> None:
        assert list(trained_g1.weights) == list(weight_layout(config_g1))
        for name, shape in weight_layout(config_g1).items():
            w = trained_g1.weights[name]
            assert w.shape == shape and w.dtype == np.float32 and np.all(np.isfinite(w)), name

    def test_norm_factor_is_from_training_split(self, trained_g1: TrainResult,
                                                data_g1: TrainData) -> None:
        train_idx, _ = train_val_split(40, val_fraction=0.1, seed=0)
        amps = np.sqrt(data_g1.counts[train_idx].astype(np.float64)) / data_g1.scale
        assert trained_g1.norm_factor == pytest.approx(normalization_factor(amps), rel=1e-12)
        all_amps = np.sqrt(data_g1.counts.astype(np.float64)) / data_g1.scale
        assert trained_g1.norm_factor != normalization_factor(all_amps)

    @pytest.mark.parametrize("init", ["nphotons", "dose"])
    def test_fixed_log_scale_keeps_its_start(self, impl: Backend, data_g1: TrainData,
                                             init: str) -> None:
        cfg = small_config(epochs=1, trainable_scale=False, log_scale_init=init)
        result = self.train(impl, data_g1, cfg, seed=0)
        expected = initial_log_scale(1e5, 32) if init == "nphotons" else math.log(data_g1.scale)
        assert result.log_scale == pytest.approx(expected, rel=1e-6)
        assert result.history[0]["intensity_scale"] == pytest.approx(math.exp(expected), rel=1e-6)

    def test_same_seed_same_weights(self, impl: Backend, data_g2: TrainData) -> None:
        cfg = small_config(gridsize=2)
        a = self.train(impl, data_g2, cfg, seed=5)
        b = self.train(impl, data_g2, cfg, seed=5)
        for k in a.weights:
            np.testing.assert_array_equal(a.weights[k], b.weights[k])
        assert a.log_scale == b.log_scale
        assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
        assert len(a.history) == 2 and a.diverged_epoch is None
        assert a.history[-1]["train_loss"] < a.history[0]["train_loss"]

    def test_other_seed_other_run(self, impl: Backend, trained_g1: TrainResult,
                                  data_g1: TrainData, config_g1: PinnConfig) -> None:
        other = self.train(impl, data_g1, dataclasses.replace(config_g1, epochs=1), seed=1)
        assert not np.array_equal(other.weights["encoder.0.conv0.kernel"],
                                  trained_g1.weights["encoder.0.conv0.kernel"])
        assert other.n_val == 4 and other.norm_factor != trained_g1.norm_factor   # another split

    def test_huge_lr_diverges_without_exception(self, impl: Backend, data_g1: TrainData) -> None:
        result = self.train(impl, data_g1, small_config(lr=1e6, min_lr=0.0, epochs=5), seed=0)
        assert result.diverged_epoch == 0
        assert len(result.history) == 1                      # stopped at the diverged epoch
        assert result.history[0]["nonfinite"] is True
        assert not math.isfinite(result.history[0]["train_loss"])

    def test_plateau_halves_lr_down_to_floor(self, impl: Backend, data_g1: TrainData) -> None:
        # lr 1e3 with a fixed scale saturates the network after a step or two: the validation
        # loss is then constant, so every later epoch is a plateau epoch (epoch 0 improves on inf);
        # early stopping with patience 4 ends after epoch 4, the 4th epoch without improvement
        cfg = small_config(lr=1e3, min_lr=300.0, trainable_scale=False, plateau_patience=0,
                           epochs=8, early_stopping_patience=4)
        result = self.train(impl, data_g1, cfg, seed=0)
        assert [r["lr"] for r in result.history] == [1000.0, 1000.0, 500.0, 300.0, 300.0]
        assert result.diverged_epoch is None
        assert len({r["val_loss"] for r in result.history[1:]}) == 1   # saturated: a plateau

    def test_early_stopping(self, impl: Backend, data_g1: TrainData) -> None:
        cfg = small_config(lr=1e3, min_lr=0.0, trainable_scale=False, early_stopping_patience=0,
                           epochs=6)
        assert len(self.train(impl, data_g1, cfg, seed=0).history) == 2

    def test_train_without_validation(self, impl: Backend, data_g1: TrainData) -> None:
        cfg = small_config(val_fraction=0.0, epochs=1, trainable_scale=False)
        result = self.train(impl, data_g1, cfg, seed=2**62 + 5)   # 63-bit stage seeds work
        assert result.log_scale == pytest.approx(math.log(data_g1.scale), rel=1e-6)
        assert (result.n_train, result.n_val) == (40, 0)
        assert math.isnan(result.history[0]["val_loss"])
        assert math.isfinite(result.history[0]["train_loss"])

    def test_zero_epochs_keeps_the_initialized_model(self, impl: Backend, data_g1: TrainData) -> None:
        result = self.train(impl, data_g1, small_config(epochs=0), seed=0)
        assert result.history == [] and result.diverged_epoch is None
        assert result.log_scale == pytest.approx(math.log(data_g1.scale), rel=1e-6)
        assert list(result.weights) == list(weight_layout(small_config()))

    @pytest.mark.parametrize("init", ["keras", "torch"])
    def test_initial_weights_follow_the_init(self, impl: Backend, data_g2: TrainData,
                                             init: str) -> None:
        # every kernel U(-l, l): l = sqrt(6 / (fan_in + fan_out)) (keras) or 1/sqrt(fan_in) (torch)
        cfg = small_config(gridsize=2, filters=(16, 32), epochs=0, init=init)
        weights = self.train(impl, data_g2, cfg, seed=3).weights
        for name, kernel in weights.items():
            if not name.endswith(".kernel"):
                continue
            limit, bias_limit = init_limits(kernel.shape, init)
            assert np.abs(kernel).max() <= limit * (1 + 1e-6), name
            assert np.abs(kernel).max() >= 0.9 * limit, name
            assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.12), name
            assert abs(kernel.mean()) <= 0.1 * limit, name
            bias = weights[name.removesuffix("kernel") + "bias"]
            if init == "keras":
                assert np.all(bias == 0), name
            else:
                assert 0 < np.abs(bias).max() <= bias_limit * (1 + 1e-6), name
        again = self.train(impl, data_g2, cfg, seed=3).weights
        other = self.train(impl, data_g2, cfg, seed=4).weights
        assert all(np.array_equal(weights[k], again[k]) for k in weights)
        assert not np.array_equal(weights["decoder_amp.final.kernel"], other["decoder_amp.final.kernel"])

    def test_keras_is_the_default_init(self) -> None:
        assert PinnConfig().init == "keras" and small_config().init == "keras"

    def test_keras_init_varies_more_across_inputs(self, impl: Backend, data_g1: TrainData) -> None:
        # the untrained network's object amplitude, variance across the 40 inputs (per pixel of the
        # central window, then averaged) at N = 32, default widths (64, 128); measured ratio ~120
        variance = {}
        for init in ("keras", "torch"):
            values = []
            for seed in (0, 1):
                cfg = PinnConfig(n=32, epochs=0, init=init)
                result = self.train(impl, data_g1, cfg, seed=seed)
                amp = np.abs(self.infer(impl, result, data_g1, cfg).object_patches)[..., 8:24, 8:24]
                values.append(amp.var(axis=0).mean())
            variance[init] = float(np.mean(values))
        assert variance["keras"] > 20 * variance["torch"], variance

    @pytest.mark.parametrize(("scale", "filters"), [(1, (32, 64)), (3, (96, 192))])
    def test_width_scale(self, impl: Backend, data_g1: TrainData, scale: int,
                         filters: tuple[int, ...]) -> None:
        cfg = PinnConfig(n=32, epochs=0, n_filters_scale=scale)
        assert cfg.filters == filters == default_filters(32, scale)
        weights = self.train(impl, data_g1, cfg, seed=0).weights
        assert weights["encoder.0.conv0.kernel"].shape == (3, 3, 1, filters[0])
        assert weights["encoder.1.conv1.kernel"].shape == (3, 3, filters[1], filters[1])
        assert weights["decoder_amp.final.kernel"].shape == (3, 3, filters[0], 1)

    def test_reference_schedule_reduces_after_patience_epochs(self, impl: Backend,
                                                               data_g1: TrainData) -> None:
        # the saturated plateau of test_plateau_halves_lr_down_to_floor, with Keras' rule: the rate
        # drops after `patience` epochs without improvement (torch's: after more than `patience`)
        cfg = small_config(lr=1e3, min_lr=300.0, trainable_scale=False, plateau_patience=1,
                           epochs=6, schedule="ptychopinn")
        result = self.train(impl, data_g1, cfg, seed=0)
        assert [r["lr"] for r in result.history] == [1000.0, 1000.0, 500.0, 300.0, 300.0, 300.0]
        torch_rule = self.train(impl, data_g1, dataclasses.replace(cfg, schedule="torch"), seed=0)
        assert [r["lr"] for r in torch_rule.history] == [1000.0, 1000.0, 1000.0, 500.0, 500.0, 300.0]

    @pytest.mark.parametrize("schedule", ["torch", "ptychopinn"])
    def test_fit_follows_the_shared_schedule(self, impl: Backend, data_g1: TrainData,
                                             schedule: str) -> None:
        # the rates and the stop of the fit are those the shared Schedule gives on its own losses
        cfg = small_config(lr=1e-2, min_lr=1e-4, plateau_patience=0, early_stopping_patience=1,
                           epochs=7, val_fraction=0.3, schedule=schedule)
        history = self.train(impl, data_g1, cfg, seed=1).history
        replay = Schedule.create(cfg.schedule, lr=cfg.lr, factor=cfg.plateau_factor,
                                 patience=cfg.plateau_patience, min_lr=cfg.min_lr,
                                 early_stopping_patience=cfg.early_stopping_patience, has_val=True)
        assert history[0]["lr"] == cfg.lr
        for i, row in enumerate(history):
            lr, stop = replay.step(row["train_loss"], row["val_loss"])
            if i + 1 < len(history):
                assert not stop and history[i + 1]["lr"] == pytest.approx(lr, rel=1e-12), i
            else:
                assert stop or len(history) == cfg.epochs

    # ----------------------------------------------------------------------------- inference
    def test_inference_shapes_batches_and_validation_loss(
            self, impl: Backend, trained_g1: TrainResult, data_g1: TrainData,
            config_g1: PinnConfig) -> None:
        out = self.infer(impl, trained_g1, data_g1, config_g1)
        assert out.object_patches.shape == (40, 1, 32, 32) and out.object_patches.dtype == np.complex64
        assert out.pred_amplitude.shape == (40, 1, 32, 32) and out.pred_amplitude.dtype == np.float32
        small = self.infer(impl, trained_g1, data_g1, config_g1, counts=data_g1.counts[:5],
                           relative=data_g1.relative[:5], batch_size=2)
        np.testing.assert_allclose(small.pred_amplitude, out.pred_amplitude[:5], rtol=1e-5, atol=1e-4)
        # the fit's own last validation loss is reproduced by inference on the validation split
        _, val_idx = train_val_split(40, val_fraction=0.1, seed=0)
        val = ref.poisson_nll(out.pred_amplitude[val_idx].astype(np.float64), data_g1.counts[val_idx])
        assert val == pytest.approx(trained_g1.history[-1]["val_loss"], rel=1e-4)

    def test_inference_uses_given_norm_factor_and_log_scale(
            self, impl: Backend, trained_g1: TrainResult, data_g1: TrainData,
            config_g1: PinnConfig) -> None:
        base = self.infer(impl, trained_g1, data_g1, config_g1)
        scaled = self.infer(impl, trained_g1, data_g1, config_g1, log_scale=trained_g1.log_scale + 0.5)
        np.testing.assert_array_equal(scaled.object_patches, base.object_patches)
        np.testing.assert_allclose(scaled.pred_amplitude, base.pred_amplitude * math.exp(0.5),
                                   rtol=1e-5, atol=1e-5)
        renorm = self.infer(impl, trained_g1, data_g1, config_g1, norm_factor=trained_g1.norm_factor * 3)
        assert np.abs(renorm.object_patches - base.object_patches).max() > 1e-3

    def test_inference_does_not_modify_its_inputs(self, impl: Backend, trained_g1: TrainResult,
                                                  data_g1: TrainData, config_g1: PinnConfig) -> None:
        weights = {k: v.copy() for k, v in trained_g1.weights.items()}
        counts = data_g1.counts.copy()
        a = self.infer(impl, trained_g1, data_g1, config_g1, weights=weights, counts=counts)
        b = self.infer(impl, trained_g1, data_g1, config_g1)
        np.testing.assert_array_equal(a.object_patches, b.object_patches)
        np.testing.assert_array_equal(counts, data_g1.counts)
        for k, v in weights.items():
            np.testing.assert_array_equal(v, trained_g1.weights[k])

    def test_empty_batch(self, impl: Backend, trained_g1: TrainResult, data_g1: TrainData,
                         config_g1: PinnConfig) -> None:
        out = self.infer(impl, trained_g1, data_g1, config_g1, counts=data_g1.counts[:0],
                         relative=data_g1.relative[:0])
        assert out.object_patches.shape == (0, 1, 32, 32) and out.object_patches.dtype == np.complex64
        assert out.pred_amplitude.shape == (0, 1, 32, 32) and out.pred_amplitude.dtype == np.float32

    @pytest.mark.parametrize("n", [32, 64, 128])
    def test_every_patch_size_the_spec_accepts_runs(self, impl: Backend, n: int,
                                                    rng: np.random.Generator) -> None:
        blocks = {32: 2, 64: 3, 128: 4}[n]
        cfg = PinnConfig(n=n, gridsize=2, filters=(2,) * blocks)
        data = simulated_train_data(n=n, gridsize=2, n_groups=2, rng=1)
        weights = ref.random_weights(cfg, rng)
        out = impl.infer_pinn(weights, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                              relative=data.relative, norm_factor=1.0, log_scale=0.0)
        assert out.object_patches.shape == (2, 4, n, n) and np.all(np.isfinite(out.pred_amplitude))
        x = np.sqrt(data.counts) / np.float32(data.scale)
        obj_ref, amp_ref = ref.forward({k: v.astype(np.float64) for k, v in weights.items()}, cfg,
                                       x, data.relative, data.probe.astype(complex), 0.0)
        assert np.abs(out.object_patches - obj_ref).max() <= 1e-4 * np.abs(obj_ref).max()
        assert np.abs(out.pred_amplitude - amp_ref).max() <= 1e-4 * np.abs(amp_ref).max()

    # ----------------------------------------------------------------------------- bad input
    @pytest.mark.parametrize(("over", "message"), [
        ({"norm_factor": 0.0}, "norm_factor must be > 0 and log_scale finite"),
        ({"norm_factor": math.inf}, "norm_factor must be > 0 and log_scale finite"),
        ({"log_scale": math.nan}, "norm_factor must be > 0 and log_scale finite"),
        ({"scale": -1.0}, r"scale must be finite and > 0, got -1.0"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
        ({"probe": np.ones((16, 16), np.complex64)}, r"probe must have shape \(32, 32\)"),
        ({"probe": np.ones((32, 32), np.float32)}, "probe must be complex"),
        ({"relative": np.zeros((40, 2))}, r"relative must have shape \(40, 1, 2\)"),
        ({"counts": np.zeros((40, 32, 32), np.float32)}, r"counts must have shape \(B, C, N, N\)"),
        ({"device": "tpu:0"}, "device must be None"),
    ])
    def test_inference_rejects_bad_input(self, impl: Backend, trained_g1: TrainResult,
                                         data_g1: TrainData, config_g1: PinnConfig,
                                         over: dict[str, Any], message: str) -> None:
        with pytest.raises(ModelError, match=message):
            self.infer(impl, trained_g1, data_g1, config_g1, **over)

    def test_inference_rejects_counts_that_do_not_fit_the_config(
            self, impl: Backend, trained_g1: TrainResult, data_g1: TrainData, data_g2: TrainData,
            config_g1: PinnConfig) -> None:
        with pytest.raises(ModelError, match=r"data have N=32, C=4 but the config expects N=32, C=1"):
            self.infer(impl, trained_g1, data_g2, config_g1)

    @pytest.mark.parametrize(("value", "count"), [(-1.0, 1), (math.nan, 1), (math.inf, 1)])
    def test_inference_rejects_bad_counts(self, impl: Backend, trained_g1: TrainResult,
                                          data_g1: TrainData, config_g1: PinnConfig, value: float,
                                          count: int) -> None:
        counts = data_g1.counts.copy()
        counts[3, 0, 5, 7] = value
        with pytest.raises(ModelError, match=f"counts must be finite and >= 0, got {count} of "):
            self.infer(impl, trained_g1, data_g1, config_g1, counts=counts)

    def test_inference_rejects_weights_of_another_layout(
            self, impl: Backend, trained_g1: TrainResult, data_g1: TrainData,
            config_g1: PinnConfig) -> None:
        missing = {k: v for k, v in trained_g1.weights.items() if k != "decoder_amp.final.bias"}
        with pytest.raises(ModelError, match=r"missing \['decoder_amp.final.bias'\]"):
            self.infer(impl, trained_g1, data_g1, config_g1, weights=missing)
        other = small_config(filters=(4, 8))
        with pytest.raises(ModelError, match=r"'encoder.0.conv0.kernel': expected shape "
                                             r"\(3, 3, 1, 4\), got \(3, 3, 1, 8\)"):
            self.infer(impl, trained_g1, data_g1, other)

    def test_train_rejects_data_that_do_not_fit(self, impl: Backend, data_g1: TrainData,
                                                data_g2: TrainData) -> None:
        with pytest.raises(ModelError, match=r"data have N=32, C=4 but the config expects N=32, C=1"):
            self.train(impl, data_g2, small_config(), seed=0)
        one = TrainData(data_g1.counts[:1], data_g1.scale, data_g1.probe, data_g1.relative[:1],
                        data_g1.nphotons)
        with pytest.raises(ModelError, match="need at least one training group: 1 groups"):
            self.train(impl, one, small_config(), seed=0)

    def test_train_rejects_unknown_accelerator(self, impl: Backend, data_g1: TrainData) -> None:
        with pytest.raises(ModelError, match="accelerator must be 'auto', 'cpu' or 'gpu', got 'tpu'"):
            self.train(impl, data_g1, small_config(), seed=0, accelerator="tpu")

    def test_gpu_without_gpu_is_a_model_error(self, impl: Backend, data_g1: TrainData) -> None:
        if self.gpu_available():
            pytest.skip("a GPU is present")
        with pytest.raises(ModelError, match="accelerator='gpu' was asked for but .* no"):
            self.train(impl, data_g1, small_config(), seed=0, accelerator="gpu")

    @pytest.mark.parametrize(("field", "value", "message"), [
        ("loss", "mse", "loss must be one of \\['mae', 'poisson'\\], got 'mse'"),
        ("amp_activation", "relu", "amp_activation must be one of \\['sigmoid', 'softplus', 'swish'\\], got 'relu'"),
    ])
    def test_unchecked_config_names_are_model_errors(self, impl: Backend, data_g1: TrainData,
                                                     field: str, value: str, message: str) -> None:
        with pytest.raises(SpecError, match=f"model config: model.{field}: Input should be"):
            small_config(**{field: value})
        with pytest.raises(ModelError, match=message):
            self.train(impl, data_g1, _bypass(small_config(epochs=1), **{field: value}), seed=0)
