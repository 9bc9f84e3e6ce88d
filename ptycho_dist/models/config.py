"""The PINN's configuration, built from a scenario, and the architecture it implies.

:class:`PinnConfig` is what both backends read: the model and training settings of one arm. It
carries no rules of its own. Every limit (patch sizes, filters per encoder block, learning-rate
floor, validation share...) is written once, in the spec models of :mod:`ptycho_dist.study.spec`,
so that ``ptycho-dist validate`` rejects exactly what training would reject. A config built by
hand or read back from a stored bundle is checked by validating the scenario of a PINN arm with
these settings (:meth:`PinnConfig.spec_dict`).

Numpy only: importing this module never imports torch or TensorFlow.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import ValidationError

from ptycho_dist.errors import ModelError, SpecError
from ptycho_dist.study.messages import describe_error, format_loc
from ptycho_dist.study.spec import (
    PINN_BACKENDS,
    ActivationName,
    InitName,
    LossName,
    Scenario,
    ScaleInitName,
    ScheduleName,
    default_filters,
    encoder_blocks,
)

__all__ = [
    "PinnConfig",
    "SPEC_FIELDS",
    "check_spec",
    "encoder_blocks",
    "default_filters",
    "decoder_filters",
    "central_window",
    "choose",
]


#: PinnConfig field -> (scenario section, field): where each setting comes from in a scenario
SPEC_FIELDS: dict[str, tuple[str, str]] = {
    "n": ("probe", "n"),
    "gridsize": ("grouping", "gridsize"),
    **{name: ("model", name) for name in ("filters", "n_filters_scale", "init", "loss",
                                          "amp_activation", "object_big", "trainable_scale",
                                          "log_scale_init", "channels_last")},
    **{name: ("training", name) for name in ("lr", "batch_size", "epochs", "plateau_factor",
                                             "plateau_patience", "min_lr",
                                             "early_stopping_patience", "schedule",
                                             "val_fraction", "precision")},
}


def decoder_filters(filters: tuple[int, ...]) -> tuple[int, ...]:
    """Filters of the decoder blocks, given the encoder filters ``filters`` (length E).

    The decoder has ``E - 1`` blocks (each doubles the resolution, 8 -> N/2); block ``j`` uses
    ``filters[max(E - 2 - j, 0)]``: (64, 128, 256) -> (128, 64); (a, b) -> (a,);
    (a, b, c, d) -> (c, b, a).
    """
    e = len(filters)
    return tuple(filters[max(e - 2 - j, 0)] for j in range(e - 1))


def central_window(n: int) -> np.ndarray:
    """Mask of the central N/2 x N/2 window: ones on rows and columns N/4 .. 3N/4 - 1.

    Returns
    -------
    ndarray, float32, shape (N, N)
    """
    m = np.zeros((n, n), dtype=np.float32)
    m[n // 4: n // 4 + n // 2, n // 4: n // 4 + n // 2] = 1.0
    return m


@dataclass(frozen=True)
class PinnConfig:
    """Model and training configuration of the PINN (PHYSICS.md, "The PINN").

    Build it with :meth:`from_scenario`; the fields mirror the scenario fields named in
    :data:`SPEC_FIELDS` and have their defaults. Construction validates the settings against the
    spec models (the scenario of a torch arm with these settings) and raises :class:`SpecError`
    naming the scenario field.

    Parameters
    ----------
    n : int
        Patch size N (``probe.n``; 32, 64 or 128).
    gridsize : int
        Group side (``grouping.gridsize``); C = gridsize**2 channels per group.
    filters : tuple of int or None
        Encoder filters, one per encoder block (``log2(n) - 3`` entries). None means
        ``default_filters(n, n_filters_scale)`` and is resolved to that tuple at construction.
    n_filters_scale : int or None
        Width scale (PtychoPINN's ``n_filters_scale``): filters ``n_filters_scale * 32 * 2**i``;
        None means 2. Given with ``filters``, the two must agree (a spec rule).
    init : {"keras", "torch"}
        Initial convolution weights: glorot-uniform kernels and zero biases (Keras' defaults, the
        reference's; default) or PyTorch's ``Conv2d`` default (kernels and biases
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``). Both backends draw from the same distribution
        with their own RNG, seeded.
    loss : {"poisson", "mae"}
        Poisson negative log-likelihood of the counts (default) or MAE on amplitudes.
    amp_activation : {"sigmoid", "softplus", "swish"}
        Activation of the amplitude decoder's output (sigmoid by default).
    object_big : bool
        For gridsize > 1, apply the overlap constraint (average of the group's patches on a shared
        canvas). Ignored when gridsize == 1.
    trainable_scale : bool
        Whether ``log_scale`` (the intensity scale) is trained.
    log_scale_init : {"nphotons", "dose"}
        Initial ``log_scale``: ``log(s)``, the dose scale of the training data (default), with which
        the object amplitude is learned in the data's own units, or ``"nphotons"``:
        ``log(sqrt(nphotons) / (N/2))``, the PtychoPINN convention of PHYSICS.md, kept as a named
        compatibility option. With the PHYSICS.md probe normalization that value is ``s / f``
        (f the input normalization factor, 4.5-9 at N = 64): the sigmoid-capped amplitude then has
        to reach ``f`` times the true amplitude, which it cannot; measured at N = 32, 200 groups,
        12 epochs: validation loss 136 and amplitude saturated at 1 with "nphotons", 4.85 and no
        saturation with "dose" (see :func:`ptycho_dist.models.data.starting_log_scale`).
    lr, batch_size, epochs : float, int, int
        Adam learning rate, batch size, maximum number of epochs (0: the initialized model).
    plateau_factor, plateau_patience, min_lr : float, int, float
        Reduce-on-plateau on the validation loss (training loss without a validation set).
    early_stopping_patience : int or None
        Epochs without improvement of the monitored loss before stopping; None disables it.
    schedule : {"torch", "ptychopinn"}
        The rules of both (:mod:`ptycho_dist.models.schedule`): PyTorch's ReduceLROnPlateau and
        early stopping on the validation loss, or PtychoPINN's Keras callbacks (Keras' plateau
        rule; early stopping on the training loss).
    val_fraction : float
        Share of groups held out for validation, in [0, 0.9].
    channels_last : bool
        torch: network and inputs in channels-last memory format (``model.channels_last``).
    precision : {"32", "bf16-mixed"}
        torch: float32, or bfloat16 autocast with float32 weights (``training.precision``).
    """

    n: int = 64
    gridsize: int = 1
    filters: tuple[int, ...] | None = None
    n_filters_scale: int | None = None
    init: InitName = "keras"
    loss: LossName = "poisson"
    amp_activation: ActivationName = "sigmoid"
    object_big: bool = True
    trainable_scale: bool = True
    log_scale_init: ScaleInitName = "dose"
    lr: float = 1e-3
    batch_size: int = 16
    epochs: int = 50
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-4
    early_stopping_patience: int | None = None
    schedule: ScheduleName = "torch"
    val_fraction: float = 0.1
    channels_last: bool = False
    precision: Literal["32", "bf16-mixed"] = "32"

    def __post_init__(self) -> None:
        if self.filters is not None and not isinstance(self.filters, tuple):
            object.__setattr__(self, "filters", tuple(self.filters))
        check_spec(self.spec_dict())
        if self.filters is None:
            object.__setattr__(self, "filters", default_filters(self.n, self.n_filters_scale))

    @classmethod
    def from_scenario(cls, s: Scenario) -> PinnConfig:
        """The configuration of the torch or tf arm ``s`` (fields named in :data:`SPEC_FIELDS`).

        Raises
        ------
        SpecError
            If ``s`` is an oracle arm (it has no model).
        """
        if s.model.backend not in PINN_BACKENDS:
            raise SpecError(f"model.backend: a PINN configuration needs one of {list(PINN_BACKENDS)}, "
                            f"got {s.model.backend!r} (the oracle arm has no model)")
        return cls(**{name: getattr(getattr(s, section), field)
                      for name, (section, field) in SPEC_FIELDS.items()})

    def spec_dict(self) -> dict[str, dict[str, Any]]:
        """The scenario sections of a torch arm with these settings (input of ``Scenario``).

        The other sections keep their defaults, except ``stitch.crop = None`` (the full patch),
        so that only rules about these settings can fail.
        """
        out: dict[str, dict[str, Any]] = {"model": {"backend": "torch"}, "stitch": {"crop": None}}
        for name, (section, field) in SPEC_FIELDS.items():
            out.setdefault(section, {})[field] = getattr(self, name)
        return out

    @property
    def channels(self) -> int:
        """C = gridsize**2, the number of patterns per group."""
        return self.gridsize**2

    @property
    def resolved_filters(self) -> tuple[int, ...]:
        """The encoder filters as a tuple (``filters`` is always resolved after construction)."""
        return self.filters if self.filters is not None else default_filters(self.n,
                                                                             self.n_filters_scale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); inverse of :meth:`from_dict`."""
        out = asdict(self)
        out["filters"] = list(self.resolved_filters)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PinnConfig:
        """Build from a dict as written by :meth:`to_dict` (e.g. a bundle's ``config``).

        Raises
        ------
        SpecError
            For an unknown key (with a "did you mean"), or settings the spec rejects.
        """
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise SpecError(f"model config: unknown key {key!r}{extra}")
        kwargs = dict(data)
        if kwargs.get("filters") is not None:
            kwargs["filters"] = tuple(kwargs["filters"])
        return cls(**kwargs)


def check_spec(sections: dict[str, dict[str, Any]]) -> Scenario:
    """Validate scenario sections with the spec models; the rules live there only.

    Raises
    ------
    SpecError
        ``model config: <scenario path>: <message>`` for the first violated rule.
    """
    try:
        return Scenario.model_validate(sections)
    except ValidationError as exc:
        loc, msg = describe_error(dict(exc.errors()[0]), Scenario)
        where = f"{format_loc(loc)}: " if loc else ""
        raise SpecError(f"model config: {where}{msg}") from None


_T = TypeVar("_T")


def choose(what: str, name: str, options: Mapping[str, _T]) -> _T:
    """The entry ``name`` of a backend's ``options`` (its losses, its activations): resolved once,
    eagerly, when a model or fit is built, so that both backends raise the same
    :class:`~ptycho_dist.errors.ModelError` for a bad name (never an error inside a traced graph)."""
    if name not in options:
        raise ModelError(f"{what} must be one of {sorted(options)}, got {name!r}")
    return options[name]
