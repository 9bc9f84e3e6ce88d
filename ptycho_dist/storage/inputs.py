"""Reading user-supplied arrays (objects and probes "from file"): .npy, .npz, .tif/.tiff. No pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptycho_dist.errors import SpecError

__all__ = ["load_user_array"]


def load_user_array(path: str | Path, *, field: str) -> np.ndarray:
    """Load the array at ``path`` (.npy; .npz: its only array or the one named ``object``/``probe``;
    .tif/.tiff). ``field`` names the spec field in error messages.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                names = list(npz.files)
                wanted = [n for n in names if n in ("object", "probe")] or names
                if len(wanted) != 1:
                    raise SpecError(f"{field}: {p}: expected one array (or one named object/probe), found {names}")
                return np.asarray(npz[wanted[0]])
        if suffix in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(p))
    except FileNotFoundError:
        raise SpecError(f"{field}: {p}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{field}: {p}: cannot read array: {exc}") from None
    raise SpecError(f"{field}: {p}: unsupported file type {suffix!r}; expected .npy, .npz, .tif or .tiff")
