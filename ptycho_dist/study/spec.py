"""Frozen, validated models of one scenario (every field has a default and a docstring).

A *scenario* is a fully resolved spec: which object, probe, scan, dose, grouping, model, training,
stitching, evaluation and resources one data point of a study uses. Models are pydantic v2, frozen,
strict (TOML types are not coerced: ``"1e9"`` is not a number) and reject unknown keys. They
round-trip through JSON: ``Scenario.from_dict(s.to_dict()) == s``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ptycho_dist.physics.scans import grid_shape

__all__ = [
    "RUNTIME_ENV_TARGETS",
    "RESERVED_ENV_VARS",
    "RuntimeEnvConfig",
    "BackendRuntimeEnv",
    "RuntimeEnvSpec",
    "PINN_BACKENDS",
    "PINN_SIZES",
    "ITERATIVE_BACKENDS",
    "ITERATIVE_ALGORITHMS",
    "IterativeSpec",
    "LossName",
    "ActivationName",
    "ScaleInitName",
    "InitName",
    "ScheduleName",
    "DEFAULT_FILTERS_SCALE",
    "encoder_blocks",
    "default_filters",
    "validation_groups",
    "rule_error",
    "SpecModel",
    "ObjectSpec",
    "ProbeSpec",
    "ScanSpec",
    "DoseSpec",
    "DataSpec",
    "GroupingSpec",
    "ModelSpec",
    "TrainingSpec",
    "StitchSpec",
    "EvaluationSpec",
    "ResourcesSpec",
    "FaultsSpec",
    "Scenario",
    "largest_arrays",
]


#: the PINN's loss, amplitude activation and initial intensity scale (model.loss, ...)
LossName = Literal["poisson", "mae"]
ActivationName = Literal["sigmoid", "softplus", "swish"]
ScaleInitName = Literal["dose", "nphotons"]
#: initial weights of the PINN's convolutions (model.init) and the schedule rules (training.schedule)
InitName = Literal["keras", "torch"]
ScheduleName = Literal["torch", "ptychopinn"]
#: model.n_filters_scale when neither it nor model.filters is given (PtychoPINN's default)
DEFAULT_FILTERS_SCALE = 2
#: backends that train a PINN; the rules of ``model``/``training`` that need one apply to them only
PINN_BACKENDS: tuple[str, ...] = ("torch", "tf")
#: backends that run an iterative reconstruction engine (pty-chi) instead of a PINN
ITERATIVE_BACKENDS: tuple[str, ...] = ("ptychi",)
#: the engines' algorithms (``iterative.algorithm``); pty-chi's LSQML, rPIE, ePIE, PIE and DM
ITERATIVE_ALGORITHMS: tuple[str, ...] = ("lsqml", "rpie", "epie", "pie", "dm")
#: patch sizes N the PINN supports: log2(N) - 3 encoder blocks end at an 8 x 8 bottleneck
PINN_SIZES: tuple[int, ...] = (32, 64, 128)


def encoder_blocks(n: int) -> int:
    """Number of encoder blocks of the PINN for patch size ``n``: ``log2(n) - 3`` (bottleneck 8 x 8).

    N = 32 -> 2 blocks, N = 64 -> 3, N = 128 -> 4; ``model.filters`` has one entry per block.
    """
    return int(round(math.log2(n))) - 3


def default_filters(n: int, n_filters_scale: int | None = None) -> tuple[int, ...]:
    """Encoder filters for patch size ``n``: ``n_filters_scale * 32 * 2**i`` for each block ``i``.

    ``n_filters_scale`` None means :data:`DEFAULT_FILTERS_SCALE` (2): N = 32 -> (64, 128);
    N = 64 -> (64, 128, 256), PtychoPINN's ``n_filters_scale * (32, 64, 128)`` at its default 2;
    N = 128 -> (64, 128, 256, 512).
    """
    scale = DEFAULT_FILTERS_SCALE if n_filters_scale is None else n_filters_scale
    return tuple(scale * 32 * 2**i for i in range(encoder_blocks(n)))


def validation_groups(n_groups: int, val_fraction: float) -> int:
    """Groups held out for validation: ``round(val_fraction * n_groups)``, at least 1 when
    ``val_fraction > 0`` (Python's round, half to even). The rest is the training split."""
    n_val = int(round(val_fraction * n_groups))
    return max(n_val, 1) if val_fraction > 0 else n_val


def rule_error(model: str, loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error of a cross-field rule, located at the field ``loc`` it blames.

    Raised from a model validator, it keeps its location (nested under the parent's field), so that
    the one-line message names the dotted field path: ``base.training.min_lr: must be at most
    training.lr = 5e-05 (...), got 0.0001``. ``message`` says what was expected; the value received
    is appended as ", got <value>" by :func:`ptycho_dist.study.messages.describe_error`.
    """
    error = PydanticCustomError("spec_rule", message.replace("{", "{{").replace("}", "}}"))
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=loc, input=value)])


def _min_groups(val_fraction: float) -> int:
    """Smallest number of groups that leaves at least one training group after the split."""
    n = 1
    while n - validation_groups(n, val_fraction) < 1:
        n += 1
    return n


def _positive_items_schema(schema: dict[str, Any]) -> None:
    """JSON Schema of ``model.filters``: its items are integers >= 1 (checked by ModelSpec)."""
    for option in schema.get("anyOf", []):
        if option.get("type") == "array":
            option["items"]["minimum"] = 1


class SpecModel(BaseModel):
    """Base of every spec model: frozen, strict, unknown keys forbidden, docstrings as descriptions."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True, allow_inf_nan=False
    )

    #: fields added after stored keys existed: left out of :meth:`to_dict` (and so of every key
    #: and scenario id) while they hold their default, so that earlier keys stay valid
    late_fields: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (tuples become lists); :attr:`late_fields` at default left out."""
        return self.model_dump(mode="json")

    @model_serializer(mode="wrap")
    def _omit_late_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in type(self).late_fields:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Validate a JSON-compatible dict (the inverse of :meth:`to_dict`)."""
        return cls.model_validate_json(json.dumps(data))


def _not_bool(value: Any) -> Any:
    """Before an integer choice is matched: ``True == 1`` in Python, so a literal choice would take
    ``gridsize = true`` as 1; a boolean is refused instead."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_for_int", "must be an integer, not a boolean")
    return value


#: a field-level check for integer choices: ``Annotated[Literal[1, 2, 3], NOT_BOOL]``
NOT_BOOL = BeforeValidator(_not_bool)


def _ordered(pair: tuple[float, float], name: str) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {list(pair)}")


class ObjectSpec(SpecModel):
    """The complex object that is scanned."""

    kind: Literal["lines", "ptychopinn_lines", "grf", "siemens_star", "file"] = "lines"
    """Generator: random blurred line segments, the PtychoPINN reference lines object (1-px segments
    on a canvas twice the size, blurred at 1, 5 and 10 px weighted 1:2:5, amplitude divided by the
    mean per-patch maximum over the scan's patches; ``amplitude_range`` and ``phase_range`` are not
    used), Gaussian random field, Siemens star, or a file."""
    size: int = Field(default=392, ge=16, le=16384)
    """Side of the square object in pixels (ignored for ``file``: the file's shape is used)."""
    amplitude_range: tuple[float, float] = (0.5, 1.0)
    """(low, high) of the object amplitude."""
    phase_range: tuple[float, float] = (0.0, 0.5)
    """(low, high) of the object phase in radians."""
    n_lines: int = Field(default=400, ge=1, le=1_000_000)
    """Number of line segments (``lines``, ``ptychopinn_lines``: the reference draws 400)."""
    lines_phase: Literal["zero", "tanh"] = "zero"
    """Phase of ``ptychopinn_lines``: zero (the reference default, amplitude only) or the
    reference's optional ``set_phi`` map pi * tanh((A - max A / 2) / (3 mean A))."""
    line_widths: tuple[float, ...] = Field(default=(0.5, 1.0, 2.0), min_length=1)
    """Gaussian blur widths in pixels among which the segments are split evenly (``lines``)."""
    correlation_length: float = Field(default=8.0, gt=0)
    """Correlation length in pixels (``grf``)."""
    n_spokes: int = Field(default=32, ge=2, le=1_000_000)
    """Number of spokes (``siemens_star``)."""
    path: str | None = None
    """File with the object (``file``): .npy, .npz (first array) or .tif/.tiff; complex or real."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        _ordered(self.amplitude_range, "amplitude_range")
        _ordered(self.phase_range, "phase_range")
        if self.amplitude_range[0] < 0:
            raise ValueError(f"amplitude_range must be non-negative, got {list(self.amplitude_range)}")
        if not all(w > 0 and math.isfinite(w) for w in self.line_widths):
            raise ValueError(f"line_widths must all be finite and > 0, got {list(self.line_widths)}")
        if (self.kind == "file") != (self.path is not None):
            raise ValueError("path is required when kind = 'file' and only then")
        return self


class ProbeSpec(SpecModel):
    """The illumination."""

    kind: Literal["disk", "gaussian", "zone_plate", "aberrated", "file", "npz"] = "disk"
    """Generator: soft disk (default), Gaussian, zone-plate-like with phase curvature, aberrated
    (experimental-like: off-centre elliptical aperture with seeded Zernike phase), a file
    (``path``, .npy/.npz), or the array ``npz_key`` of a PtychoPINN-format .npz (``path``)."""
    n: Annotated[Literal[16, 32, 64, 128, 256], NOT_BOOL] = 64
    """Probe (and diffraction pattern) side N in pixels, a power of two."""
    radius: float | None = Field(default=None, gt=0)
    """Aperture radius in pixels (``disk``, ``zone_plate``; the major semi-axis for ``aberrated``);
    None uses the generator's default (0.2 * N)."""
    sigma: float | None = Field(default=None, gt=0)
    """Gaussian width in pixels (``gaussian``); None uses the generator's default."""
    defocus: float = 0.0
    """Quadratic phase at the aperture edge in radians (``zone_plate``; added on top of the seeded
    aberrations for ``aberrated``)."""
    ellipticity: float = Field(default=0.3, ge=0, lt=1)
    """1 - minor/major semi-axis of the elliptical aperture (``aberrated``)."""
    aperture_angle: float = Field(default=0.5, allow_inf_nan=False)
    """Orientation of the aperture's major axis in radians from +x towards +y (``aberrated``)."""
    aperture_offset: tuple[float, float] = (1.5, -1.0)
    """Aperture centre minus the probe centre (N//2, N//2) as (dx, dy) in pixels (``aberrated``);
    radius + |offset| must be at most N/2 - 1."""
    zernike_rms: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    """Rms in radians over the aperture of the seeded Zernike phase (Noll 4-10: defocus,
    astigmatism, coma, trefoil) of the ``aberrated`` probe."""
    aberration_seed: int = Field(default=0, ge=0)
    """Seed of the Zernike coefficients (``aberrated``): a property of the instrument, the same for
    every replicate and study seed."""
    probe_scale: float = Field(default=4.0, gt=0)
    """Normalization P <- P / (probe_scale * mean |mask * P|), mask a disk of radius N/4."""
    normalize: bool = True
    """Apply the probe normalization above."""
    path: str | None = None
    """File with the probe: .npy/.npz, complex (N, N) (``file``); a PtychoPINN-format .npz
    (``npz``)."""
    npz_key: str = Field(default="probeGuess", min_length=1)
    """Name of the complex (N, N) probe array in the .npz file (``npz``); PtychoPINN's is
    ``probeGuess``."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.kind in ("file", "npz")) != (self.path is not None):
            raise ValueError("path is required when kind = 'file' or 'npz' and only then")
        if self.kind == "aberrated":
            radius = 0.2 * self.n if self.radius is None else self.radius
            reach = radius + math.hypot(*self.aperture_offset)
            if not math.isfinite(reach) or reach > self.n / 2 - 1:
                raise rule_error("ProbeSpec", ("aperture_offset",),
                                 f"radius + |offset| = {reach:g} must be at most N/2 - 1 = "
                                 f"{self.n / 2 - 1:g} (the aperture must stay inside the "
                                 f"{self.n}x{self.n} probe)", list(self.aperture_offset))
        return self


class ScanSpec(SpecModel):
    """Scan positions: where the probe centre sits on the object."""

    kind: Literal["grid", "random", "fermat"] = "grid"
    """Raster grid, uniform random, or Fermat spiral."""
    step: float = Field(default=8.0, gt=0)
    """Grid step / spiral step in pixels."""
    jitter: float = Field(default=0.0, ge=0)
    """Standard deviation of Gaussian jitter added to grid positions, pixels."""
    n_positions: int | None = Field(default=None, ge=1)
    """Number of positions (required for random and fermat; for grid, keep the first n)."""
    margin: float = Field(default=0.0, ge=0)
    """Extra distance in pixels kept between every patch and the object edge."""
    cluster: Annotated[Literal[1, 2, 3], NOT_BOOL] = 1
    """Grid scans: positions per side of each grid point. 1 is the plain raster; g > 1 turns every
    grid point (spacing ``step``, then the stride between clusters) into g x g positions
    ``inner_offset`` apart around it, stored consecutively in row-major layout order (PtychoPINN's
    grid simulation; the groups of ``grouping.mode = "grid"``). Jitter moves whole clusters."""
    inner_offset: float = Field(default=4.0, gt=0)
    """Distance in pixels between neighbouring positions of a cluster (``cluster`` > 1; PtychoPINN's
    ``offset``, default 4: members at +/- 2 px around the centre for cluster 2)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind in ("random", "fermat") and self.n_positions is None:
            raise ValueError(f"n_positions is required for a {self.kind} scan")
        c = self.cluster**2
        if self.cluster > 1 and self.kind != "grid":
            raise rule_error("ScanSpec", ("cluster",),
                             f"must be 1 for a {self.kind} scan (clusters sit on a raster grid: "
                             "scan.kind = 'grid')", self.cluster)
        if self.cluster > 1 and self.n_positions is not None and self.n_positions % c:
            raise rule_error("ScanSpec", ("n_positions",),
                             f"must be a multiple of cluster**2 = {c} with scan.cluster = {self.cluster} "
                             "(the first n positions keep whole clusters)", self.n_positions)
        return self


class DoseSpec(SpecModel):
    """Photon dose and noise."""

    nphotons: float = Field(default=1e9, gt=0)
    """Mean total photon count per diffraction pattern."""
    noise: bool = True
    """Draw Poisson counts; False stores the noise-free expected counts."""


class GroupingSpec(SpecModel):
    """Grouping of scan positions into solution regions."""

    mode: Literal["neighbors", "grid"] = "neighbors"
    """``neighbors``: a seed plus members drawn among its K nearest neighbours (channel order
    without spatial meaning). ``grid``: the clusters of a clustered grid scan (scan.kind = 'grid',
    scan.cluster = gridsize), members in the fixed row-major layout, so channel c always means the
    same position (PtychoPINN's grid simulation)."""
    gridsize: Annotated[Literal[1, 2, 3], NOT_BOOL] = 1
    """Groups hold gridsize**2 positions; 1 means every position is its own group."""
    k_neighbors: int | None = Field(default=None, ge=1)
    """Members are drawn among the K nearest neighbours of a seed position (K >= gridsize**2 - 1);
    None means max(6, gridsize**2 - 1): 6 for gridsize 1 and 2 (PHYSICS.md), 8 for gridsize 3.
    Neighbour mode only (must stay None in grid mode)."""
    n_groups: int | None = Field(default=None, ge=1)
    """Number of groups; None means one per scan position (capped at the number of distinct groups).
    Grid mode: None keeps every cluster, fewer keeps a seeded random subset in scan order."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mode == "grid" and self.k_neighbors is not None:
            raise rule_error("GroupingSpec", ("k_neighbors",),
                             "must be unset with grouping.mode = 'grid' (the groups are the scan's "
                             "clusters; K applies to mode 'neighbors')", self.k_neighbors)
        need = self.gridsize**2 - 1
        if self.k_neighbors is not None and self.k_neighbors < need:
            raise rule_error("GroupingSpec", ("k_neighbors",),
                             f"must be at least gridsize**2 - 1 = {need} for gridsize {self.gridsize} "
                             f"(each group draws {need} neighbours of its seed position)",
                             self.k_neighbors)
        return self

    @property
    def resolved_k(self) -> int:
        """The K actually used (see ``k_neighbors``)."""
        return self.k_neighbors if self.k_neighbors is not None else max(6, self.gridsize**2 - 1)


class ModelSpec(SpecModel):
    """The reconstruction arm: the oracle (true patches, no model) or a PINN backend."""

    backend: Literal["oracle", "torch", "tf", "ptychi"] = "oracle"
    """``oracle`` stitches the true patches (checks stitching and metrics); torch/tf train a PINN;
    ``ptychi`` reconstructs the object iteratively with pty-chi (settings in ``iterative``)."""
    filters: tuple[int, ...] | None = Field(default=None, min_length=1,
                                            json_schema_extra=_positive_items_schema)
    """Encoder filters, one positive integer per encoder block (log2(probe.n) - 3 blocks: 2 at
    N = 32, 3 at N = 64, 4 at N = 128); None uses n_filters_scale * 32 * 2**i, i.e. (64, 128, 256)
    at N = 64 with the default scale 2. Given together with n_filters_scale, the two must agree."""
    n_filters_scale: int | None = Field(default=None, ge=1)
    """Width scale of the network, PtychoPINN's n_filters_scale: encoder filters
    n_filters_scale * 32 * 2**i (at N = 64: n_filters_scale * (32, 64, 128), exactly the reference's
    encoder; decoder (64, 32) * n_filters_scale). None means 2 (the reference's default) unless
    model.filters is given; 1 is the half-width network."""
    init: InitName = "keras"
    """Initial convolution weights: "keras" (default; PtychoPINN's Keras defaults: glorot-uniform
    kernels U(-l, l), l = sqrt(6 / (fan_in + fan_out)), fan = 9 * channels, zero biases) or
    "torch" (PyTorch's Conv2d default: kernels and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""
    loss: LossName = "poisson"
    """Poisson negative log-likelihood of counts (default) or MAE on amplitudes."""
    trainable_scale: bool = True
    """Train the intensity scale log_scale."""
    log_scale_init: ScaleInitName = "dose"
    """Start of log_scale: log(s), the data's dose scale (default: the object is learned in its own
    units), or "nphotons": log(sqrt(nphotons) / (N/2)), the PtychoPINN convention (compatibility;
    with this project's probe normalization it makes the sigmoid amplitude saturate)."""
    amp_activation: ActivationName = "sigmoid"
    """Activation of the amplitude decoder's output."""
    object_big: bool = True
    """gridsize > 1: apply the overlap constraint (the group's patches averaged on a shared canvas)."""
    channels_last: bool = False
    """torch backend: keep the network and its inputs in channels-last memory format (faster
    convolutions on recent GPUs; same results within float tolerance). Not available for tf."""

    late_fields: ClassVar[tuple[str, ...]] = ("channels_last",)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for i, f in enumerate(self.filters or ()):
            if f < 1:
                raise rule_error("ModelSpec", ("filters", i), "must be >= 1 (filters of an encoder block)", f)
        return self


class TrainingSpec(SpecModel):
    """Optimizer and schedule."""

    epochs: int = Field(default=50, ge=0, le=100_000)
    """Number of epochs; 0 keeps the initialized, untrained network (a baseline arm)."""
    batch_size: int = Field(default=16, ge=1, le=1_000_000)
    """Groups per batch."""
    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate."""
    plateau_factor: float = Field(default=0.5, gt=0, lt=1)
    """Reduce-on-plateau factor."""
    plateau_patience: int = Field(default=2, ge=0, le=100_000)
    """Reduce-on-plateau patience in epochs."""
    min_lr: float = Field(default=1e-4, ge=0)
    """Reduce-on-plateau floor (at most ``lr`` for a torch/tf arm)."""
    early_stopping_patience: int | None = Field(default=None, ge=0)
    """Stop when the monitored loss has not improved for this many epochs (0: at the first epoch
    without improvement); None disables. Monitored: the validation loss (the training loss without
    a validation split) with schedule "torch", the training loss with schedule "ptychopinn"."""
    schedule: ScheduleName = "torch"
    """Rules of the reduce-on-plateau and early stopping (docs/weight_layout.md, section 5):
    "torch" (PyTorch's ReduceLROnPlateau: relative threshold 1e-4, reduce after more than
    plateau_patience epochs without improvement; early stopping on the validation loss) or
    "ptychopinn" (the reference's Keras callbacks: absolute threshold 1e-4, reduce after
    plateau_patience epochs without improvement, on the validation loss; early stopping on the
    training loss). The reference's values: lr 1e-3, plateau_factor 0.5, plateau_patience 2,
    min_lr 1e-4, early_stopping_patience 3, val_fraction 0.05."""
    val_fraction: float = Field(default=0.1, ge=0, le=0.9)
    """Share of groups held out for validation (round(val_fraction * groups), at least one when
    > 0); the training split must keep at least one group."""
    n_train: int | None = Field(default=None, ge=1)
    """Number of groups used for training (training-set size); None uses all."""
    seed: int = Field(default=0, ge=0)
    """Training-seed index: another value draws other initial weights, validation split and
    shuffling on the same simulated and grouped data (an axis over it measures seed spread)."""
    precision: Literal["32", "bf16-mixed"] = "32"
    """Numeric precision of training and inference (torch backend): "32" (float32, default) or
    "bf16-mixed" (bfloat16 autocast, float32 weights; Lightning's precision setting). Not available
    for tf."""

    late_fields: ClassVar[tuple[str, ...]] = ("precision",)


class IterativeSpec(SpecModel):
    """The iterative arm (``model.backend = "ptychi"``): a pty-chi reconstruction of the whole object
    from the counts and the scan positions (docs/conventions.md, "The iterative arm")."""

    algorithm: Literal["lsqml", "rpie", "epie", "pie", "dm"] = "lsqml"
    """pty-chi's engine: LSQML (least-squares maximum likelihood, Odstrcil et al. 2018), rPIE, ePIE,
    PIE (Maiden et al. 2017) or DM (difference map, Thibault et al. 2009)."""
    iterations: int = Field(default=100, ge=1)
    """Iterations (pty-chi's epochs: every position is visited once per iteration)."""
    batch_size: int | None = Field(default=None, ge=1)
    """Positions per update (LSQML, PIE family); None: 32, capped at the number of positions. DM
    updates all positions at once and takes none."""
    refine_probe: bool = False
    """Refine the probe together with the object (off: the starting probe is kept fixed)."""
    probe_init: Literal["true", "perturbed", "file"] = "true"
    """Starting probe: the data's true probe, the true probe with a smooth random error of relative
    size ``probe_error`` (seeded), or the complex (N, N) array of ``probe_path``."""
    probe_error: float = Field(default=0.3, gt=0, lt=1)
    """Relative error of the perturbed starting probe (``probe_init = "perturbed"``) after the best
    complex scalar, min_c ||c P0 - P|| / ||P|| (the ``iterative_probe_error`` diagnostic's measure)."""
    probe_path: str | None = None
    """.npy/.npz with the starting probe, complex (N, N) (``probe_init = "file"``), in the data's
    normalization (the arm scales it by s/N like the true probe)."""
    probe_modes: int = Field(default=1, ge=1, le=8)
    """Incoherent probe modes; extra modes start as weak orthogonalized copies (pty-chi's
    orthogonalization) and need ``refine_probe``."""
    position_correction: bool = False
    """Refine the scan positions (pty-chi's gradient position correction)."""
    position_error: float = Field(default=0.0, ge=0)
    """Standard deviation in pixels of a seeded Gaussian error added to the positions the engine
    starts from (the data were simulated at the true ones): a test of position correction."""
    noise_model: Literal["gaussian", "poisson"] = "gaussian"
    """Likelihood of LSQML: Gaussian on the amplitudes or Poisson on the counts (the PIE family and
    DM project the measured amplitudes, which is the Gaussian model)."""
    step_size: float | None = Field(default=None, gt=0)
    """Object step: LSQML's scaler of the optimal step (pty-chi's default 0.9), the PIE family's
    alpha (None: 1.0 for ePIE and rPIE, the full step, and pty-chi's 0.1 for PIE). DM takes none."""
    subpixel: Literal["fourier", "bilinear"] = "fourier"
    """How pty-chi applies the sub-pixel part of a position: the probe is shifted by a Fourier (or
    bilinear) shift against the object patch at the rounded position."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.probe_init == "file") != (self.probe_path is not None):
            raise rule_error("IterativeSpec", ("probe_path",),
                             "is required with probe_init = 'file' and only then", self.probe_path)
        if self.noise_model == "poisson" and self.algorithm != "lsqml":
            raise rule_error("IterativeSpec", ("noise_model",),
                             f"must be 'gaussian' with algorithm = {self.algorithm!r} (pty-chi's Poisson "
                             "likelihood is LSQML's; the PIE family and DM project measured amplitudes)",
                             self.noise_model)
        if self.algorithm == "dm":
            for name in ("batch_size", "step_size"):
                if getattr(self, name) is not None:
                    raise rule_error("IterativeSpec", (name,),
                                     "must be unset with algorithm = 'dm' (pty-chi's difference map "
                                     "updates every position at once, with no step size)", getattr(self, name))
        if self.probe_modes > 1 and not self.refine_probe:
            raise rule_error("IterativeSpec", ("probe_modes",),
                             "must be 1 unless refine_probe = true (extra modes start as guesses)",
                             self.probe_modes)
        return self


class StitchSpec(SpecModel):
    """Reassembly of patches onto a canvas."""

    crop: int | None = Field(default=20, ge=1)
    """Central crop M of each patch; None uses the full patch."""
    frame: Literal["object", "centered"] = "object"
    """``object``: the object's pixel grid, never clipped; ``centered``: the older code's layout, centred on
    the mean position and sized to hold every patch (the clipping fixed size is faults.legacy_canvas)."""
    weights: Literal["uniform", "probe"] = "uniform"
    """Per-pixel weights of a patch: uniform or probe intensity."""


class EvaluationSpec(SpecModel):
    """How a reconstruction is compared with the truth (the same for every arm)."""

    border: int = Field(default=4, ge=0)
    """Pixels removed from the edge of the covered region."""
    illumination_threshold: float | None = Field(default=None, gt=0, le=1)
    """Keep only pixels whose summed illumination is at least this fraction of its maximum."""
    registration: bool = True
    """Sub-pixel registration (phase cross-correlation, upsample 50) before the metrics."""
    phase_ramp: bool = False
    """Remove a linear phase ramp before the phase metrics."""


class ResourcesSpec(SpecModel):
    """Ray resources of the stages of this scenario."""

    num_cpus: float = Field(default=1.0, gt=0, le=4096)
    """CPUs per CPU stage task."""
    num_gpus: float | None = Field(default=None, ge=0, le=64)
    """GPUs per train/infer task; None: 1 when the cluster has GPUs, else 0 (fractions allowed)."""
    train_workers: int = Field(default=1, ge=1, le=4096)
    """Ray Train workers for one training run (>1 uses data-parallel training)."""
    max_retries: int = Field(default=3, ge=0, le=100)
    """Ray retries of a task after a system failure (a dead worker or node)."""
    memory_gb: float = Field(default=16.0, gt=0, le=1_000_000)
    """Memory budget of one scenario's task, GiB: validation rejects a scenario whose largest array
    (estimated from the spec: the diffraction stack, the grouped patches or the object) would not
    fit in it. Raise it for machines with more memory; it is not a Ray resource request."""


class DataSpec(SpecModel):
    """Where the diffraction data come from: simulated from the object, probe and scan (default), or
    measured, from a PtychoPINN-format NPZ file."""

    source: Literal["simulate", "npz"] = "simulate"
    """``simulate``: the object, probe, scan and dose sections make the data; ``npz``: the file's
    diffraction and positions replace the simulation (its probe replaces ``probe``)."""
    path: str | None = None
    """PtychoPINN-format .npz (``source = "npz"``): ``diffraction`` (or the older ``diff3d``), float
    (n, N, N); ``xcoords``, ``ycoords`` (n,), probe centres in object pixels; ``probeGuess`` complex
    (N, N); ``objectGuess`` complex (H, W), the truth the arms are evaluated against, when present."""
    diffraction: Literal["amplitude", "intensity"] = "amplitude"
    """What the file's diffraction array holds: amplitudes (the PtychoPINN data contract) or
    intensities. Either is rescaled to a mean total of ``dose.nphotons`` counts per pattern."""
    n_patterns: int | None = Field(default=None, ge=1)
    """Use the file's first n patterns; None uses all."""
    interpolation: Literal["bilinear", "fourier"] = "bilinear"
    """How the simulation samples the object at sub-pixel positions (``physics.extract_patches``):
    bilinear (the default, PHYSICS.md) or a band-limited Fourier shift. An iterative arm on a scan
    with sub-pixel positions (random, fermat, jittered) should use "fourier": pty-chi shifts the
    probe in Fourier space, and bilinear data differ from that model (docs/conventions.md)."""
    train_objects: int = Field(default=1, ge=1, le=64)
    """Training objects: independent draws of the object, each with its own scan (``scan``), all
    used to train a model arm (the reference's grid-lines benchmark trains on 2)."""
    test_objects: int = Field(default=0, ge=0, le=64)
    """Held-out test objects, other draws with their own scan (``test_scan``): the arms are
    evaluated on them (metrics target ``stitched``/``patch``), and on the first training object under
    the targets ``train_stitched``/``train_patch``. 0 evaluates on the training object, as before."""
    test_scan: ScanSpec | None = None
    """The scan of the test objects; None uses ``scan`` (the reference tests at a coarser stride)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.source == "npz") != (self.path is not None):
            raise ValueError("path is required when source = 'npz' and only then")
        if self.source == "npz" and (self.train_objects != 1 or self.test_objects != 0):
            raise ValueError("a measured dataset (source = 'npz') is one training object: train_objects = 1 "
                             f"and test_objects = 0, got {self.train_objects} and {self.test_objects}")
        if self.test_scan is not None and self.test_objects == 0:
            raise ValueError("test_scan is set but test_objects = 0: no test object would use it")
        return self


class FaultsSpec(SpecModel):
    """Fault switches: each reproduces one failure of the older code on purpose, in one arm, so that a
    study can show that its diagnostic catches it (docs/faults.md lists them with the diagnostic).
    Every switch is off by default and is a column of the ``scenarios`` table (``faults_*``); arms
    that differ only in their faults are still compared for parity."""

    collapse_offsets: bool = False
    """Stitch every patch at one position (the first group's centre), as when the offsets were
    broadcast or lost between inference and reassembly: the stitched object collapses to one patch
    (one distinct stitched position, a canvas extent of one patch)."""
    legacy_canvas: bool = False
    """Stitch onto the older fixed padded canvas, side N + (gridsize - 1) * 4 + 10 centred on the mean
    position, and drop what falls outside it: a scan wider than that canvas loses most of its
    signal (the ``canvas_fixed_energy_share`` diagnostic says how much such a canvas keeps,
    ``stitch_kept_weight_share`` what the stitch kept)."""
    relative_sign: Annotated[Literal[1, -1], NOT_BOOL] = 1
    """Sign applied to the relative coordinates (member - centre) this arm's model receives: +1 is
    this project's convention; -1 reproduces the older code's negated offsets (a sign fork between
    two backends, caught by forward parity at gridsize > 1)."""
    model_probe: Literal["data", "unnormalized", "l2"] = "data"
    """The probe this arm's model uses in its forward model: the data's probe (default, normalized as
    ``probe`` says); "unnormalized": the probe before the normalization (the arm that skipped it);
    "l2": the probe normalized by another formula (unit energy, P / sqrt(sum |P|^2)), as when two
    code paths computed the normalization differently."""
    object_big_off: bool = False
    """Run this arm's model without the overlap constraint whatever ``model.object_big`` says (the
    older arm whose ``object_big`` defaulted to off; matters at gridsize > 1)."""
    infer_ignores_scale: bool = False
    """Inference ignores the bundle's learned intensity scale and input normalization and uses the
    starting values instead (a scale not carried from training to inference: a constant amplitude
    bias, exposed by the best-fit scalar ``ls_scale`` of the ``bias`` table)."""
    patch_only_evaluation: bool = False
    """Evaluate only at patch level (the older scripts' metrics on predicted vs true patches): no
    ``stitched`` metric rows, so a broken reassembly goes unseen (the ``evaluated_stitched``
    diagnostic is 0)."""

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the switches that differ from their default, in field order."""
        return tuple(name for name, field in type(self).model_fields.items()
                     if getattr(self, name) != field.default)


class Scenario(SpecModel):
    """One fully resolved data point of a study."""

    object: ObjectSpec = ObjectSpec()
    """The object."""
    probe: ProbeSpec = ProbeSpec()
    """The probe."""
    scan: ScanSpec = ScanSpec()
    """The scan."""
    dose: DoseSpec = DoseSpec()
    """The dose."""
    data: DataSpec = DataSpec()
    """Simulated (default) or measured data from a file."""
    grouping: GroupingSpec = GroupingSpec()
    """The grouping."""
    model: ModelSpec = ModelSpec()
    """The arm: oracle, torch or tf."""
    training: TrainingSpec = TrainingSpec()
    """Training settings (ignored by the oracle arm)."""
    iterative: IterativeSpec = IterativeSpec()
    """The iterative arm's settings (``model.backend = "ptychi"``; ignored by the other arms)."""
    stitch: StitchSpec = StitchSpec()
    """Stitching."""
    evaluation: EvaluationSpec = EvaluationSpec()
    """Evaluation."""
    resources: ResourcesSpec = ResourcesSpec()
    """Resources."""
    faults: FaultsSpec = FaultsSpec()
    """Fault switches that reproduce the older code's failures, for studies (all off by default)."""
    seed: int = Field(default=0, ge=0)
    """Study seed; every random draw derives its seed from it and the stage key."""
    replicate: int = Field(default=0, ge=0)
    """Replicate index (a different simulation draw for the same parameters)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.object.kind != "file":
            sc = self.scan
            need = self.probe.n + 2 * sc.margin + (sc.cluster - 1) * sc.inner_offset
            what = "probe.n + 2*scan.margin" + (
                " + (scan.cluster - 1)*scan.inner_offset" if sc.cluster > 1 else "")
            if self.object.size < need:
                raise rule_error("Scenario", ("object", "size"), f"must be at least {what} = {need:g}",
                                 self.object.size)
        if self.grouping.mode == "grid":
            _check_grid_mode(self)
        if self.stitch.crop is not None and self.stitch.crop > self.probe.n:
            raise rule_error("Scenario", ("stitch", "crop"), f"must be at most probe.n = {self.probe.n}",
                             self.stitch.crop)
        c = self.grouping.gridsize**2
        if self.scan.n_positions is not None and self.scan.n_positions < c:
            raise rule_error("Scenario", ("scan", "n_positions"),
                             f"must be at least gridsize**2 = {c} (the members of one group) with "
                             f"grouping.gridsize = {self.grouping.gridsize}", self.scan.n_positions)
        g, n = self.grouping, self.scan.n_positions
        if g.mode == "grid":
            possible = _grid_groups_possible(self)
            if g.n_groups is not None and possible is not None and g.n_groups > possible[0]:
                raise rule_error("Scenario", ("grouping", "n_groups"),
                                 f"must be at most {possible[0]}, the {possible[1]}", g.n_groups)
        elif g.n_groups is not None and n is not None and g.n_groups > _distinct_groups(n, g.gridsize):
            raise rule_error("Scenario", ("grouping", "n_groups"),
                             f"must be at most C({n}, {c}) = {_distinct_groups(n, g.gridsize)}, the "
                             f"distinct groups of {c} among scan.n_positions = {n} positions", g.n_groups)
        if self.model.backend in PINN_BACKENDS:
            _check_pinn(self)
        if self.model.backend != "torch":
            if self.model.channels_last:
                raise rule_error("Scenario", ("model", "channels_last"), "applies to model.backend = "
                                 f"'torch' only, got backend {self.model.backend!r}", True)
            if self.training.precision != "32":
                raise rule_error("Scenario", ("training", "precision"), "'bf16-mixed' applies to "
                                 f"model.backend = 'torch' only, got backend {self.model.backend!r}",
                                 self.training.precision)
        if self.model.backend in ITERATIVE_BACKENDS:
            _check_iterative(self)
        _check_jitter(self)
        _check_memory(self)
        return self


def _scan_box_side(s: Scenario, scan: ScanSpec) -> float | None:
    """Smallest side of the box the scan positions move in (None for a file object)."""
    if s.object.kind == "file":
        return None
    return s.object.size - s.probe.n - 2 * scan.margin - (scan.cluster - 1) * scan.inner_offset


def _check_jitter(s: Scenario) -> None:
    """Jitter is a truncated Gaussian redrawn inside the scan box: a std above the box's side would
    redraw (nearly) forever, so it is refused here rather than at simulation time."""
    scans = [("scan",), ("data", "test_scan")] if s.data.test_scan is not None else [("scan",)]
    for loc in scans:
        scan = s.scan if loc == ("scan",) else s.data.test_scan
        assert scan is not None
        box = _scan_box_side(s, scan)
        if scan.jitter > 0 and box is not None and scan.jitter > max(box, 0.0):
            raise rule_error("Scenario", (*loc, "jitter"),
                             f"must be at most the scan box side object.size - probe.n - 2*margin"
                             f"{' - (cluster - 1)*inner_offset' if scan.cluster > 1 else ''} = {box:g} px "
                             "(positions are redrawn inside the box)", scan.jitter)


def _n_scan_positions(s: Scenario, scan: ScanSpec) -> int | None:
    """Positions the scan makes (None when a file decides: a file object or measured data)."""
    if s.data.source == "npz":
        return s.data.n_patterns
    if scan.kind != "grid":
        return scan.n_positions
    if s.object.kind == "file":
        return scan.n_positions
    ny, nx = grid_shape((s.object.size, s.object.size), s.probe.n, step=scan.step, cluster=scan.cluster,
                        inner_offset=scan.inner_offset, margin=scan.margin)
    made = ny * nx * scan.cluster**2
    return made if scan.n_positions is None else min(made, scan.n_positions)


def largest_arrays(s: Scenario) -> list[tuple[int, tuple[str, ...], str]]:
    """Estimated bytes of the largest arrays one stage of scenario ``s`` holds at once, each with the
    field that sets its size and what it is (used against ``resources.memory_gb``).

    - simulation: counts float32 and true patches complex64 per position: ``P * N**2 * 12`` bytes;
    - grouped arrays (training inputs float32 and predicted patches complex64 + amplitudes float32
      for every group of every training object): ``objects * G * C * N**2 * 16`` bytes;
    - the object and its stitched canvas, complex64: ``2 * size**2 * 8`` bytes.

    ``P`` is the scan's positions, ``G`` the groups (``grouping.n_groups``, else one per position),
    ``C = gridsize**2``. Unknown sizes (read from a file) are left out.
    """
    n2 = s.probe.n**2
    out: list[tuple[int, tuple[str, ...], str]] = []
    c = s.grouping.gridsize**2
    scans = [("scan",), ("data", "test_scan")] if s.data.test_scan is not None else [("scan",)]
    for loc in scans:
        scan = s.scan if loc == ("scan",) else s.data.test_scan
        assert scan is not None
        p = _n_scan_positions(s, scan)
        if p is None:
            continue
        field = (*loc, "n_positions") if scan.n_positions is not None or scan.kind != "grid" else (*loc, "step")
        if s.data.source == "npz":
            field = ("data", "n_patterns")
        out.append((p * n2 * 12, field, f"the simulated data: {p} patterns of {s.probe.n} x {s.probe.n}"))
        if loc == ("scan",):
            groups = s.grouping.n_groups if s.grouping.n_groups is not None else p // (c if s.grouping.mode == "grid" else 1)
            gfield = ("grouping", "n_groups") if s.grouping.n_groups is not None else field
            objects = s.data.train_objects
            out.append((objects * groups * c * n2 * 16, gfield,
                        f"the grouped arrays: {objects} x {groups} groups of {c} patches of {s.probe.n} x {s.probe.n}"))
    if s.object.kind != "file":
        out.append((2 * s.object.size**2 * 8, ("object", "size"),
                    f"the object and its canvas: {s.object.size} x {s.object.size} complex64"))
    return out


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def _check_memory(s: Scenario) -> None:
    budget = s.resources.memory_gb * 2**30
    for size, loc, what in largest_arrays(s):
        if size > budget:
            value: Any = s
            for part in loc:
                value = getattr(value, part)
            raise rule_error("Scenario", loc,
                             f"makes {what}, about {_bytes(size)}, over the memory budget "
                             f"resources.memory_gb = {s.resources.memory_gb:g} GiB (raise it for a "
                             "machine that has the memory)", value)


#: fault switches of the stitch and of the PINN, which the iterative arm has not
_ITERATIVE_NO_FAULTS = ("collapse_offsets", "legacy_canvas", "relative_sign", "model_probe", "object_big_off",
                        "infer_ignores_scale")


def _check_iterative(s: Scenario) -> None:
    """The rules the iterative arm adds: settings that need what pty-chi or its inputs provide."""
    it = s.iterative
    for name in _ITERATIVE_NO_FAULTS:
        if name in s.faults.active:
            raise rule_error("Scenario", ("faults", name),
                             f"must stay off with model.backend = {s.model.backend!r} (the iterative arm has "
                             "no stitch and no PINN; faults.patch_only_evaluation applies)", getattr(s.faults, name))
    if it.probe_init == "perturbed" and not it.refine_probe:
        raise rule_error("Scenario", ("iterative", "refine_probe"),
                         "must be true with iterative.probe_init = 'perturbed' (a wrong probe kept fixed "
                         "measures nothing but the error put in)", it.refine_probe)


def _check_pinn(s: Scenario) -> None:
    """The rules a torch/tf arm adds: what the PINN and its training accept (the oracle arm uses none
    of these settings, so they are not checked for it)."""
    arm, n, filters, t = s.model.backend, s.probe.n, s.model.filters, s.training
    if n not in PINN_SIZES:
        raise rule_error("Scenario", ("probe", "n"),
                         f"must be one of {list(PINN_SIZES)} for a PINN arm (model.backend = {arm!r}: "
                         "log2(N) - 3 encoder blocks down to an 8 x 8 bottleneck)", n)
    if filters is not None and len(filters) != encoder_blocks(n):
        raise rule_error("Scenario", ("model", "filters"),
                         f"must have {encoder_blocks(n)} entries for probe.n = {n} (one per encoder "
                         "block, log2(N) - 3)", list(filters))
    scale = s.model.n_filters_scale
    if filters is not None and scale is not None and tuple(filters) != default_filters(n, scale):
        raise rule_error("Scenario", ("model", "n_filters_scale"),
                         f"contradicts model.filters = {list(filters)}: n_filters_scale = {scale} "
                         f"means filters {list(default_filters(n, scale))} at probe.n = {n} (give "
                         "one of the two, or values that agree)", scale)
    if t.min_lr > t.lr:
        raise rule_error("Scenario", ("training", "min_lr"),
                         f"must be at most training.lr = {t.lr:g} (the reduce-on-plateau floor)", t.min_lr)
    _check_split(s)


def _check_grid_mode(s: Scenario) -> None:
    """grouping.mode = 'grid' takes the clusters of a clustered raster scan as its groups."""
    if s.scan.kind != "grid":
        raise rule_error("Scenario", ("scan", "kind"),
                         "must be 'grid' with grouping.mode = 'grid' (the groups are the clusters of a "
                         "raster scan)", s.scan.kind)
    if s.grouping.gridsize != s.scan.cluster:
        raise rule_error("Scenario", ("grouping", "gridsize"),
                         f"must equal scan.cluster = {s.scan.cluster} with grouping.mode = 'grid' (a "
                         "group is one cluster of the scan; set scan.cluster to the same value)",
                         s.grouping.gridsize)


def _grid_groups_possible(s: Scenario) -> tuple[int, str] | None:
    """Clusters of a grid-mode scan (the most groups it makes) and where the number comes from; None
    when it depends on a file's shape."""
    sc, c = s.scan, s.scan.cluster**2
    if sc.n_positions is not None:
        return sc.n_positions // c, f"clusters of {c} among scan.n_positions = {sc.n_positions} positions"
    if s.object.kind == "file":
        return None
    ny, nx = grid_shape((s.object.size, s.object.size), s.probe.n, step=sc.step, cluster=sc.cluster,
                        inner_offset=sc.inner_offset, margin=sc.margin)
    return ny * nx, (f"{ny} x {nx} clusters of the grid (object.size = {s.object.size}, probe.n = "
                     f"{s.probe.n}, scan.step = {sc.step:g})")


def _distinct_groups(n_positions: int, gridsize: int) -> int:
    """Most distinct groups (sets of C = gridsize**2 positions) that ``n_positions`` allow."""
    return math.comb(n_positions, gridsize**2)


def _check_split(s: Scenario) -> None:
    """The training split keeps a group. The arm trains on at most ``training.n_train`` groups, and
    the grouping makes exactly ``grouping.n_groups`` (when set) or at most one per scan position and
    at most C(n_positions, C) distinct sets (``scan.n_positions``), or in grid mode one per cluster of
    the scan; the fewest is checked."""
    bounds: list[tuple[tuple[str | int, ...], int | float, int, str]] = []   # (loc, value, groups, how)
    if s.training.n_train is not None:
        bounds.append((("training", "n_train"), s.training.n_train, s.training.n_train, ""))
    if s.grouping.n_groups is not None:
        bounds.append((("grouping", "n_groups"), s.grouping.n_groups, s.grouping.n_groups, ""))
    elif s.grouping.mode == "grid":
        if (possible := _grid_groups_possible(s)) is not None:
            where = ("scan", "n_positions") if s.scan.n_positions is not None else ("scan", "step")
            value = s.scan.n_positions if s.scan.n_positions is not None else s.scan.step
            bounds.append((where, value, possible[0], f"the scan makes {possible[0]} group(s), the {possible[1]}; "))
    elif s.scan.n_positions is not None:
        n, c = s.scan.n_positions, s.grouping.gridsize**2
        made = min(n, _distinct_groups(n, s.grouping.gridsize))
        bounds.append((("scan", "n_positions"), n, made,
                       f"{n} positions make at most {made} group(s) of {c}; "))
    if not bounds:
        return
    loc, value, groups, how = min(bounds, key=lambda item: item[2])
    vf = s.training.val_fraction
    need = _min_groups(vf)
    if groups < need:
        raise rule_error("Scenario", loc,
                         f"must allow at least {need} groups with training.val_fraction = {vf:g} "
                         f"({how}the validation split takes {validation_groups(groups, vf)} of {groups} "
                         "and leaves none for training)", value)


#: where a runtime environment applies: the model stages of one backend, or ``base`` (the CPU stages
#: -- simulate, group, stitch, evaluate, parity -- and the oracle arm's)
RUNTIME_ENV_TARGETS: tuple[str, ...] = ("base", "torch", "tf", "ptychi")

#: environment variables the driver sets on model-stage workers itself (ptycho_dist.orchestration.tasks)
RESERVED_ENV_VARS: frozenset[str] = frozenset({"PTYCHO_DIST_BACKEND"})


class RuntimeEnvConfig(SpecModel):
    """Ray's ``runtime_env["config"]``: how the environment is set up."""

    setup_timeout_seconds: int = Field(default=600, ge=-1)
    """Seconds Ray waits for the environment to be set up on a node (-1: no limit; 0 is refused)."""
    eager_install: bool = True
    """Install the environment when the job starts rather than at its first task."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.setup_timeout_seconds == 0:
            raise ValueError("setup_timeout_seconds must be greater than zero or equal to -1, got 0")
        return self


class BackendRuntimeEnv(SpecModel):
    """A Ray ``runtime_env`` for the tasks of one backend: the fields Ray accepts at task level that a
    study needs. How a task runs, never what it computes: it is not part of any stage key."""

    env_vars: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    """Environment variables of the worker processes (names: letters, digits, '_'; values: strings)."""
    pip: tuple[Annotated[str, Field(min_length=1)], ...] | None = None
    """Requirements pip installs into a virtualenv on top of the worker's Python (Ray's ``pip``)."""
    uv: tuple[Annotated[str, Field(min_length=1)], ...] | None = None
    """The same with uv (Ray's ``uv``)."""
    conda: str | None = Field(default=None, min_length=1)
    """The name of a conda environment present on every node, or an environment.yml path."""
    py_executable: str | None = Field(default=None, min_length=1)
    """The Python that runs the worker, e.g. the interpreter of a per-backend virtualenv on every node."""
    image_uri: str | None = Field(default=None, min_length=1)
    """A container image the worker runs in (Ray's ``image_uri``; only with ``env_vars`` and ``config``)."""
    config: RuntimeEnvConfig | None = None
    """Set-up timeout and eager installation."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        managers = [name for name in ("pip", "uv", "conda") if getattr(self, name) is not None]
        if len(managers) > 1:
            raise ValueError(f"only one of pip, uv and conda may be given (Ray refuses several), got {managers}")
        if self.image_uri is not None:
            others = [name for name in ("pip", "uv", "conda", "py_executable") if getattr(self, name) is not None]
            if others:
                raise ValueError(f"image_uri can only be combined with env_vars and config (Ray's rule), got {others}")
        reserved = sorted(RESERVED_ENV_VARS & set(self.env_vars))
        if reserved:
            raise ValueError(f"env_vars: {reserved[0]} is set by ptycho-dist itself")
        return self

    def to_ray(self) -> dict[str, Any]:
        """The ``runtime_env`` dict Ray takes (fields left unset are absent)."""
        out: dict[str, Any] = {}
        if self.env_vars:
            out["env_vars"] = dict(self.env_vars)
        for name in ("pip", "uv"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value)
        for name in ("conda", "py_executable", "image_uri"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.config is not None:
            out["config"] = self.config.to_dict()
        return out


class RuntimeEnvSpec(SpecModel):
    """The ``[runtime_env]`` table: a Ray runtime environment per backend. ``base`` applies to the CPU
    stages and the oracle arm; ``torch``, ``tf`` and ``ptychi`` to the model stages (train, infer,
    reconstruct) of that backend, so that TensorFlow and PyTorch can use environments whose CUDA stacks
    would conflict. Not part of the scenarios or their keys: changing it recomputes nothing."""

    base: BackendRuntimeEnv | None = None
    """CPU stages (simulate, group, stitch, evaluate, parity) and the oracle arm."""
    torch: BackendRuntimeEnv | None = None
    """Model stages of the PyTorch arm."""
    tf: BackendRuntimeEnv | None = None
    """Model stages of the TensorFlow arm."""
    ptychi: BackendRuntimeEnv | None = None
    """Model stages of the iterative (pty-chi) arm."""

    def for_target(self, target: str) -> BackendRuntimeEnv | None:
        """The environment of ``target`` (one of :data:`RUNTIME_ENV_TARGETS`), None when unset."""
        if target not in RUNTIME_ENV_TARGETS:
            raise ValueError(f"runtime_env target must be one of {list(RUNTIME_ENV_TARGETS)}, got {target!r}")
        env: BackendRuntimeEnv | None = getattr(self, target)
        return env

    def merged(self, other: RuntimeEnvSpec) -> RuntimeEnvSpec:
        """This spec with the targets ``other`` sets replaced by ``other``'s (a CLI flag over the file)."""
        return self.model_copy(update={t: getattr(other, t) for t in RUNTIME_ENV_TARGETS
                                       if getattr(other, t) is not None})
