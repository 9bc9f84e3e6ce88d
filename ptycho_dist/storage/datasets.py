"""Measured data from PtychoPINN-format NPZ files (``data.source = "npz"``). No pickle.

The file holds (the PtychoPINN data contract):

=================  ======================  ===========================================================
key                shape                   meaning
=================  ======================  ===========================================================
``diffraction``    (n, N, N) float         diffraction amplitudes (or intensities, ``data.diffraction``);
                                           the older name ``diff3d`` is accepted
``xcoords``        (n,)                    probe-centre x of each pattern, object pixels
``ycoords``        (n,)                    probe-centre y of each pattern, object pixels
``probeGuess``     (N, N) complex          the probe
``objectGuess``    (H, W) complex          the object, when known (the truth arms are evaluated against)
=================  ======================  ===========================================================

:func:`inspect_npz_dataset` checks keys, shapes and dtypes from the array headers alone (cheap:
``ptycho-dist validate`` runs it when the file exists then); :func:`load_npz_dataset` reads the arrays.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptycho_dist.errors import SpecError

__all__ = ["NpzDataset", "inspect_npz_dataset", "load_npz_dataset", "DIFFRACTION_KEYS"]

#: accepted names of the diffraction stack, the first found is used
DIFFRACTION_KEYS = ("diffraction", "diff3d")


@dataclass(frozen=True)
class NpzDataset:
    """The arrays of a measured dataset.

    Attributes
    ----------
    diffraction : ndarray, float32, shape (n, N, N)
        As stored: amplitudes or intensities.
    positions : ndarray, float64, shape (n, 2)
        Probe centres (x, y) in object pixels.
    probe : ndarray, complex64, shape (N, N)
    object : ndarray, complex64, shape (H, W), or None
    """

    diffraction: np.ndarray
    positions: np.ndarray
    probe: np.ndarray
    object: np.ndarray | None


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name -> (shape, dtype) of every ``.npy`` member of the archive, from its header."""
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".npy"):
                continue
            with zf.open(name) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            out[name[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    return out


def inspect_npz_dataset(path: str | Path, *, field: str, probe_n: int) -> dict[str, tuple[int, ...]]:
    """Check that ``path`` is a usable PtychoPINN-format dataset; returns the shapes found.

    Raises
    ------
    SpecError
        Naming ``field``, the file, the key and the shapes found: a missing or unreadable file, a
        missing key, a diffraction stack that is not (n, N, N) with N = ``probe_n``, coordinates of
        another length, a probe that is not (N, N) complex, an object that is not 2-D.
    """
    p = Path(path)
    try:
        heads = _headers(p)
    except FileNotFoundError:
        raise SpecError(f"{field}: {p}: no such file") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise SpecError(f"{field}: {p}: not a readable .npz archive: {exc}") from None
    found = {k: v[0] for k, v in heads.items()}
    where = f"{field}: {p}"
    diff_key = next((k for k in DIFFRACTION_KEYS if k in heads), None)
    if diff_key is None:
        raise SpecError(f"{where}: no diffraction array (expected key 'diffraction' or 'diff3d'); keys found: "
                        f"{sorted(heads)}")
    missing = [k for k in ("xcoords", "ycoords", "probeGuess") if k not in heads]
    if missing:
        raise SpecError(f"{where}: missing key {missing[0]!r}; keys found: {sorted(heads)}")
    shape, dtype = heads[diff_key]
    if len(shape) != 3 or shape[1:] != (probe_n, probe_n):
        raise SpecError(f"{where}: {diff_key!r} has shape {shape}, expected (n, {probe_n}, {probe_n}) for "
                        f"probe.n = {probe_n}")
    if dtype.kind not in "fiu":
        raise SpecError(f"{where}: {diff_key!r} has dtype {dtype}, expected real numbers")
    for key in ("xcoords", "ycoords"):
        got = heads[key][0]
        if int(np.prod(got)) != shape[0] or len([d for d in got if d != 1]) > 1:
            raise SpecError(f"{where}: {key!r} has shape {got}, expected ({shape[0]},) like {diff_key!r} {shape}")
    pshape, pdtype = heads["probeGuess"]
    if pshape != (probe_n, probe_n) or pdtype.kind != "c":
        raise SpecError(f"{where}: 'probeGuess' has shape {pshape} and dtype {pdtype}, expected complex "
                        f"({probe_n}, {probe_n})")
    if "objectGuess" in heads and len(heads["objectGuess"][0]) != 2:
        raise SpecError(f"{where}: 'objectGuess' has shape {heads['objectGuess'][0]}, expected (H, W)")
    return found


def load_npz_dataset(path: str | Path, *, field: str, probe_n: int,
                     n_patterns: int | None = None) -> NpzDataset:
    """Read a dataset checked by :func:`inspect_npz_dataset` (first ``n_patterns`` patterns if given)."""
    inspect_npz_dataset(path, field=field, probe_n=probe_n)
    with np.load(Path(path), allow_pickle=False) as npz:
        diff_key = next(k for k in DIFFRACTION_KEYS if k in npz.files)
        stop = n_patterns if n_patterns is not None else None
        diffraction = np.asarray(npz[diff_key][:stop], dtype=np.float32)
        xs = np.asarray(npz["xcoords"], dtype=np.float64).reshape(-1)[:stop]
        ys = np.asarray(npz["ycoords"], dtype=np.float64).reshape(-1)[:stop]
        probe = np.asarray(npz["probeGuess"]).astype(np.complex64)
        obj = np.asarray(npz["objectGuess"]).astype(np.complex64) if "objectGuess" in npz.files else None
    if not (np.all(np.isfinite(diffraction)) and np.all(diffraction >= 0)):
        raise SpecError(f"{field}: {path}: {diff_key!r} must be finite and >= 0")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(np.isfinite(probe))):
        raise SpecError(f"{field}: {path}: coordinates and probeGuess must be finite")
    return NpzDataset(diffraction, np.stack([xs, ys], axis=1), probe, obj)
