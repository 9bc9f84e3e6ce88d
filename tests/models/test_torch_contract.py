"""The backend contract (tests/backend_contract.py) for the PyTorch backend."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backend_contract import BackendContract  # noqa: E402


class TestTorchBackend(BackendContract):
    backend = "torch"

    @staticmethod
    def gpu_available() -> bool:
        return bool(torch.cuda.is_available())
