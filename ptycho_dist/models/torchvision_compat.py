"""Importing torchvision beside a CPU build of torch (a workaround of pytorch/vision#9085).

PyPI's torchvision wheels for x86-64 Linux are CUDA builds. Beside a CPU build of torch their C++
extension cannot load (it links ``libtorch_cuda.so``), which torchvision tolerates, but its
``_meta_registrations`` module then registers a fake kernel for the operators ``torchvision::nms``
and ``torchvision::qnms`` that the extension would have declared, and ``import torchvision`` fails
with ``RuntimeError: operator torchvision::nms does not exist``. Every package that imports
torchvision fails with it: pty-chi (which uses ``torchvision.transforms.GaussianBlur``) and
pytorch-lightning (through torchmetrics, whenever torchvision is installed).

:func:`ensure_torchvision_importable` runs before those imports (the torch backend and the
iterative arm call it). When torchvision's extension loads (a CPU wheel from the PyTorch CPU index
beside a CPU torch, or a CUDA wheel beside a CUDA torch) it does nothing else. When it does not,
it declares the two operator schemas (no kernels) in a library object kept alive for the process,
so that the real torchvision imports; its pure-PyTorch parts (transforms) work, and its compiled
operators raise torchvision's own "Couldn't load custom C++ ops" error if called. This is not a
substitute package: the installed torchvision is imported and used as it is.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal

__all__ = ["ensure_torchvision_importable", "TorchvisionStatus"]

TorchvisionStatus = Literal["absent", "imported", "native", "guarded"]

#: the operators that torchvision registers fake kernels for without checking that they exist
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_STATE: dict[str, Any] = {}


def _extension_path() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(p for p in folder.glob("_C*") if p.suffix in (".so", ".pyd"))
    return found[0] if found else folder / "_C.so"


def ensure_torchvision_importable() -> TorchvisionStatus:
    """Make ``import torchvision`` work beside this process's torch; say how.

    Returns
    -------
    {"absent", "imported", "native", "guarded"}
        ``absent``: torchvision is not installed (nothing to do); ``imported``: it was imported
        already (nothing can be done any more); ``native``: its C++ extension loads;
        ``guarded``: it does not, and the operator schemas were declared (module docstring).
    """
    if "status" in _STATE:
        return _STATE["status"]
    if "torchvision" in sys.modules:
        _STATE["status"] = "imported"
        return "imported"
    path = _extension_path()
    if path is None:
        return "absent"
    import torch

    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError):
        library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            library.define(schema)
        _STATE["library"] = library  # the declarations live as long as this object
        _STATE["status"] = "guarded"
    else:
        _STATE["status"] = "native"
    return _STATE["status"]
