"""Small simulated training sets for the model tests (N = 32, from ptycho_dist.physics)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinn_data import simulated_train_data

from ptycho_dist.models import PinnConfig, TrainData


@pytest.fixture(scope="session")
def data_g1() -> TrainData:
    """40 single-pattern groups, N = 32, 1e5 photons per pattern."""
    return simulated_train_data(n=32, gridsize=1, n_groups=40, nphotons=1e5, rng=11)


@pytest.fixture(scope="session")
def data_g2() -> TrainData:
    """24 groups of 2 x 2 patterns, N = 32."""
    return simulated_train_data(n=32, gridsize=2, n_groups=24, nphotons=1e5, rng=12)


@pytest.fixture
def make_config() -> Callable[..., PinnConfig]:
    """Factory of small configs: N = 32, filters (8, 16), batch 8, 2 epochs, plus overrides."""

    def make(**overrides: object) -> PinnConfig:
        # log_scale_init pinned to the setting these fixtures were tuned with (the default is "dose")
        base: dict[str, object] = {"n": 32, "filters": (8, 16), "batch_size": 8, "epochs": 2,
                                   "log_scale_init": "nphotons"}
        base.update(overrides)
        return PinnConfig(**base)  # type: ignore[arg-type]

    return make
