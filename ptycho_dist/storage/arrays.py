"""Zarr v3 array store of a run (``<run>/arrays.zarr``).

Every stage output is one zarr group ``<stage>/<key>`` (the stage names of the registry,
:data:`ptycho_dist.study.registry.STAGES`) holding named arrays with ``dimension_names`` (xarray and tensorstore read them), chunked along their first
(pattern/group) axis and compressed with Blosc/Zstd. The group's attributes carry the stage's small
results (scalars, spec, rows) and the **completion marker**, written last: a group without the marker
is an unfinished write; it is never read and is rewritten from scratch by the next run. One stage key
is written by exactly one task, so writers never share a chunk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from ptycho_dist.errors import StorageError
from ptycho_dist.study.registry import STAGES

__all__ = ["ArrayStore", "NamedArray", "StageGroup", "MARKER"]

#: attribute that marks a complete stage output
MARKER = "ptycho_dist_complete"
#: elements per chunk along the first axis (patterns, groups)
CHUNK_ITEMS = 256


@dataclass(frozen=True)
class NamedArray:
    """An array and the names of its dimensions."""

    data: np.ndarray
    dims: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.data.ndim != len(self.dims):
            raise StorageError(f"array of shape {self.data.shape} given {len(self.dims)} dimension names {self.dims}")


@dataclass(frozen=True)
class StageGroup:
    """A complete stage output read back: arrays are loaded lazily by name."""

    path: str
    attrs: Mapping[str, Any]
    _group: Any

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self._group[name][...])
        except KeyError:
            raise StorageError(f"{self.path}: no array {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._group.array_keys())


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    if not shape:
        return ()
    return (max(1, min(shape[0], CHUNK_ITEMS)), *shape[1:])


class ArrayStore:
    """The zarr v3 store of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / "arrays.zarr"

    def initialize(self) -> None:
        """Create the root and the top-level groups (idempotent; done by the driver before any task)."""
        root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
        for stage in STAGES:
            root.require_group(stage)

    def _open_complete(self, stage: str, key: str) -> tuple[Any, dict[str, Any]] | None:
        """The zarr group ``<stage>/<key>`` and its attributes when it carries the marker (one open)."""
        try:
            group = zarr.open_group(str(self.path), path=f"{stage}/{key}", mode="r", zarr_format=3)
        except FileNotFoundError:  # zarr's GroupNotFoundError is one; a missing store too
            return None
        attrs: dict[str, Any] = dict(group.attrs)
        if not attrs.get(MARKER, {}).get("complete", False):
            return None
        return group, attrs

    def is_complete(self, stage: str, key: str) -> bool:
        """True when ``<stage>/<key>`` exists and carries the completion marker."""
        return self._open_complete(stage, key) is not None

    def write(self, stage: str, key: str, arrays: Mapping[str, NamedArray], attrs: Mapping[str, Any]) -> None:
        """Write a stage output from scratch, then its attributes with the completion marker last.

        Any earlier, unfinished group at the same path is removed first.
        """
        if stage not in STAGES:
            raise StorageError(f"unknown stage {stage!r}; expected one of {STAGES}")
        group = zarr.open_group(str(self.path), path=f"{stage}/{key}", mode="w", zarr_format=3)
        for name, arr in arrays.items():
            data = np.ascontiguousarray(arr.data)
            z = group.create_array(
                name, shape=data.shape, dtype=data.dtype, chunks=_chunks(data.shape),
                dimension_names=arr.dims,
                compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=data.dtype.itemsize),
            )
            z[...] = data
        # one metadata write, after every array: the marker is never seen before the arrays are complete
        group.update_attributes({**dict(attrs), MARKER: {"complete": True, "written_at": time.time()}})

    def read_if_complete(self, stage: str, key: str) -> StageGroup | None:
        """The complete output ``<stage>/<key>``, or None when it is missing or unfinished."""
        found = self._open_complete(stage, key)
        return None if found is None else StageGroup(f"{stage}/{key}", found[1], found[0])

    def read(self, stage: str, key: str) -> StageGroup:
        """Open a complete stage output; an unfinished one is an error, never read."""
        found = self._open_complete(stage, key)
        if found is None:
            raise StorageError(f"{self.path}/{stage}/{key}: missing or unfinished (no completion marker)")
        group, attrs = found
        return StageGroup(f"{stage}/{key}", attrs, group)

    def written_at(self, stage: str, key: str) -> float:
        """When the completion marker of ``<stage>/<key>`` was written (seconds since the epoch)."""
        return float(self.read(stage, key).attrs[MARKER]["written_at"])
