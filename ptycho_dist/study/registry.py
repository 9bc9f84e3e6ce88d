"""The stage registry: every stage of the runner, declared once (DESIGN.md §5, §9).

Each :class:`StageDef` says what a stage is called, its algorithm version, which upstream stages it
reads (several allowed, each under a *role* name), what kind of output it stores, its scope (one
output per data point, per arm or per pair of arms), its resource class and the function that runs
it. Everything else derives from this table: the content-addressed keys (:mod:`ptycho_dist.study.keys`),
the DAG of a study (:mod:`ptycho_dist.study.plan`), the storage paths (``arrays.zarr/<stage>/<key>``),
the per-scenario and per-pair table routing, the progress bars, ``validate``'s stage summary and the
report.

Adding a stage means one entry here, its function (named by :attr:`StageDef.function`) and its test.

Scopes
------
``data``
    Depends only on the data a scenario simulates (simulate, group): shared by every arm of one
    data point through its key.
``arm``
    One per reconstruction arm (oracle, torch, tf, ptychi): its rows go to the scenario's table parts.
``pair``
    One per ordered pair of arms ``(a, b)`` that :func:`ptycho_dist.study.plan.find_pairs` matches;
    its rows go to per-pair table parts (``parity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Input", "StageDef", "REGISTRY", "STAGES", "stage_def", "stage_names", "Scope", "ArmRef",
           "pair_tables", "OUTPUT_KINDS", "MODEL_ARMS", "STITCHED_ARMS", "ITERATIVE_ARMS"]

Scope = Literal["data", "arm", "pair"]
#: which arm(s) of a pair-scope node an input or a spec field refers to
ArmRef = Literal["a", "b", "ab", "ba"]
ResourceClass = Literal["cpu", "model"]
#: the kinds of stored output; each has one typed reader/writer in :mod:`ptycho_dist.storage.outputs`
OUTPUT_KINDS = ("simulated", "groups", "bundle", "prediction", "reconstruction", "evaluation", "comparison")

MODEL_ARMS = frozenset({"torch", "tf"})
#: arms whose reconstruction is the stitch of predicted patches (every arm but the iterative one)
STITCHED_ARMS = frozenset({"oracle", "torch", "tf"})
ITERATIVE_ARMS = frozenset({"ptychi"})


@dataclass(frozen=True)
class Input:
    """One upstream output a stage reads.

    Attributes
    ----------
    role : str
        The name under which the stage function finds the upstream key (``task.inputs[role]``).
    stages : tuple of str
        The upstream stage; several are alternatives, of which the first that applies to the arm is
        used (the prediction of an arm comes from ``oracle`` or from ``infer``).
    arm : {"a", "b", "ab", "ba"}
        Whose upstream output: the node's own arm ``a`` (the only choice outside pair scope), the
        other arm ``b`` of a pair, or the pair-scope node of ``(a, b)`` / ``(b, a)``.

    Datasets: a stage with ``per_dataset`` runs once per dataset of a scenario (each training
    object, each held-out test object); an input of such a stage is read on the same dataset. A stage
    without it (train, parity) runs once, and reads its per-dataset inputs on the scenario's primary
    evaluation dataset (the first test object, else the training object), or on every training
    dataset when ``training`` is set.
    """

    role: str
    stages: tuple[str, ...]
    arm: ArmRef = "a"
    training: bool = False
    """Read the upstream output of every *training* dataset (``data.train_objects`` of them): the
    role then holds several keys, in dataset order (``ctx.read_all``)."""
    optional: bool = False
    """The input may be absent for an arm none of whose ``stages`` applies (the iterative arm has no
    predicted patches): ``task.inputs`` then has no entry for the role, and the key is unchanged
    for the arms that have it."""


@dataclass(frozen=True)
class StageDef:
    """The declaration of one stage (see the module docstring)."""

    name: str
    """Stage name; also the array group of its outputs (``arrays.zarr/<name>/<key>``)."""
    version: int
    """Algorithm version, part of the key: bump it when the stage's output changes."""
    inputs: tuple[Input, ...]
    """Upstream outputs, in the order their keys enter this stage's key."""
    output: str
    """Output kind, one of :data:`OUTPUT_KINDS`."""
    scope: Scope
    """``data``, ``arm`` or ``pair`` (module docstring)."""
    resources: ResourceClass
    """``cpu``: a CPU task; ``model``: a task of the backend's worker pool that may take a GPU."""
    function: str
    """``module:function`` of the stage function, ``fn(ctx, task) -> StageResult``."""
    spec: Mapping[str, str]
    """Name in the key payload -> dotted path of the scenario field (``b:`` prefix: arm b's)."""
    arms: frozenset[str] | None = None
    """Backends (``model.backend``) the stage applies to; None: every arm."""
    runs_on: Literal["a", "b"] = "a"
    """The arm whose backend worker pool and resources a pair-scope task uses."""
    tables: tuple[str, ...] = ()
    """Result tables this stage writes rows to."""
    doc: str = ""
    """What the output holds, in one line (``validate`` and the report)."""
    per_dataset: bool = True
    """Runs once per dataset of the scenario (see :class:`Input`); False: once per scenario or pair."""
    test_spec: Mapping[str, str] = field(default_factory=dict)
    """Key-payload entries replaced for held-out test datasets (name -> dotted path; a None value
    keeps the training value): the test objects' own scan."""
    spec_defaults: Mapping[str, object] = field(default_factory=dict)
    """Key-payload entries left out of the key while they hold this value: a field added after the
    stage's outputs were first stored keeps every earlier key (and stored output) valid."""


_PRED = ("oracle", "infer")

REGISTRY: tuple[StageDef, ...] = (
    StageDef("simulate", 2, (), "simulated", "data", "cpu", "ptycho_dist.pipeline.stages:simulate_stage",
             {"object": "object", "probe": "probe", "scan": "scan", "dose": "dose", "data_source": "data.source",
              "data_path": "data.path", "data_diffraction": "data.diffraction",
              "data_n_patterns": "data.n_patterns", "data_interpolation": "data.interpolation", "seed": "seed",
              "replicate": "replicate"},
             tables=("diagnostics",), test_spec={"scan": "data.test_scan"},
             spec_defaults={"data_interpolation": "bilinear"},
             doc="object, probe, positions, Poisson counts, true patches"),
    StageDef("group", 1, (Input("data", ("simulate",)),), "groups", "data", "cpu",
             "ptycho_dist.pipeline.stages:group_stage", {"grouping": "grouping", "seed": "seed"},
             tables=("diagnostics",), doc="neighbour groups, group centres, relative coordinates"),
    StageDef("oracle", 2, (Input("data", ("simulate",)), Input("groups", ("group",))), "prediction", "arm",
             "cpu", "ptycho_dist.pipeline.stages:oracle_stage", {}, arms=frozenset({"oracle"}),
             doc="the true patches of every group member (no model)"),
    StageDef("train", 3, (Input("data", ("simulate",), training=True), Input("groups", ("group",), training=True)),
             "bundle", "arm", "model", "ptycho_dist.pipeline.model_stages:train_stage",
             {"model": "model", "training": "training", "seed": "seed", "relative_sign": "faults.relative_sign",
              "model_probe": "faults.model_probe", "object_big_off": "faults.object_big_off"}, arms=MODEL_ARMS,
             tables=("history", "diagnostics"), per_dataset=False,
             doc="train the PINN on every training object; a weights bundle"),
    StageDef("infer", 3, (Input("model", ("train",)), Input("data", ("simulate",)), Input("groups", ("group",))),
             "prediction", "arm", "model", "ptycho_dist.pipeline.model_stages:infer_stage",
             {"backend": "model.backend", "relative_sign": "faults.relative_sign",
              "model_probe": "faults.model_probe", "infer_ignores_scale": "faults.infer_ignores_scale"},
             arms=MODEL_ARMS, tables=("diagnostics",),
             doc="predicted object patches (in the data's units) with the bundle's normalization and intensity scale"),
    StageDef("stitch", 2, (Input("prediction", _PRED), Input("data", ("simulate",)), Input("groups", ("group",))),
             "reconstruction", "arm", "cpu", "ptycho_dist.pipeline.stages:stitch_stage",
             {"stitch": "stitch", "collapse_offsets": "faults.collapse_offsets",
              "legacy_canvas": "faults.legacy_canvas"}, arms=STITCHED_ARMS,
             doc="the predicted patches stitched onto the object's pixel grid"),
    StageDef("iterative", 1, (Input("data", ("simulate",)),), "reconstruction", "arm", "model",
             "ptycho_dist.pipeline.iterative_stages:iterative_stage",
             {"iterative": "iterative", "crop": "stitch.crop", "seed": "seed"}, arms=ITERATIVE_ARMS,
             tables=("history", "diagnostics"),
             doc="pty-chi's reconstruction of the whole object on its pixel grid (iterative arm)"),
    StageDef("evaluate", 4, (Input("reconstruction", ("stitch", "iterative")), Input("data", ("simulate",)),
                             Input("groups", ("group",)), Input("prediction", _PRED, optional=True)),
             "evaluation", "arm", "cpu", "ptycho_dist.pipeline.stages:evaluate_stage",
             {"evaluation": "evaluation", "patch_only": "faults.patch_only_evaluation"},
             tables=("metrics", "bias", "diagnostics"),
             doc="metrics, bias and diagnostics against the truth"),
    StageDef("transplant", 3, (Input("model", ("train",)), Input("data", ("simulate",)), Input("groups", ("group",))),
             "prediction", "pair", "model", "ptycho_dist.pipeline.parity_stages:transplant_stage",
             {"target": "b:model.backend", "relative_sign": "b:faults.relative_sign",
              "model_probe": "b:faults.model_probe", "object_big_off": "b:faults.object_big_off"},
             arms=MODEL_ARMS,
             runs_on="b", doc="arm a's bundle run by arm b's backend with b's conventions"),
    StageDef("parity", 2, (Input("prediction_a", ("infer",)), Input("prediction_b", ("infer",), "b"),
                           Input("transplant_ab", ("transplant",), "ab"), Input("transplant_ba", ("transplant",), "ba"),
                           Input("reconstruction_a", ("stitch",)), Input("reconstruction_b", ("stitch",), "b"),
                           Input("evaluation_a", ("evaluate",)), Input("evaluation_b", ("evaluate",), "b"),
                           Input("model_a", ("train",)), Input("model_b", ("train",), "b")),
             "comparison", "pair", "cpu", "ptycho_dist.pipeline.parity_stages:parity_stage", {},
             arms=MODEL_ARMS, tables=("parity",), per_dataset=False,
             doc="one row comparing two arms trained on the same data"),
)

_BY_NAME: dict[str, StageDef] = {d.name: d for d in REGISTRY}
#: stage names in execution order
STAGES: tuple[str, ...] = tuple(_BY_NAME)


def stage_def(name: str) -> StageDef:
    """The declaration of stage ``name`` (KeyError with the known names otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; known: {', '.join(STAGES)}") from None


def stage_names(*scopes: Scope) -> tuple[str, ...]:
    """Stage names of the given scopes (all when none is given), in execution order."""
    return tuple(d.name for d in REGISTRY if not scopes or d.scope in scopes)


def pair_tables() -> tuple[str, ...]:
    """Tables written per pair of arms (by pair-scope stages) rather than per scenario."""
    return tuple(dict.fromkeys(t for d in REGISTRY if d.scope == "pair" for t in d.tables))


def _check_registry() -> None:
    """Inputs name earlier stages, scopes only read what they may, kinds are known (import-time check
    of a constant table: a mistake here is a programming error, caught by the first import)."""
    seen: set[str] = set()
    for d in REGISTRY:
        if d.output not in OUTPUT_KINDS:
            raise ValueError(f"stage {d.name!r}: unknown output kind {d.output!r}")
        for inp in d.inputs:
            for up in inp.stages:
                if up not in seen:
                    raise ValueError(f"stage {d.name!r}: input {inp.role!r} names {up!r}, not an earlier stage")
            if inp.arm != "a" and d.scope != "pair":
                raise ValueError(f"stage {d.name!r}: only pair-scope stages read arm {inp.arm!r}")
        seen.add(d.name)


_check_registry()
