"""Zarr v3 stage outputs: chunking, dimension names, the completion marker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from ptycho_dist.errors import StorageError
from ptycho_dist.storage.arrays import CHUNK_ITEMS, MARKER, ArrayStore, NamedArray


def _store(tmp_path: Path) -> ArrayStore:
    store = ArrayStore(tmp_path)
    store.initialize()
    return store


def test_write_read_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    store = _store(tmp_path)
    counts = rng.poisson(5.0, size=(600, 16, 16)).astype(np.float32)
    obj = (rng.normal(size=(40, 40)) + 1j * rng.normal(size=(40, 40))).astype(np.complex64)
    assert not store.is_complete("simulate", "k1")
    store.write("simulate", "k1", {"counts": NamedArray(counts, ("pattern", "ky", "kx")),
                              "object": NamedArray(obj, ("y", "x"))}, {"scale": 2.5})
    assert store.is_complete("simulate", "k1")
    group = store.read("simulate", "k1")
    np.testing.assert_array_equal(group["counts"], counts)
    np.testing.assert_array_equal(group["object"], obj)
    assert group.attrs["scale"] == 2.5 and group.attrs[MARKER]["complete"] is True
    meta = json.loads((store.path / "simulate" / "k1" / "counts" / "zarr.json").read_text())
    assert meta["dimension_names"] == ["pattern", "ky", "kx"]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [CHUNK_ITEMS, 16, 16]
    assert any(c["name"] == "blosc" and c["configuration"]["cname"] == "zstd" for c in meta["codecs"])


def test_unfinished_group_is_never_read_and_is_rewritten(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # simulate a writer killed before its marker: arrays present, no marker
    g = zarr.open_group(str(store.path), path="group/k2", mode="w", zarr_format=3)
    g.create_array("indices", shape=(3,), dtype="int64")[...] = [7, 7, 7]
    assert not store.is_complete("group", "k2")
    with pytest.raises(StorageError, match="unfinished"):
        store.read("group", "k2")
    store.write("group", "k2", {"indices": NamedArray(np.arange(5), ("group",))}, {})
    np.testing.assert_array_equal(store.read("group", "k2")["indices"], np.arange(5))


def test_opens_with_xarray(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write("stitch", "k3", {"canvas": NamedArray(np.ones((8, 9), np.complex64), ("y", "x"))}, {})
    ds = xr.open_zarr(store.path / "stitch" / "k3", zarr_format=3, consolidated=False)
    assert ds["canvas"].dims == ("y", "x") and ds["canvas"].shape == (8, 9)


def test_bad_dims_and_kind(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="dimension names"):
        NamedArray(np.zeros((2, 2)), ("y",))
    with pytest.raises(StorageError, match="unknown stage .nope.; expected one of"):
        _store(tmp_path).write("nope", "k", {}, {})
