"""Typed stage outputs: one frozen dataclass per output kind of the registry, with its reader/writer.

A stage returns one of these (or nothing); :class:`OutputStore` writes it under
``arrays.zarr/<stage>/<key>`` with the stage's recorded outcome and the completion marker last, and
reads it back as the same class. Fields annotated ``Annotated[np.ndarray, Dims(...)]`` are zarr arrays (with their
dimension names); every other field is a JSON attribute. Outside ``storage/`` nothing reads array
names or attribute paths by string.

======================  ==============================  =========================================
output kind             class                           stages
======================  ==============================  =========================================
``simulated``           :class:`SimulatedData`          simulate
``groups``              :class:`Groups`                 group
``bundle``              :class:`Bundle`                 train (weights in ``models/<key>/``)
``prediction``          :class:`Prediction`             oracle, infer, transplant
``reconstruction``      :class:`Reconstruction`         stitch; iterative (:class:`IterativeReconstruction`)
``evaluation``          :class:`Evaluation`             evaluate
``comparison``          :class:`Comparison`             parity
======================  ==============================  =========================================
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
import typing
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np

from ptycho_dist.errors import StorageError
from ptycho_dist.storage.arrays import ArrayStore, FileDigest, NamedArray, OutputCheck, StageGroup
from ptycho_dist.storage.bundles import bundle_dir, read_bundle_files, write_bundle_files
from ptycho_dist.study.registry import OUTPUT_KINDS, stage_def

__all__ = ["StageOutput", "SimulatedData", "Groups", "Bundle", "Prediction", "Reconstruction",
           "IterativeReconstruction", "Evaluation",
           "Comparison", "OUTPUT_TYPES", "OutputStore", "Outcome", "Dims"]

T = TypeVar("T", bound="StageOutput")


@dataclass(frozen=True)
class Dims:
    """Marks a field ``Annotated[np.ndarray, Dims("y", "x")]`` as a stored array with these dimension names."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


_ARRAY_FIELDS: dict[type, dict[str, tuple[str, ...]]] = {}


def _array_fields(cls: type) -> dict[str, tuple[str, ...]]:
    """Field name -> dimension names, for the fields annotated with :class:`Dims` (memoized per class)."""
    if cls in _ARRAY_FIELDS:
        return _ARRAY_FIELDS[cls]
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        for meta in getattr(hints[f.name], "__metadata__", ()):
            if isinstance(meta, Dims):
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    raise TypeError(f"{cls.__name__}.{f.name}: an array field has no default (it is loaded lazily)")
                out[f.name] = meta.names
    _ARRAY_FIELDS[cls] = out
    return out


@dataclass(frozen=True)
class StageOutput:
    """Base of the typed outputs: array fields go to zarr, the others to JSON attributes."""

    kind: ClassVar[str] = ""

    def to_store(self) -> tuple[dict[str, NamedArray], dict[str, Any]]:
        """(arrays, attributes) as stored."""
        dims = _array_fields(type(self))
        arrays: dict[str, NamedArray] = {}
        attrs: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in dims:
                if value is not None:  # an optional array that is absent is not stored
                    arrays[f.name] = NamedArray(np.asarray(value), dims[f.name])
            else:
                attrs[f.name] = value
        return arrays, attrs

    @classmethod
    def from_store(cls: type[T], group: StageGroup, models: Path) -> T:
        """Read back what :meth:`to_store` wrote (``models`` is the run's bundle folder).

        Attributes are read at once; each array is read from the store on its first access, so a
        stage that reads a few arrays of a large output does not load the others.
        """
        dims = _array_fields(cls)
        stored = set(group.names())
        out = object.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in dims:
                if f.name not in stored:  # an optional array that was absent
                    object.__setattr__(out, f.name, None)
            elif f.name in group.attrs:
                object.__setattr__(out, f.name, group.attrs[f.name])
            else:
                raise StorageError(f"{group.path}: no attribute {f.name!r} of a {cls.kind} output")
        object.__setattr__(out, "_stored", group)
        return out

    def __getattr__(self, name: str) -> Any:
        """Load an array field of an output read back (only called for attributes not yet set;
        array fields therefore never have class-level defaults)."""
        group = self.__dict__.get("_stored")
        if group is None or name not in _array_fields(type(self)):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = group[name]
        object.__setattr__(self, name, value)
        return value

    def write_files(self, models: Path, key: str) -> tuple[Path, ...]:
        """Write the files stored beside the array group (none but for bundles); their paths."""
        return ()


@dataclass(frozen=True)
class SimulatedData(StageOutput):
    """What ``simulate`` stores: the truth and the measured data of one data point."""

    kind: ClassVar[str] = "simulated"
    object: Annotated[np.ndarray, Dims("y", "x")]
    """complex64 (H, W): the true object."""
    probe: Annotated[np.ndarray, Dims("py", "px")]
    """complex64 (N, N): the probe, normalized as the spec says."""
    positions: Annotated[np.ndarray, Dims("pattern", "xy")]
    """float64 (P, 2): probe centres (x, y) in object pixels."""
    counts: Annotated[np.ndarray, Dims("pattern", "ky", "kx")]
    """float32 (P, N, N): diffraction counts (Poisson draws or expected counts)."""
    truth_patches: Annotated[np.ndarray, Dims("pattern", "py", "px")]
    """complex64 (P, N, N): the true object patches at every position."""
    scale: float
    """The dose scale s of PHYSICS.md (counts = s² |F(P·O)|²)."""
    nphotons: float
    """Mean total photons per pattern (``dose.nphotons``)."""
    probe_factor: float
    """The probe normalization factor applied (1 when not normalized)."""
    has_truth: bool
    """False for measured data without a known object (``object`` and ``truth_patches`` are zeros)."""


@dataclass(frozen=True)
class Groups(StageOutput):
    """What ``group`` stores."""

    kind: ClassVar[str] = "groups"
    indices: Annotated[np.ndarray, Dims("group", "member")]
    """int64 (B, C): scan-position index of every member, C = gridsize²."""
    centers: Annotated[np.ndarray, Dims("group", "xy")]
    """float64 (B, 2): group centres (x, y), the mean of the members' positions."""
    relative: Annotated[np.ndarray, Dims("group", "member", "xy")]
    """float64 (B, C, 2): member position minus group centre (this project's sign convention)."""
    gridsize: int

    def positions(self, relative_sign: int = 1) -> np.ndarray:
        """float64 (B, C, 2): absolute member positions, centre + ``relative_sign`` x relative."""
        return self.centers[:, None, :] + relative_sign * self.relative


@dataclass(frozen=True)
class Bundle(StageOutput):
    """A trained model: canonical weights (``docs/weight_layout.md``) and the scalars inference reuses."""

    kind: ClassVar[str] = "bundle"
    weights: Mapping[str, np.ndarray]
    """Named float32 arrays (conv kernels HWIO)."""
    meta: Mapping[str, Any]
    """bundle.json: backend, config, norm_factor, log_scale, training summary, library versions."""

    @property
    def norm_factor(self) -> float:
        return float(self.meta["norm_factor"])

    @property
    def log_scale(self) -> float:
        return float(self.meta["log_scale"])

    def to_store(self) -> tuple[dict[str, NamedArray], dict[str, Any]]:
        return {}, {}

    def write_files(self, models: Path, key: str) -> tuple[Path, ...]:
        folder = write_bundle_files(models, key, dict(self.weights), dict(self.meta))
        return folder / "weights.safetensors", folder / "bundle.json"

    @classmethod
    def from_store(cls: type[T], group: StageGroup, models: Path) -> T:
        weights, meta = read_bundle_files(models, group.path.rsplit("/", 1)[-1])
        return cls(weights=weights, meta=meta)  # type: ignore[call-arg]


@dataclass(frozen=True)
class Prediction(StageOutput):
    """Predicted object patches of every group member (and the predicted diffraction amplitudes)."""

    kind: ClassVar[str] = "prediction"
    patches: Annotated[np.ndarray, Dims("group", "member", "py", "px")]
    """complex64 (B, C, N, N)."""
    backend: str
    """The backend that computed it (``oracle`` for the true patches)."""
    amplitude: Annotated[np.ndarray | None, Dims("group", "member", "ky", "kx")]
    """float32 (B, C, N, N) predicted diffraction amplitude (model arms), None for the oracle."""


@dataclass(frozen=True)
class Reconstruction(StageOutput):
    """A stitched object on a canvas (see :class:`ptycho_dist.stitching.StitchResult`)."""

    kind: ClassVar[str] = "reconstruction"
    canvas: Annotated[np.ndarray, Dims("y", "x")]
    """complex64 (H', W'): the stitched object."""
    coverage: Annotated[np.ndarray, Dims("y", "x")]
    """float64 (H', W'): summed weights per pixel."""
    origin: list[float]
    """(x, y) of canvas pixel (0, 0) in object pixels."""
    crop: int
    """Central crop of each patch that was stitched (N when none)."""
    frame: str
    """``object``, ``centered`` (StitchSpec.frame) or ``legacy`` (the older fixed canvas: faults.legacy_canvas)."""


@dataclass(frozen=True)
class IterativeReconstruction(Reconstruction):
    """The iterative arm's reconstruction: a :class:`Reconstruction` (read as one by ``evaluate``)
    whose canvas is the engine's object where the stitch of the same scan would cover it (NaN
    elsewhere), plus what the engine ended with."""

    estimate: Annotated[np.ndarray, Dims("y", "x")]
    """complex64 (H, W): the engine's whole object (no mask), on the object's pixel grid."""
    probe: Annotated[np.ndarray, Dims("mode", "py", "px")]
    """complex64 (modes, N, N): the final probe in the data's normalization (the engine's probe
    times N/s)."""
    positions: Annotated[np.ndarray, Dims("pattern", "xy")]
    """float64 (P, 2): the final probe centres (x, y) in object pixels (position correction moves them)."""
    algorithm: str
    """``iterative.algorithm``."""


@dataclass(frozen=True)
class Evaluation(StageOutput):
    """The rows of an evaluation against the truth (no arrays)."""

    kind: ClassVar[str] = "evaluation"
    metrics: list[dict[str, Any]]
    """One row per (target, channel) of the ``metrics`` table."""
    bias: list[dict[str, Any]]
    """The ``bias`` row(s)."""

    def metric(self, target: str, channel: str, name: str) -> float:
        """One figure of the ``metrics`` rows (NaN when absent)."""
        for r in self.metrics:
            if r["target"] == target and r["channel"] == channel:
                value = r.get(name)
                return float(value) if value is not None else float("nan")
        return float("nan")


@dataclass(frozen=True)
class Comparison(StageOutput):
    """The row of a comparison of two arms (``parity``)."""

    kind: ClassVar[str] = "comparison"
    row: dict[str, Any]
    """The ``parity`` row."""


#: output kind -> class (every kind of the registry has exactly one)
OUTPUT_TYPES: dict[str, type[StageOutput]] = {c.kind: c for c in (
    SimulatedData, Groups, Bundle, Prediction, Reconstruction, Evaluation, Comparison)}
if set(OUTPUT_TYPES) != set(OUTPUT_KINDS):  # pragma: no cover - a programming error, caught on import
    raise ImportError(f"output types {sorted(OUTPUT_TYPES)} do not match the registry's {sorted(OUTPUT_KINDS)}")


@dataclass(frozen=True)
class Outcome:
    """What a stage stored beside its output so that a cache hit replays it."""

    status: str
    seconds: float
    rows: Mapping[str, list[dict[str, Any]]]
    info: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": self.seconds, "rows": dict(self.rows), "info": dict(self.info)}


class OutputStore:
    """Typed access to the stage outputs of one run (``arrays.zarr/<stage>/<key>`` + bundles)."""

    def __init__(self, arrays: ArrayStore, models: Path) -> None:
        self.arrays = arrays
        self.models = Path(models)

    def is_complete(self, stage: str, key: str) -> bool:
        return self.arrays.is_complete(stage, key)

    def write(self, stage: str, key: str, output: StageOutput | None, outcome: Outcome) -> None:
        """Write ``output`` (files first), then the array group with the outcome and the marker last."""
        kind = stage_def(stage).output
        if output is not None and output.kind != kind:
            raise StorageError(f"stage {stage!r} stores {kind!r} outputs, got a {output.kind!r} one")
        arrays, attrs = output.to_store() if output is not None else ({}, {})
        written = output.write_files(self.models, key) if output is not None else ()
        digests = tuple(FileDigest.of(self.arrays.run_dir, p) for p in written)
        self.arrays.write(stage, key, arrays, {**attrs, "outcome": outcome.to_dict(), "has_output": output is not None},
                          files=digests)

    def check(self, stage: str, key: str, *, deep: bool = False) -> OutputCheck:
        """The state of the output (:meth:`ArrayStore.check`: the group and the files beside it)."""
        return self.arrays.check(stage, key, deep=deep)

    def remove(self, stage: str, key: str) -> bool:
        """Remove the output of ``stage`` with ``key`` (its group, and its bundle for ``train``)."""
        removed = self.arrays.remove(stage, key)
        if stage_def(stage).output == "bundle":
            folder = bundle_dir(self.models, key)
            if folder.exists():
                shutil.rmtree(folder)
                removed = True
        return removed

    def read(self, stage: str, key: str, cls: type[T]) -> T:
        """The output of ``stage`` with ``key`` as ``cls`` (StorageError if the stage stores another kind)."""
        kind = stage_def(stage).output
        if cls.kind != kind:
            raise StorageError(f"stage {stage!r} stores {kind!r} outputs, not {cls.kind!r}")
        group = self.arrays.read(stage, key)
        if not group.attrs.get("has_output", True):
            raise StorageError(f"{group.path}: the stage stored no output (status "
                               f"{group.attrs.get('outcome', {}).get('status')!r})")
        return cls.from_store(group, self.models)

    def outcome(self, stage: str, key: str) -> Outcome | None:
        """The recorded outcome of a complete output, or None when it must be computed."""
        group = self.arrays.read_if_complete(stage, key)
        if group is None:
            return None
        rec = group.attrs.get("outcome", {})
        return Outcome(rec.get("status", "ok"), float(rec.get("seconds", 0.0)), rec.get("rows", {}),
                       rec.get("info", {}))
