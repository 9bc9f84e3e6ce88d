"""The Backend protocol and load_backend (no framework is imported by these tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ptycho_dist.errors import ModelError, PtychoDistError
from ptycho_dist.models import load_backend


@pytest.mark.parametrize("name", ["oracle", "jax", "Torch", ""])
def test_unknown_backend_is_a_model_error(name: str) -> None:
    with pytest.raises(ModelError, match=rf"no PINN backend {name!r}: expected one of \['torch', 'tf'\]"):
        load_backend(name)


def test_model_error_is_a_runtime_error() -> None:
    assert issubclass(ModelError, PtychoDistError) and issubclass(ModelError, RuntimeError)
    assert not issubclass(ModelError, ValueError)


def test_importing_models_imports_no_framework() -> None:
    code = ("import sys, ptycho_dist.models, ptycho_dist.models.backend; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
