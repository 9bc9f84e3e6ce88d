"""Reading user-supplied arrays (objects and probes "from file"): .npy, .npz, .tif/.tiff. No pickle.

PtychoPINN-format .npz files (arrays ``probeGuess``, ``objectGuess``, ``diffraction``/``diff3d``,
``xcoords``, ``ycoords``) are read one named array at a time; :func:`npz_array_header` reads only
an array's shape and dtype (the .npy header inside the zip), so checks at validation time stay
cheap whatever the size of the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ptycho_dist.errors import SpecError

__all__ = ["load_user_array", "npz_array_header", "check_npz_probe", "load_npz_probe"]


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


def npz_array_header(path: str | Path, key: str, *, field: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the array ``key`` of the .npz file at ``path``, without reading its data.

    Raises
    ------
    SpecError
        ``<field>: <path>: ...``: no such file, not a readable .npz, or no array ``key`` (the
        message lists the arrays found).
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as archive:
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            if key not in names:
                raise SpecError(f"{field}: {p}: no array {key!r} in the .npz file "
                                f"(found: {', '.join(sorted(names)) or 'none'})")
            with archive.open(f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    except FileNotFoundError:
        raise SpecError(f"{field}: {p}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{field}: {p}: is a directory, expected a .npz file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(f"{field}: {p}: cannot read array {key!r} of the .npz file: {exc}") from None
    return tuple(int(d) for d in shape), np.dtype(dtype)


def check_npz_probe(path: str | Path, *, key: str, n: int, field: str) -> None:
    """Check, from its header only, that ``key`` of the .npz at ``path`` is a probe for ``probe.n = n``.

    The array must have shape (n, n) and a complex or real floating dtype.

    Raises
    ------
    SpecError
        ``<field>: <path>: array <key> has shape (...), expected (n, n) (probe.n = n)``, a wrong
        dtype, or any error of :func:`npz_array_header`.
    """
    shape, dtype = npz_array_header(path, key, field=field)
    if shape != (n, n):
        raise SpecError(f"{field}: {Path(path)}: array {key!r} has shape {shape}, expected ({n}, {n}) "
                        f"(probe.n = {n})")
    if dtype.kind not in "fc":
        raise SpecError(f"{field}: {Path(path)}: array {key!r} has dtype {dtype} and shape {shape}, "
                        "expected a complex (or real floating) probe")


def load_npz_probe(path: str | Path, *, key: str, n: int, field: str) -> np.ndarray:
    """Read the probe array ``key`` (default PtychoPINN ``probeGuess``) of a .npz file, no pickle.

    Returns
    -------
    ndarray, shape (n, n), the file's dtype (complex or real floating)

    Raises
    ------
    SpecError
        As :func:`check_npz_probe`.
    """
    check_npz_probe(path, key=key, n=n, field=field)
    try:
        with np.load(Path(path), allow_pickle=False) as npz:
            return np.asarray(npz[key])
    except (OSError, ValueError) as exc:
        raise SpecError(f"{field}: {Path(path)}: cannot read array {key!r} of the .npz file: {exc}") from None
