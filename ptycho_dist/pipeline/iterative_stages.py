"""Stage function of the iterative arm: pty-chi reconstructs the object (``model.backend = "ptychi"``).

The engine (:mod:`ptycho_dist.models.iterative.engine`, which imports torch and pty-chi when it
runs) reconstructs the whole object from the counts and positions of the simulation; the stage
stores it as a :class:`~ptycho_dist.storage.outputs.IterativeReconstruction` on the object's
pixel grid, masked to the pixels that the stitch of the same scan with ``stitch.crop`` covers, so
that ``evaluate`` scores every arm on the same pixels. Its coverage is that stitch's coverage.
The per-iteration data error goes to ``history`` (``epoch`` = iteration, ``train_loss`` = data
error), what the engine printed to ``logs/iterative-<key>.engine.log``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ptycho_dist import physics
from ptycho_dist.errors import StageError
from ptycho_dist.pipeline.base import StageContext, StageResult, diag_rows
from ptycho_dist.pipeline.stages import stitch_weights
from ptycho_dist.stitching import stitch
from ptycho_dist.storage.inputs import load_user_array
from ptycho_dist.storage.outputs import IterativeReconstruction, SimulatedData
from ptycho_dist.study import Scenario, StageTask, derive_seed

__all__ = ["iterative_stage", "starting_probe", "starting_positions", "data_error_floor"]


def starting_probe(s: Scenario, sim: SimulatedData, rng: np.random.Generator) -> np.ndarray:
    """The probe the engine starts from, complex64 (N, N), in the data's normalization."""
    it = s.iterative
    if it.probe_init == "true":
        return np.asarray(sim.probe, np.complex64)
    if it.probe_init == "perturbed":
        return physics.perturbed_probe(sim.probe, relative_error=it.probe_error, rng=rng)
    array = load_user_array(it.probe_path or "", field="iterative.probe_path")
    if array.shape != sim.probe.shape:
        raise StageError(f"iterative.probe_path: {it.probe_path}: the probe must be {sim.probe.shape}, got {array.shape}")
    return array.astype(np.complex64)


def starting_positions(s: Scenario, sim: SimulatedData, rng: np.random.Generator) -> np.ndarray:
    """The positions the engine starts from: the true ones plus a seeded Gaussian error of
    ``iterative.position_error`` pixels, kept inside the object."""
    pos = np.asarray(sim.positions, np.float64)
    if s.iterative.position_error == 0:
        return pos.copy()
    half = sim.probe.shape[0] / 2
    hi = np.array([sim.object.shape[1] - half, sim.object.shape[0] - half])
    return np.clip(pos + rng.normal(0.0, s.iterative.position_error, pos.shape), half, hi)


def data_error_floor(sim: SimulatedData) -> float:
    """The data error of the true object (this project's forward model): the floor an engine on
    noisy data cannot go below, mean (sqrt(C) - sqrt(s^2 I_true))^2 over pixels and positions (0 up
    to rounding for noise-free data, whose ratio is then not reported; about 1/4 per pixel for
    Poisson counts far from zero, less where most pixels see few photons)."""
    waves = physics.exit_waves(sim.probe, sim.truth_patches)
    expected = sim.scale**2 * physics.far_field_intensity(waves).astype(np.float64)
    return float(np.mean((np.sqrt(sim.counts.astype(np.float64)) - np.sqrt(expected)) ** 2))


def _history(result: Any) -> list[dict[str, Any]]:
    return [{"backend": "ptychi", "epoch": row["iteration"], "train_loss": row["data_error"],
             "nonfinite": not np.isfinite(row["data_error"])} for row in result.history]


def iterative_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Reconstruct the object with pty-chi; the masked reconstruction, history and diagnostics.

    The data's probe energy (the incident flux, known in an experiment from the direct beam) fixes
    the object-probe scale of a refined probe (:func:`~ptycho_dist.models.iterative.engine.reconstruct`).
    """
    from ptycho_dist.models.iterative.engine import engine_versions, reconstruct

    s = task.scenario
    sim = ctx.read(task, "data", SimulatedData)
    seed = derive_seed(s.seed, task.key)
    rng = np.random.default_rng(seed)
    probe0, pos0 = starting_probe(s, sim, rng), starting_positions(s, sim, rng)
    result = reconstruct(sim.counts, pos0, probe0, object_shape=sim.object.shape, scale=sim.scale,
                         spec=s.iterative, seed=seed % (2**31),
                         probe_energy=float(np.sum(np.abs(sim.probe.astype(np.complex128)) ** 2)))
    ctx.layout.write_engine_log(task.stage, task.key, result.log)
    n = sim.probe.shape[0]
    cover = stitch(np.ones((len(sim.positions), n, n), np.complex64), sim.positions, crop=s.stitch.crop,
                   frame="object", shape=sim.object.shape, weights=stitch_weights(s, sim))
    canvas = np.where(cover.coverage > 0, result.object, np.complex64(np.nan + 1j * np.nan)).astype(np.complex64)
    out = IterativeReconstruction(canvas=canvas, coverage=cover.coverage, origin=[float(v) for v in cover.origin],
                                  crop=cover.crop, frame=cover.frame, estimate=result.object, probe=result.probe,
                                  positions=result.positions, algorithm=s.iterative.algorithm)
    final = result.history[-1]["data_error"] if result.history else float("nan")
    floor = data_error_floor(sim) if sim.has_truth else float("nan")
    diag: dict[str, Any] = {
        "iterative_seconds": result.seconds, "iterative_cpu_seconds": result.cpu_seconds,
        "iterative_device": result.device,
        "iterative_iterations": len(result.history), "iterative_data_error": final,
        "iterative_data_error_truth": floor,
        "iterative_data_error_ratio": final / floor if s.dose.noise and floor > 0 else float("nan"),
        "iterative_probe_error_initial": physics.probe_relative_error(probe0, sim.probe),
        "iterative_probe_error": physics.probe_relative_error(result.probe[0], sim.probe),
        "iterative_position_error_initial": _rms(pos0 - sim.positions),
        "iterative_position_error": _rms(result.positions - sim.positions),
        "first_nonfinite_epoch": result.diverged_iteration if result.diverged_iteration is not None else float("nan"),
        **{f"iterative_version_{k}": v for k, v in engine_versions().items()},
    }
    status = "diverged" if result.diverged_iteration is not None else "ok"
    return StageResult(out, {"history": _history(result), "diagnostics": diag_rows("iterative", diag)},
                       status=status, info={"diverged_epoch": result.diverged_iteration})


def _rms(d: np.ndarray) -> float:
    """Root-mean-square length of displacement vectors (n, 2), pixels."""
    return float(np.sqrt(np.mean(np.sum(np.asarray(d, np.float64) ** 2, axis=1))))
