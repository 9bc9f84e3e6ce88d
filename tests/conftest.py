"""Shared test fixtures.

Unit tests never start Ray. Tests marked ``ray`` share ONE session-scoped local Ray instance with a
fixed number of CPUs (``ray_session``); it is shut down at the end, which stops only the processes
this session started.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterator

import numpy as np
import pytest

RAY_TEST_CPUS = 2



@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local Ray instance for every ``ray`` test (fixed ``num_cpus``, no dashboard)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # pragma: no cover - defensive
        ray.shutdown()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(
        address="local",
        num_cpus=RAY_TEST_CPUS,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


_TF_DIR = Path(__file__).parent / "tf"


def _tf_requested(config: pytest.Config) -> bool:
    return any(Path(a.split("::")[0]).resolve().is_relative_to(_TF_DIR) for a in config.args)


def pytest_configure(config: pytest.Config) -> None:
    """Outside the TensorFlow process: make ``import torchvision`` (through pytorch-lightning and
    pty-chi) work beside the CPU torch before any test module imports them
    (ptycho_dist.models.torchvision_compat)."""
    if not _tf_requested(config):
        from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable

        ensure_torchvision_importable()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """TensorFlow tests run only in a pytest process of their own (``pytest tests/tf``): TF and torch
    are never imported into one process."""
    if collection_path.resolve().is_relative_to(_TF_DIR) and not _tf_requested(config):
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str:
    if _tf_requested(config):
        return "TensorFlow tests only (tests/tf)"
    return "tests/tf (TensorFlow) not collected here: run `pytest tests/tf` in its own process"
