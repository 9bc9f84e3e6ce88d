"""Ray Train path of the torch PINN: DDP on 2 CPU workers (gloo)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ray.train.lightning")

from pinn_data import simulated_train_data  # noqa: E402

from ptycho_dist.errors import SpecError  # noqa: E402
from ptycho_dist.models import PinnConfig, weight_layout  # noqa: E402
from ptycho_dist.orchestration.ray_train import train_pinn_distributed  # noqa: E402


@pytest.mark.ray
def test_two_cpu_workers_yield_one_result(ray_session: object) -> None:
    data = simulated_train_data(n=32, gridsize=1, n_groups=24, nphotons=1e5, rng=3)
    cfg = PinnConfig(n=32, filters=(8, 16), batch_size=8, epochs=2)
    result = train_pinn_distributed(data, cfg, seed=0, num_workers=2)
    assert {k: v.shape for k, v in result.weights.items()} == weight_layout(cfg)
    assert all(v.dtype == np.float32 and np.all(np.isfinite(v)) for v in result.weights.values())
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
               for row in result.history)
    assert result.diverged_epoch is None
    assert (result.n_train, result.n_val) == (22, 2)
    assert result.norm_factor > 0 and math.isfinite(result.log_scale)


def test_rejects_zero_workers() -> None:
    data = simulated_train_data(n=32, n_groups=4, rng=0)
    with pytest.raises(SpecError, match="num_workers must be >= 1, got 0"):
        train_pinn_distributed(data, PinnConfig(n=32, filters=(8, 16)), seed=0, num_workers=0)
