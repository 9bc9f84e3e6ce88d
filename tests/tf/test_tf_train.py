"""What only the TF backend has: the device names, the single-device trainer and the Keras progress
bar; and, in this TF process, the "ptychopinn" rules of the shared schedule
(ptycho_dist/models/schedule.py, run by both backends) against Keras' own ``ReduceLROnPlateau`` and
``EarlyStopping``, the callbacks of the reference's training. The behaviour both backends share is
in tests/backend_contract.py (run here by test_tf_contract.py); the schedule's "torch" rules are
checked against PyTorch and Lightning in tests/models/test_schedule.py."""

from __future__ import annotations

import types
from collections.abc import Callable

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from ptycho_dist.errors import ModelError  # noqa: E402
from ptycho_dist.models import PinnConfig, TrainData  # noqa: E402
from ptycho_dist.models.schedule import EarlyStop, Plateau  # noqa: E402
from ptycho_dist.models.tf.train import resolve_device, train_pinn  # noqa: E402

pytestmark = pytest.mark.tf


def test_progress_bar(data_g1: TrainData, make_config: Callable[..., PinnConfig],
                      capsys: pytest.CaptureFixture[str]) -> None:
    result = train_pinn(data_g1, make_config(epochs=1), seed=0, accelerator="cpu", progress=True)
    assert "train_loss" in capsys.readouterr().out
    assert len(result.history) == 1


def test_single_process_trainer_uses_one_device(data_g1: TrainData,
                                                make_config: Callable[..., PinnConfig]) -> None:
    with pytest.raises(ModelError, match="uses devices=1, got 2"):
        train_pinn(data_g1, make_config(), seed=0, accelerator="cpu", devices=2)


def _losses(rng: np.random.Generator, length: int = 40) -> list[float]:
    """Falling, stalling (exact repeats), creeping (< 1e-4) and rising losses, multiples of 2**-10
    or creeps of 3e-5, so that no comparison of Keras' float32 ops sits at a rounding edge."""
    values, v = [], float(rng.integers(2000, 4000)) / 1024
    for _ in range(length):
        move = rng.choice(["fall", "stall", "creep", "rise"], p=[0.35, 0.3, 0.15, 0.2])
        v += {"fall": -float(rng.integers(1, 64)) / 1024, "stall": 0.0, "creep": -3e-5,
              "rise": float(rng.integers(1, 64)) / 1024}[str(move)]
        values.append(max(v, 1 / 1024))
    return values


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("factor", "patience", "min_lr"), [(0.5, 2, 1e-4), (0.1, 0, 0.0),
                                                            (0.7, 3, 2e-4), (0.5, 1, 1e-3)])
def test_keras_rule_equals_keras_reduce_on_plateau(seed: int, factor: float, patience: int,
                                                   min_lr: float) -> None:
    # the reference: ReduceLROnPlateau(monitor="val_loss", factor, patience, min_lr), Keras defaults
    optimizer = types.SimpleNamespace(learning_rate=1e-3)
    ref = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=patience,
                                            min_lr=min_lr, mode="min")
    ref.set_model(types.SimpleNamespace(optimizer=optimizer))
    ref.on_train_begin()
    mine = Plateau(1e-3, factor, patience, min_lr, rule="keras")
    for epoch, v in enumerate(_losses(np.random.default_rng(seed))):
        ref.on_epoch_end(epoch, {"val_loss": v})
        assert mine.step(v) == pytest.approx(float(optimizer.learning_rate), rel=1e-12), epoch


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stop_equals_keras_early_stopping(seed: int, patience: int) -> None:
    # the reference: EarlyStopping(monitor="loss", patience=3), min_delta 0
    model = types.SimpleNamespace(stop_training=False)
    ref = keras.callbacks.EarlyStopping(monitor="loss", patience=patience, mode="min")
    ref.set_model(model)
    ref.on_train_begin()
    mine = EarlyStop(patience)
    for epoch, v in enumerate(_losses(np.random.default_rng(100 + seed))):
        ref.on_epoch_end(epoch, {"loss": v})
        assert mine.step(v) is model.stop_training, epoch
        if model.stop_training:
            break


@pytest.mark.parametrize(("device", "expected"), [
    ("cpu", "/CPU:0"), ("gpu", "/GPU:0"), ("cuda:1", "/GPU:1"), ("/GPU:2", "/GPU:2")])
def test_resolve_device(device: str, expected: str) -> None:
    assert resolve_device(device) == expected


def test_resolve_device_rejects_unknown() -> None:
    with pytest.raises(ModelError, match="device must be None, 'cpu'.*got 'tpu:0'"):
        resolve_device("tpu:0")
