"""Stage functions of the model arms: train and infer (torch or tf, imported inside the stage).

The backend module is imported inside the function, so a Ray worker that runs torch stages never
imports TensorFlow and vice versa (the orchestration layer also gives each backend its own worker
pool). Multi-worker training is injected by the orchestration layer through
:attr:`StageContext.distributed_train` (Ray Train); the pipeline itself never imports Ray.
"""

from __future__ import annotations

import numpy as np

from ptycho_dist.models import InferResult, PinnConfig, TrainData, load_backend
from ptycho_dist.pipeline.base import StageContext, StageResult, diag_rows
from ptycho_dist.storage.outputs import Bundle, Groups, Prediction, SimulatedData
from ptycho_dist.storage.run import library_versions
from ptycho_dist.study import StageTask, derive_seed

__all__ = ["train_stage", "infer_stage", "run_inference"]


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


def train_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Train the PINN on the grouped counts of every training object; the bundle; history rows."""
    s = task.scenario
    sims, groups = ctx.read_all(task, "data", SimulatedData), ctx.read_all(task, "groups", Groups)
    counts = np.concatenate([sim.counts[g.indices] for sim, g in zip(sims, groups, strict=True)])
    relative = s.faults.relative_sign * np.concatenate([g.relative for g in groups])
    sim = sims[0]
    n_train = s.training.n_train or counts.shape[0]
    scale = pooled_scale(sims, [len(g.indices) for g in groups])
    data = TrainData(counts=counts[:n_train], scale=scale, probe=sim.probe,
                     relative=relative[:n_train], nphotons=sim.nphotons)
    config, seed = PinnConfig.from_scenario(s), derive_seed(s.seed, task.key) % (2**31)
    if s.resources.train_workers > 1 and ctx.distributed_train is not None:
        result = ctx.distributed_train(data, config, seed=seed, num_workers=s.resources.train_workers,
                                       backend=s.model.backend)
    else:
        result = load_backend(s.model.backend).train_pinn(data, config, seed=seed)
    initial = float(np.log(data.scale)) if config.log_scale_init == "dose" else None
    meta = {"backend": s.model.backend, "config": config.to_dict(), "norm_factor": result.norm_factor,
            "log_scale": result.log_scale, "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
            "n_train": result.n_train, "n_val": result.n_val, "seed": seed, "libraries": library_versions(),
            "train_workers": s.resources.train_workers, "relative_sign": s.faults.relative_sign}
    diag = {"train_relative_sign": float(s.faults.relative_sign),
            "train_probe_normalization_factor": sim.probe_factor,
            "train_norm_factor": result.norm_factor, "train_intensity_scale": _exp(result.log_scale),
            "train_log_scale": result.log_scale, "n_train_groups": result.n_train, "n_val_groups": result.n_val,
            "train_seconds": result.seconds, "train_objects": len(sims), "train_dose_scale": scale,
            "first_nonfinite_epoch": result.diverged_epoch
            if result.diverged_epoch is not None else float("nan")}
    if initial is not None:
        diag["initial_log_scale"] = initial
    history = [{k: v for k, v in row.items() if k != "seconds"} | {"backend": s.model.backend}
               for row in result.history]
    status = "diverged" if result.diverged_epoch is not None else "ok"
    return StageResult(Bundle(weights=result.weights, meta=meta),
                       {"history": history, "diagnostics": diag_rows("train", diag)},
                       status=status, info={"diverged_epoch": result.diverged_epoch})


def run_inference(ctx: StageContext, task: StageTask, backend: str,
                  relative_sign: int) -> tuple[InferResult, Bundle, np.ndarray, SimulatedData]:
    """Run the bundle that ``task`` reads as ``model`` with ``backend`` on its grouped data, reusing the
    bundle's normalization factor and intensity scale unchanged."""
    sim, groups, counts = _grouped(ctx, task)
    bundle = ctx.read(task, "model", Bundle)
    config = PinnConfig.from_dict(dict(bundle.meta["config"]))
    result = load_backend(backend).infer_pinn(
        dict(bundle.weights), config, counts=counts, scale=sim.scale, probe=sim.probe,
        relative=relative_sign * groups.relative, norm_factor=bundle.norm_factor, log_scale=bundle.log_scale)
    return result, bundle, counts, sim


def infer_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Predict object patches for every group with the bundle's normalization and intensity scale."""
    s = task.scenario
    result, bundle, counts, sim = run_inference(ctx, task, s.model.backend, s.faults.relative_sign)
    measured = np.sqrt(counts)
    diag = {"infer_norm_factor": bundle.norm_factor, "infer_intensity_scale": _exp(bundle.log_scale),
            "infer_backend": s.model.backend, "infer_relative_sign": float(s.faults.relative_sign),
            "infer_probe_normalization_factor": sim.probe_factor,
            "pred_to_measured_counts": float(np.sum(result.pred_amplitude.astype(np.float64) ** 2)
                                             / max(float(np.sum(measured**2)), 1e-300))}
    out = Prediction(patches=result.object_patches, amplitude=result.pred_amplitude, backend=s.model.backend)
    return StageResult(out, {"diagnostics": diag_rows("infer", diag)})
