"""Stage functions of the model arms: train and infer (torch or tf, imported inside the stage).

The backend module is imported inside the function, so a Ray worker that runs torch stages never
imports TensorFlow and vice versa (the orchestration layer also gives each backend its own worker
pool). Multi-worker training is injected by the orchestration layer through
:attr:`StageContext.distributed_train` (Ray Train); the pipeline itself never imports Ray.

The model-side fault switches (docs/faults.md) act here: ``faults.relative_sign`` (the relative
coordinates the model receives), ``faults.model_probe`` (the probe of its forward model, train and
infer), ``faults.object_big_off`` (the overlap constraint off in the trained config, which the
bundle records and inference follows) and ``faults.infer_ignores_scale`` (inference with the
starting scale and the inference data's own normalization). The predicted object is reported in
the data's units, ``O_net * exp(log_scale) / s`` (:func:`~ptycho_dist.models.object_in_data_units`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ptycho_dist.evaluation import learning_scores, patch_scores, score_mask
from ptycho_dist.models import (
    Backend,
    InferResult,
    PinnConfig,
    TrainData,
    TrainResult,
    load_backend,
    object_in_data_units,
    starting_log_scale,
)
from ptycho_dist.models.faults import effective_object_big, inference_scales, model_probe, probe_energy_ratio
from ptycho_dist.pipeline.base import StageContext, StageResult, diag_rows
from ptycho_dist.storage.outputs import Bundle, Groups, Prediction, SimulatedData
from ptycho_dist.storage.run import library_versions
from ptycho_dist.study import Scenario, StageTask, derive_seed

__all__ = ["train_stage", "infer_stage", "run_inference", "Inference", "arm_config", "arm_probe", "SCORE_GROUPS",
           "score_subset"]

#: groups of the training data on which the train stage scores the trained and the untrained network
SCORE_GROUPS = 128


def _exp(x: float) -> float:
    """exp without an overflow warning (a diverged run may leave a huge log_scale: inf is the answer)."""
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _grouped(ctx: StageContext, task: StageTask) -> tuple[SimulatedData, Groups, np.ndarray]:
    sim, groups = ctx.read(task, "data", SimulatedData), ctx.read(task, "groups", Groups)
    return sim, groups, sim.counts[groups.indices]


def pooled_scale(sims: list[SimulatedData], counts: list[int]) -> float:
    """The dose scale of several training objects pooled: ``s = sqrt(nphotons / E)`` with ``E`` the
    pattern-weighted mean of each object's mean pattern energy ``nphotons / s_i**2`` (one object:
    its own ``s``)."""
    if len(sims) == 1:
        return sims[0].scale
    energy = sum(n * sim.nphotons / sim.scale**2 for sim, n in zip(sims, counts, strict=True)) / sum(counts)
    return float(np.sqrt(sims[0].nphotons / energy))


def arm_config(s: Scenario) -> PinnConfig:
    """The PINN configuration arm ``s`` trains: its scenario's, with the overlap constraint off under
    ``faults.object_big_off``."""
    config = PinnConfig.from_scenario(s)
    big = effective_object_big(config.object_big, object_big_off=s.faults.object_big_off)
    return config if big == config.object_big else dataclasses.replace(config, object_big=big)


def arm_probe(s: Scenario, sim: SimulatedData) -> np.ndarray:
    """complex64 (N, N): the probe of arm ``s``'s forward model on the data ``sim`` (``faults.model_probe``)."""
    return model_probe(sim.probe, probe_factor=sim.probe_factor, kind=s.faults.model_probe)


def score_subset(n_groups: int, size: int = SCORE_GROUPS) -> np.ndarray:
    """int64 (min(n_groups, size),): group indices evenly spaced over ``0 .. n_groups - 1``."""
    return np.unique(np.linspace(0, n_groups - 1, num=min(n_groups, size)).round().astype(np.int64))


def _learning_scores(backend: Backend, data: TrainData, truth: np.ndarray, config: PinnConfig,
                     result: TrainResult, *, seed: int, data_probe: np.ndarray) -> dict[str, float]:
    """The ``patch_score_*`` diagnostics: the trained network and the untrained one of the same seed
    (``train_pinn`` with 0 epochs: the same initial draw) scored on :func:`score_subset` groups."""
    idx = score_subset(data.counts.shape[0])
    sub = TrainData(counts=data.counts[idx], scale=data.scale, probe=data.probe, relative=data.relative[idx],
                    nphotons=data.nphotons)
    untrained = (result.weights if config.epochs == 0 else backend.train_pinn(
        sub, dataclasses.replace(config, epochs=0, val_fraction=0.0), seed=seed).weights)
    mask = score_mask(data_probe)

    def scores(weights: dict[str, np.ndarray]) -> np.ndarray:
        pred = backend.infer_pinn(weights, config, counts=sub.counts, scale=sub.scale, probe=sub.probe,
                                  relative=sub.relative, norm_factor=result.norm_factor,
                                  log_scale=result.log_scale)
        return patch_scores(pred.object_patches, truth[idx], mask)

    return learning_scores(scores(result.weights), scores(untrained))


def train_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Train the PINN on the grouped counts of every training object; the bundle; history rows.

    Diagnostics (``stage = "train"``) include ``initial_log_scale`` (where the scale started),
    ``model_probe_energy_ratio``, ``train_object_big`` and, when the data have a known object and
    training did not diverge, ``patch_score_trained``, ``patch_score_untrained``,
    ``patch_score_gain_se`` and ``patch_score_patches`` (:func:`_learning_scores`).
    """
    s = task.scenario
    sims, groups = ctx.read_all(task, "data", SimulatedData), ctx.read_all(task, "groups", Groups)
    counts = np.concatenate([sim.counts[g.indices] for sim, g in zip(sims, groups, strict=True)])
    relative = s.faults.relative_sign * np.concatenate([g.relative for g in groups])
    sim = sims[0]
    n_train = s.training.n_train or counts.shape[0]
    scale = pooled_scale(sims, [len(g.indices) for g in groups])
    probe = arm_probe(s, sim)
    data = TrainData(counts=counts[:n_train], scale=scale, probe=probe,
                     relative=relative[:n_train], nphotons=sim.nphotons)
    config, seed = arm_config(s), derive_seed(s.seed, task.key) % (2**31)
    backend = load_backend(s.model.backend)
    if s.resources.train_workers > 1 and ctx.distributed_train is not None:
        result = ctx.distributed_train(data, config, seed=seed, num_workers=s.resources.train_workers,
                                       backend=s.model.backend)
    else:
        result = backend.train_pinn(data, config, seed=seed)
    initial = starting_log_scale(config, nphotons=data.nphotons, scale=data.scale)
    meta = {"backend": s.model.backend, "config": config.to_dict(), "norm_factor": result.norm_factor,
            "log_scale": result.log_scale, "initial_log_scale": initial, "dose_scale": scale,
            "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
            "n_train": result.n_train, "n_val": result.n_val, "seed": seed, "libraries": library_versions(),
            "train_workers": s.resources.train_workers, "relative_sign": s.faults.relative_sign,
            "model_probe": s.faults.model_probe, "object_big_off": s.faults.object_big_off}
    diag: dict[str, Any] = {
        "train_relative_sign": float(s.faults.relative_sign),
        "train_probe_normalization_factor": sim.probe_factor,
        "model_probe_energy_ratio": probe_energy_ratio(probe, sim.probe),
        "train_object_big": float(config.object_big),
        "train_norm_factor": result.norm_factor, "train_intensity_scale": _exp(result.log_scale),
        "train_log_scale": result.log_scale, "initial_log_scale": initial,
        "n_train_groups": result.n_train, "n_val_groups": result.n_val,
        "train_seconds": result.seconds, "train_objects": len(sims), "train_dose_scale": scale,
        "first_nonfinite_epoch": result.diverged_epoch if result.diverged_epoch is not None else float("nan")}
    if result.diverged_epoch is None and all(sim_i.has_truth for sim_i in sims):
        truth = np.concatenate([sim_i.truth_patches[g.indices] for sim_i, g in zip(sims, groups, strict=True)])
        diag |= _learning_scores(backend, data, truth[:n_train], config, result, seed=seed, data_probe=sim.probe)
    history = [{k: v for k, v in row.items() if k != "seconds"} | {"backend": s.model.backend}
               for row in result.history]
    status = "diverged" if result.diverged_epoch is not None else "ok"
    return StageResult(Bundle(weights=result.weights, meta=meta),
                       {"history": history, "diagnostics": diag_rows("train", diag)},
                       status=status, info={"diverged_epoch": result.diverged_epoch})


@dataclasses.dataclass(frozen=True)
class Inference:
    """What :func:`run_inference` computed: the prediction (object in the data's units), the scales
    it used, the data it ran on."""

    result: InferResult
    bundle: Bundle
    counts: np.ndarray
    sim: SimulatedData
    probe: np.ndarray
    norm_factor: float
    log_scale: float
    object_scale: float


def run_inference(ctx: StageContext, task: StageTask, arm: Scenario, *, own: bool = True) -> Inference:
    """Run the bundle that ``task`` reads as ``model`` with the backend and conventions of ``arm`` on
    its grouped data.

    The relative-coordinate sign and the model's probe are ``arm``'s; the scales are the bundle's
    (``faults.infer_ignores_scale`` of ``arm``: the starting scale and the data's own normalization,
    only when ``own``, i.e. in the arm's own inference). With ``own`` the overlap constraint is the
    bundle's recorded config; otherwise (a transplant) it is ``arm``'s. The object patches are
    ``O_net * exp(log_scale) / s`` with ``s`` the bundle's training dose scale.
    """
    sim, groups, counts = _grouped(ctx, task)
    bundle = ctx.read(task, "model", Bundle)
    config = PinnConfig.from_dict(dict(bundle.meta["config"]))
    if not own:
        big = effective_object_big(arm.model.object_big, object_big_off=arm.faults.object_big_off)
        config = dataclasses.replace(config, object_big=big)
    probe = arm_probe(arm, sim)
    initial = float(bundle.meta.get("initial_log_scale", bundle.log_scale))
    ignore = own and arm.faults.infer_ignores_scale
    norm, log_scale = inference_scales(
        norm_factor=bundle.norm_factor, log_scale=bundle.log_scale, initial_log_scale=initial,
        amplitudes=np.sqrt(counts.astype(np.float64)) / sim.scale if ignore else None, ignore_learned=ignore)
    result = load_backend(arm.model.backend).infer_pinn(
        dict(bundle.weights), config, counts=counts, scale=sim.scale, probe=probe,
        relative=arm.faults.relative_sign * groups.relative, norm_factor=norm, log_scale=log_scale)
    dose_scale = float(bundle.meta.get("dose_scale", np.exp(log_scale)))
    patches = object_in_data_units(result.object_patches, log_scale=log_scale, dose_scale=dose_scale)
    return Inference(InferResult(patches, result.pred_amplitude), bundle, counts, sim, probe, norm, log_scale,
                     _exp(log_scale - np.log(dose_scale)))


def infer_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Predict object patches for every group with the bundle's normalization and intensity scale
    (the starting scale and the data's own normalization under ``faults.infer_ignores_scale``)."""
    s = task.scenario
    inf = run_inference(ctx, task, s)
    measured = np.sqrt(inf.counts)
    diag = {"infer_norm_factor": inf.norm_factor, "infer_intensity_scale": _exp(inf.log_scale),
            "infer_log_scale": inf.log_scale, "infer_object_scale": inf.object_scale,
            "infer_ignores_scale": float(s.faults.infer_ignores_scale),
            "infer_backend": s.model.backend, "infer_relative_sign": float(s.faults.relative_sign),
            "infer_probe_normalization_factor": inf.sim.probe_factor,
            "model_probe_energy_ratio": probe_energy_ratio(inf.probe, inf.sim.probe),
            "pred_to_measured_counts": float(np.sum(inf.result.pred_amplitude.astype(np.float64) ** 2)
                                             / max(float(np.sum(measured**2)), 1e-300))}
    out = Prediction(patches=inf.result.object_patches, amplitude=inf.result.pred_amplitude, backend=s.model.backend)
    return StageResult(out, {"diagnostics": diag_rows("infer", diag)})
