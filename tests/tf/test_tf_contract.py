"""The backend contract (tests/backend_contract.py) for the TensorFlow backend (own process)."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")

from backend_contract import BackendContract  # noqa: E402

pytestmark = pytest.mark.tf


class TestTfBackend(BackendContract):
    backend = "tf"

    @staticmethod
    def gpu_available() -> bool:
        return bool(tf.config.list_physical_devices("GPU"))
