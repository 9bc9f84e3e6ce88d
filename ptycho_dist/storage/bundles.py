"""Model bundles: ``<run>/models/<key>/weights.safetensors`` + ``bundle.json`` (written last).

The weights are the canonical named float32 arrays of ``docs/weight_layout.md`` (conv kernels HWIO),
stored with safetensors: no pickle, loadable by either backend. ``bundle.json`` holds the model
config, the normalization factor, the final intensity scale (``log_scale``), the training summary
and library versions; it is the bundle's completion marker. The typed output that holds a bundle is
:class:`ptycho_dist.storage.outputs.Bundle`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors import SafetensorError
from safetensors.numpy import save as st_save

from ptycho_dist.errors import CorruptDataError, StorageError
from ptycho_dist.storage.files import write_bytes_atomic, write_json_atomic

__all__ = ["write_bundle_files", "read_bundle_files", "bundle_dir"]

BUNDLE_FORMAT = 1


def bundle_dir(models_root: Path, key: str) -> Path:
    """Folder of the bundle with stage key ``key``."""
    return Path(models_root) / key


def write_bundle_files(models_root: Path, key: str, weights: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write weights then ``bundle.json`` (atomic files; the JSON last marks the bundle complete)."""
    for name in ("norm_factor", "log_scale", "config", "backend"):
        if name not in meta:
            raise StorageError(f"bundle {key}: meta lacks {name!r}")
    folder = bundle_dir(models_root, key)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    write_bytes_atomic(folder / "weights.safetensors", st_save(arrays, metadata={"format": str(BUNDLE_FORMAT)}))
    write_json_atomic(folder / "bundle.json", {"format": BUNDLE_FORMAT, **meta})
    return folder


def read_bundle_files(models_root: Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a complete bundle (StorageError when absent or unfinished)."""
    folder = bundle_dir(models_root, key)
    try:
        meta = json.loads((folder / "bundle.json").read_text())
        weights = st_load((folder / "weights.safetensors").read_bytes())
    except FileNotFoundError:
        raise StorageError(f"{folder}: no complete model bundle (bundle.json or weights missing)") from None
    except (ValueError, OSError, SafetensorError) as exc:  # damaged JSON or weights
        raise CorruptDataError(f"{folder}: damaged model bundle ({type(exc).__name__}: {str(exc)[:120]}); "
                               "run `ptycho-dist verify RUN --repair`", path=str(folder), stage="train",
                               key=key) from exc
    return {k: np.asarray(v) for k, v in weights.items()}, dict(meta)
