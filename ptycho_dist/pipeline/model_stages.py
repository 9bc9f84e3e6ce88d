"""Stage functions of the model arms: train and infer (torch or tf, imported inside the stage).

The backend module is imported inside the function, so a Ray worker that runs torch stages never
imports TensorFlow and vice versa (the orchestration layer also gives each backend its own worker
pool). Multi-worker training is injected by the orchestration layer through
:attr:`StageContext.distributed_train` (Ray Train); the pipeline itself never imports Ray.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho_dist.models import Backend, PinnConfig, TrainData, load_backend
from ptycho_dist.pipeline.base import StageContext, StageResult, diag_rows, register_stage
from ptycho_dist.storage.arrays import NamedArray
from ptycho_dist.storage.bundles import read_bundle, write_bundle
from ptycho_dist.storage.run import library_versions
from ptycho_dist.study import Scenario, ScenarioKeys, derive_seed

__all__ = ["pinn_config", "backend_module"]


def pinn_config(s: Scenario) -> PinnConfig:
    """The model configuration of scenario ``s`` (:meth:`PinnConfig.from_scenario`)."""
    return PinnConfig.from_scenario(s)


def backend_module(backend: str) -> Backend:
    """``ptycho_dist.models.torch.train`` or ``ptycho_dist.models.tf.train`` (:func:`load_backend`)."""
    return load_backend(backend)


def _exp(x: float) -> float:
    """exp without an overflow warning (a diverged run may leave a huge log_scale: inf is the answer)."""
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _grouped(ctx: StageContext, keys: ScenarioKeys) -> tuple[Any, Any, np.ndarray]:
    sim = ctx.layout.arrays.read("sim", keys.simulate)
    groups = ctx.layout.arrays.read("group", keys.group)
    counts = sim["counts"][groups["indices"]]
    return sim, groups, counts


@register_stage("train")
def train_stage(ctx: StageContext, s: Scenario, keys: ScenarioKeys) -> StageResult:
    """Train the PINN on the scenario's grouped counts; write the bundle; history rows."""
    assert keys.train is not None
    sim, groups, counts = _grouped(ctx, keys)
    n_train = s.training.n_train or counts.shape[0]
    relative = s.model.relative_sign * groups["relative"]
    data = TrainData(counts=counts[:n_train], scale=float(sim.attrs["scale"]), probe=sim["probe"],
                     relative=relative[:n_train], nphotons=float(sim.attrs["nphotons"]))
    config, seed = pinn_config(s), derive_seed(s.seed, keys.train) % (2**31)
    if s.resources.train_workers > 1 and ctx.distributed_train is not None:
        result = ctx.distributed_train(data, config, seed=seed, num_workers=s.resources.train_workers,
                                       backend=s.model.backend)
    else:
        result = backend_module(s.model.backend).train_pinn(data, config, seed=seed)
    initial = float(np.log(data.scale)) if config.log_scale_init == "dose" else None
    meta = {"backend": s.model.backend, "config": config.to_dict(), "norm_factor": result.norm_factor,
            "log_scale": result.log_scale, "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
            "n_train": result.n_train, "n_val": result.n_val, "seed": seed, "libraries": library_versions(),
            "train_workers": s.resources.train_workers, "relative_sign": s.model.relative_sign}
    write_bundle(ctx.layout.models, keys.train, result.weights, meta)
    diag = {"train_relative_sign": float(s.model.relative_sign),
            "train_probe_normalization_factor": float(sim.attrs["probe_factor"]),
            "train_norm_factor": result.norm_factor, "train_intensity_scale": _exp(result.log_scale),
            "train_log_scale": result.log_scale, "n_train_groups": result.n_train, "n_val_groups": result.n_val,
            "train_seconds": result.seconds, "first_nonfinite_epoch": result.diverged_epoch
            if result.diverged_epoch is not None else float("nan")}
    if initial is not None:
        diag["initial_log_scale"] = initial
    history = [{k: v for k, v in row.items() if k != "seconds"} | {"backend": s.model.backend}
               for row in result.history]
    status = "diverged" if result.diverged_epoch is not None else "ok"
    return StageResult({}, {"bundle": keys.train}, {"history": history, "diagnostics": diag_rows("train", diag)},
                       status=status, info={"diverged_epoch": result.diverged_epoch})


def run_inference(ctx: StageContext, bundle_key: str, backend: str, relative_sign: int,
                  keys: ScenarioKeys) -> tuple[Any, Any, np.ndarray, Any]:
    """Run the bundle ``bundle_key`` with ``backend`` on the scenario's grouped data, reusing the
    bundle's normalization factor and intensity scale unchanged."""
    sim, groups, counts = _grouped(ctx, keys)
    bundle = read_bundle(ctx.layout.models, bundle_key)
    config = PinnConfig.from_dict(bundle.meta["config"])
    result = backend_module(backend).infer_pinn(
        bundle.weights, config, counts=counts, scale=float(sim.attrs["scale"]), probe=sim["probe"],
        relative=relative_sign * groups["relative"], norm_factor=bundle.norm_factor, log_scale=bundle.log_scale)
    return result, bundle, counts, sim


@register_stage("infer")
def infer_stage(ctx: StageContext, s: Scenario, keys: ScenarioKeys) -> StageResult:
    """Predict object patches for every group with the bundle's normalization and intensity scale."""
    assert keys.train is not None
    result, bundle, counts, sim = run_inference(ctx, keys.train, s.model.backend, s.model.relative_sign, keys)
    arrays = {"patches": NamedArray(result.object_patches, ("group", "member", "py", "px")),
              "amplitude": NamedArray(result.pred_amplitude, ("group", "member", "ky", "kx"))}
    measured = np.sqrt(counts)
    diag = {"infer_norm_factor": bundle.norm_factor, "infer_intensity_scale": _exp(bundle.log_scale),
            "infer_backend": s.model.backend, "infer_relative_sign": float(s.model.relative_sign),
            "infer_probe_normalization_factor": float(sim.attrs["probe_factor"]),
            "pred_to_measured_counts": float(np.sum(result.pred_amplitude.astype(np.float64) ** 2)
                                             / max(float(np.sum(measured**2)), 1e-300))}
    return StageResult(arrays, {"bundle": keys.train, "backend": s.model.backend},
                       {"diagnostics": diag_rows("infer", diag)})
