"""What only the TF backend has: its own reduce-on-plateau and early-stopping rules (Lightning's in
torch), the device names, the single-device trainer and the Keras progress bar. The behaviour both
backends share is in tests/backend_contract.py (run here by test_tf_contract.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

tf = pytest.importorskip("tensorflow")

from ptycho_dist.errors import ModelError  # noqa: E402
from ptycho_dist.models import PinnConfig, TrainData  # noqa: E402
from ptycho_dist.models.tf.train import (  # noqa: E402
    EarlyStop,
    PlateauSchedule,
    resolve_device,
    train_pinn,
)

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


def test_plateau_schedule_matches_torch_rule() -> None:
    sched = PlateauSchedule(lr=1.0, factor=0.5, patience=1, min_lr=0.2)
    # 10 best; 9.9995 is within the 1e-4 relative threshold: not an improvement
    lrs = [sched.step(v) for v in (10.0, 9.9995, 9.9995, 5.0, 5.0, 5.0, 5.0, 5.0, math.nan, 5.0)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_early_stop_rule() -> None:
    stop = EarlyStop(patience=2)
    assert [stop.step(v) for v in (3.0, 2.0, 2.0, 1.0, 1.0, math.nan)] == [
        False, False, False, False, False, True]


@pytest.mark.parametrize(("device", "expected"), [
    ("cpu", "/CPU:0"), ("gpu", "/GPU:0"), ("cuda:1", "/GPU:1"), ("/GPU:2", "/GPU:2")])
def test_resolve_device(device: str, expected: str) -> None:
    assert resolve_device(device) == expected


def test_resolve_device_rejects_unknown() -> None:
    with pytest.raises(ModelError, match="device must be None, 'cpu'.*got 'tpu:0'"):
        resolve_device("tpu:0")
