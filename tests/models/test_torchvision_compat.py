"""torchvision beside the CPU torch (ptycho_dist.models.torchvision_compat, pytorch/vision#9085)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torchvision")

from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable  # noqa: E402

_GUARDED_IMPORTS = """
from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable
status = ensure_torchvision_importable()
import torch, torchvision, pytorch_lightning, ptychi.api
from torchvision.transforms import GaussianBlur
x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
y = GaussianBlur(kernel_size=(9, 9), sigma=(3.0, 3.0))(x)
print(status, torchvision.extension._has_ops(), round(float(y.max()), 4))
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


def test_status_is_stable_and_torchvision_imports() -> None:
    first = ensure_torchvision_importable()
    assert first in ("native", "guarded", "imported")
    import torchvision.transforms  # noqa: F401

    assert ensure_torchvision_importable() == first


def test_guard_lets_torchvision_lightning_and_ptychi_import_in_a_fresh_process() -> None:
    done = _run(_GUARDED_IMPORTS)
    assert done.returncode == 0, done.stderr[-2000:]
    status, has_ops, peak = done.stdout.split()
    # guarded: the CUDA wheel beside a CPU torch (no compiled ops); native: a matching build
    assert (status, has_ops) in (("guarded", "False"), ("native", "True"))
    assert float(peak) == pytest.approx(0.02345, abs=5e-4)  # the real transform ran: the centre of a 9 x 9, sigma 3 Gaussian


@pytest.mark.slow
def test_without_the_guard_the_cuda_wheel_fails_to_import() -> None:
    """What the guard is for: a plain import fails exactly when the guard declares the schemas."""
    status = _run(_GUARDED_IMPORTS).stdout.split()[0]
    plain = _run("import torchvision")
    if status == "guarded":
        assert plain.returncode != 0 and "torchvision::nms does not exist" in plain.stderr
    else:
        assert plain.returncode == 0
