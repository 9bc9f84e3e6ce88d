"""Exception hierarchy of ptycho_dist.

One base class, :class:`PtychoDistError`; every subclass also inherits the builtin it resembles so
that callers may catch either (``except ValueError`` keeps working).
"""

from __future__ import annotations

__all__ = [
    "PtychoDistError",
    "SpecError",
    "PhysicsError",
    "GroupingError",
    "StitchError",
    "EvaluationError",
    "StorageError",
    "StageError",
    "ModelError",
    "ClusterError",
]


class PtychoDistError(Exception):
    """Base class of every error raised on purpose by ptycho_dist."""


class SpecError(PtychoDistError, ValueError):
    """A study file or scenario spec is invalid (message names the file and the dotted field path)."""


class PhysicsError(PtychoDistError, ValueError):
    """Physical parameters that cannot be simulated (object too small, step 0, negative dose...)."""


class GroupingError(PtychoDistError, ValueError):
    """Scan positions cannot be grouped as asked (too few positions, K too small, too many groups)."""


class StitchError(PtychoDistError, ValueError):
    """Patches and positions that cannot be stitched (shape mismatch, NaN, outside the frame)."""


class EvaluationError(PtychoDistError, ValueError):
    """Arrays that cannot be compared (shape mismatch, empty region)."""


class StorageError(PtychoDistError, OSError):
    """A run directory, array store or table cannot be read or written as expected."""


class StageError(PtychoDistError, RuntimeError):
    """A pipeline stage failed for a scientific or input reason (becomes a ``failed`` row)."""


class ModelError(PtychoDistError, RuntimeError):
    """A model or runtime condition the PINN backends cannot work with.

    Raised by :mod:`ptycho_dist.models` (both backends alike) when the *inputs of a run*, not the
    study file, are at fault: data that do not fit the model (counts whose N or C differ from the
    configuration, probe or relative coordinates of the wrong shape, negative or non-finite counts,
    a training split left empty by the number of groups), weights that do not match the
    configuration's layout, bad normalization or intensity scales, an unknown loss or device name,
    or hardware that is not there (``accelerator="gpu"`` without a CUDA device). A setting that a
    study file could get wrong is a :class:`SpecError` at validation time instead.
    """


class ClusterError(PtychoDistError, ConnectionError):
    """A Ray cluster that cannot be reached, or refuses this client (token authentication)."""
