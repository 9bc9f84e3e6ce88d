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
    "CorruptDataError",
    "RunLockedError",
    "StudyMismatchError",
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


class CorruptDataError(StorageError):
    """Stored data that fail their checksum, are truncated or missing, or cannot be decoded.

    The message names the damaged file (or array) and says how to fix it (``ptycho-dist verify RUN
    --repair``); ``path`` is that file, ``stage``/``key`` the stage output it belongs to, if any.
    """

    def __init__(self, message: str, *, path: str | None = None, stage: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.path, self.stage, self.key = path, stage, key

    def __reduce__(self) -> tuple[object, ...]:  # picklable with its fields (Ray ships exceptions)
        return (_corrupt, (str(self), self.path, self.stage, self.key))


def _corrupt(message: str, path: str | None, stage: str | None, key: str | None) -> CorruptDataError:
    return CorruptDataError(message, path=path, stage=stage, key=key)


class RunLockedError(StorageError):
    """Another ``ptycho-dist run`` (or a repair) holds the run folder's lock; the message names it."""


class StudyMismatchError(SpecError):
    """The run folder belongs to another version of the study (its spec hash in ``study.json`` differs)."""


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
