"""Fixtures of the TensorFlow backend tests (N = 32, tiny filters, data from ptycho_dist.physics).

TensorFlow and PyTorch must never be imported in one process. These tests run in their own pytest
process (``python -m pytest tests/tf -m tf``); when a run that already imported torch (e.g. a plain
``pytest tests``, which collects tests/models first) reaches this folder, its modules are not
collected, so that TensorFlow is not imported next to torch. The torch side of the cross-backend
test runs in a child process (``torch_peer.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pinn_data import simulated_train_data

from ptycho_dist.models import PinnConfig, TrainData, TrainResult


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip collecting tests/tf modules in a process that has already imported torch."""
    if "torch" in sys.modules and collection_path.suffix == ".py":
        return True
    return None


@pytest.fixture(scope="session")
def data_g1() -> TrainData:
    """40 single-pattern groups, N = 32, 1e5 photons per pattern."""
    return simulated_train_data(n=32, gridsize=1, n_groups=40, nphotons=1e5, rng=11)


@pytest.fixture(scope="session")
def data_g2() -> TrainData:
    """24 groups of 2 x 2 patterns, N = 32."""
    return simulated_train_data(n=32, gridsize=2, n_groups=24, nphotons=1e5, rng=12)


@pytest.fixture(scope="session")
def make_config() -> Callable[..., PinnConfig]:
    """Factory of small configs: N = 32, filters (8, 16), batch 8, 2 epochs, dose scale init."""

    def make(**overrides: object) -> PinnConfig:
        base: dict[str, object] = {"n": 32, "filters": (8, 16), "batch_size": 8, "epochs": 2,
                                   "log_scale_init": "dose"}
        base.update(overrides)
        return PinnConfig(**base)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def config_g1(make_config: Callable[..., PinnConfig]) -> PinnConfig:
    """The config of :func:`trained_g1`: 4 epochs at lr 3e-3."""
    return make_config(epochs=4, lr=3e-3)


@pytest.fixture(scope="session")
def trained_g1(data_g1: TrainData, config_g1: PinnConfig) -> TrainResult:
    """A TF model trained on ``data_g1`` (seed 0, CPU)."""
    from ptycho_dist.models.tf.train import train_pinn

    return train_pinn(data_g1, config_g1, seed=0, accelerator="cpu")
