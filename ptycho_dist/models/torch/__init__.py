"""PyTorch/Lightning backend of the PINN (requires the ``torch`` extra).

Import the submodules directly (``ptycho_dist.models.torch.train``); this package only checks that
PyTorch and pytorch-lightning are installed and says how to install them if not.
"""

from __future__ import annotations

import importlib.util

__all__: list[str] = []

_MISSING = [name for name in ("torch", "pytorch_lightning") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the PyTorch backend needs {', '.join(_MISSING)}: install with "
        "`pip install 'ptycho-dist[torch]'` (choose the torch wheel for your CUDA, see cluster/README.md)")

# pytorch-lightning imports torchvision (through torchmetrics) whenever it is installed: make that
# import work beside a CPU torch before anything imports lightning (ptycho_dist.models.torchvision_compat)
from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable  # noqa: E402

ensure_torchvision_importable()
