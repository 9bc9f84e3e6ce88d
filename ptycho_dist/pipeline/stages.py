"""Stage functions of the oracle arm: simulate, group, oracle, stitch, evaluate (no Ray here).

Each reads its inputs as typed outputs (``ctx.read(task, role, Class)``), computes with the pure layers,
and returns its typed output and rows; :func:`ptycho_dist.pipeline.base.execute_stage` writes them
with the completion marker. Random draws use ``derive_seed(study seed, stage key)``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ptycho_dist import grouping, physics
from ptycho_dist.errors import SpecError
from ptycho_dist.evaluation import (
    evaluate_patches,
    evaluate_reconstruction,
    patch_statistics,
    placed_weight_share,
    position_summary,
)
from ptycho_dist.physics.diagnostics import canvas_requirement, legacy_canvas_side, scanned_fraction
from ptycho_dist.physics.dose import scale_from_mean_energy
from ptycho_dist.pipeline.base import StageContext, StageResult, diag_rows
from ptycho_dist.stitching import StitchResult, crop_bounds, stitch
from ptycho_dist.storage.datasets import load_npz_dataset
from ptycho_dist.storage.inputs import load_npz_probe, load_user_array
from ptycho_dist.storage.outputs import (
    Evaluation,
    Groups,
    IterativeReconstruction,
    Prediction,
    Reconstruction,
    SimulatedData,
)
from ptycho_dist.study import Scenario, StageTask, derive_seed

__all__ = ["make_object", "make_probe", "make_positions", "absolute_positions", "simulate_stage", "group_stage",
           "oracle_stage", "stitch_stage", "evaluate_stage", "stitched_positions", "stitch_weights"]


def make_object(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """The scenario's object, complex64 (H, W).

    ``ptychopinn_lines`` is normalized over the patches of the scan that :func:`make_positions` draws
    next from ``rng`` (as the reference normalizes over the patches it simulates): the positions
    are computed here from a copy of ``rng`` in its state after the object's draws, which is the
    state :func:`simulate_stage` hands to :func:`make_positions` (the probe draws nothing).
    """
    o = s.object
    shape = (o.size, o.size)
    if o.kind == "ptychopinn_lines":
        raw = physics.ptychopinn_lines_amplitude(o.size, n_lines=o.n_lines, rng=rng)
        positions = make_positions(s, shape, copy.deepcopy(rng))
        amplitude, _ = physics.normalize_by_mean_patch_max(raw, positions, n=s.probe.n)
        if o.lines_phase == "zero":
            return amplitude.astype(np.complex64)
        return (amplitude * np.exp(1j * physics.reference_tanh_phase(amplitude))).astype(np.complex64)
    if o.kind == "lines":
        return physics.lines_object(shape, n_lines=o.n_lines, widths=o.line_widths,
                                    amplitude_range=o.amplitude_range,
                                    phase_range=o.phase_range, rng=rng)
    if o.kind == "grf":
        return physics.gaussian_random_field_object(shape, correlation_length=o.correlation_length,
                                                    amplitude_range=o.amplitude_range,
                                                    phase_range=o.phase_range, rng=rng)
    if o.kind == "siemens_star":
        return physics.siemens_star_object(shape, n_spokes=o.n_spokes, amplitude_range=o.amplitude_range,
                                           phase_range=o.phase_range)
    if o.path is None:  # the spec requires a path for kind "file"; a hand-built spec may lack it
        raise SpecError("object.path: required when object.kind = 'file'")
    return physics.object_from_array(load_user_array(o.path, field="object.path"))


def make_probe(s: Scenario) -> tuple[np.ndarray, float]:
    """The scenario's probe, complex64 (N, N), normalized as the spec says, and the factor applied."""
    p = s.probe
    if p.kind == "disk":
        probe = physics.disk_probe(p.n, radius=p.radius)
    elif p.kind == "gaussian":
        probe = physics.gaussian_probe(p.n, sigma=p.sigma if p.sigma is not None else p.n / 8)
    elif p.kind == "zone_plate":
        probe = physics.zone_plate_probe(p.n, radius=p.radius, defocus=p.defocus)
    elif p.kind == "aberrated":
        probe = physics.aberrated_probe(p.n, radius=p.radius, ellipticity=p.ellipticity,
                                        aperture_angle=p.aperture_angle, aperture_offset=p.aperture_offset,
                                        defocus=p.defocus, zernike_rms=p.zernike_rms, rng=p.aberration_seed)
    elif p.kind == "npz":
        if p.path is None:
            raise SpecError("probe.path: required when probe.kind = 'npz'")
        probe = physics.probe_from_array(load_npz_probe(p.path, key=p.npz_key, n=p.n, field="probe.path"), n=p.n)
    else:
        if p.path is None:
            raise SpecError("probe.path: required when probe.kind = 'file'")
        probe = physics.probe_from_array(load_user_array(p.path, field="probe.path"), n=p.n)
    if not p.normalize:
        return probe, 1.0
    return physics.normalize_probe(probe, probe_scale=p.probe_scale)


def make_positions(s: Scenario, object_shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Scan positions float64 (n, 2) as (x, y) of the probe centre in object pixels (grid scans with
    ``scan.cluster`` > 1: cluster by cluster in layout order, see :func:`physics.grid_scan`)."""
    sc, n = s.scan, s.probe.n
    if sc.kind == "grid":
        pos = physics.grid_scan(object_shape, n, step=sc.step, jitter=sc.jitter, margin=sc.margin,
                                cluster=sc.cluster, inner_offset=sc.inner_offset, rng=rng)
        return pos[: sc.n_positions] if sc.n_positions is not None else pos
    if sc.n_positions is None:
        raise SpecError(f"scan.n_positions: required for a {sc.kind} scan")
    if sc.kind == "random":
        return physics.random_scan(object_shape, n, n_positions=sc.n_positions, margin=sc.margin, rng=rng)
    return physics.fermat_scan(object_shape, n, n_positions=sc.n_positions, step=sc.step, margin=sc.margin)


def measured_data(s: Scenario) -> tuple[SimulatedData, dict[str, Any]]:
    """The data of a PtychoPINN-format NPZ file (``data.source = "npz"``) as this project stores them.

    Counts: the file's amplitudes squared (or its intensities) rescaled to a mean total of
    ``dose.nphotons`` per pattern, no noise added (measured data carry their own). The probe is
    ``probeGuess``, normalized as ``probe`` says. With ``objectGuess``: truth patches are cut from it at
    the positions and the dose scale is ``s = sqrt(nphotons / mean_k sum |P O_k|^2)`` as in simulation;
    without it there is no truth (the object is zeros on the scanned frame, the evaluation reports no
    metrics) and ``s = sqrt(nphotons / sum |P|^2)``, the value for ``|O| = 1``.
    """
    ds = load_npz_dataset(s.data.path or "", field="data.path", probe_n=s.probe.n, n_patterns=s.data.n_patterns)
    intensity = ds.diffraction.astype(np.float64) ** 2 if s.data.diffraction == "amplitude" else ds.diffraction
    mean_total = float(intensity.sum(axis=(1, 2)).mean())
    if not mean_total > 0:
        raise SpecError(f"data.path: {s.data.path}: the diffraction patterns are all zero")
    counts = (intensity * (s.dose.nphotons / mean_total)).astype(np.float32)
    probe, factor = (physics.normalize_probe(ds.probe, probe_scale=s.probe.probe_scale) if s.probe.normalize
                     else (ds.probe, 1.0))
    n = s.probe.n
    if ds.object is not None:
        obj = ds.object
        truth = physics.extract_patches(obj, ds.positions, n)
        energy = float(np.mean(np.sum(np.abs(probe[None] * truth) ** 2, axis=(1, 2))))
        source = "objectGuess"
    else:
        span = np.ceil(ds.positions.max(axis=0) + n / 2).astype(int) + 1
        obj = np.zeros((int(span[1]), int(span[0])), np.complex64)
        truth = np.zeros((len(ds.positions), n, n), np.complex64)
        energy, source = float(np.sum(np.abs(probe) ** 2)), "probe, |O| = 1"
    scale = scale_from_mean_energy(energy, nphotons=s.dose.nphotons)
    out = SimulatedData(object=obj, probe=probe, positions=ds.positions, counts=counts, truth_patches=truth,
                        scale=scale, nphotons=s.dose.nphotons, probe_factor=float(factor),
                        has_truth=ds.object is not None)
    diag = {"probe_normalization_factor": float(factor), "dose_scale": scale, "dose_scale_from": source,
            "mean_total_counts": float(counts.sum(axis=(1, 2), dtype=np.float64).mean()),
            "n_patterns": int(len(ds.positions)), "data_source": "npz",
            "scanned_fraction": scanned_fraction(ds.positions, obj.shape, n / 2), **physics.probe_statistics(probe)}
    return out, diag


def simulate_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Object, probe, positions, Poisson counts and the true patches of one dataset of a scenario: a
    training object, or a held-out test object scanned with ``data.test_scan`` (or, for
    ``data.source = "npz"``, the measured data of a file: :func:`measured_data`).

    Diagnostics include ``scanned_fraction``: the share of the object's pixels inside the central
    N/2 x N/2 window of at least one scan position (the region a PINN reconstructs).
    """
    s = task.scenario
    if s.data.source == "npz":
        out, diag = measured_data(s)
        return StageResult(out, {"diagnostics": diag_rows("simulate", diag)})
    rng = np.random.default_rng(derive_seed(s.seed, task.key))  # another key per dataset: another draw
    # a test object has its own scan (which also sets the patches the reference lines are normalized on)
    scanned = s.model_copy(update={"scan": s.data.test_scan}) if task.is_test and s.data.test_scan else s
    obj = make_object(scanned, rng)
    probe, factor = make_probe(s)
    positions = make_positions(scanned, obj.shape, rng)
    sim = physics.simulate_patterns(obj, probe, positions, nphotons=s.dose.nphotons, noise=s.dose.noise,
                                    interpolation=s.data.interpolation, rng=rng)
    out = SimulatedData(object=obj, probe=probe, positions=positions, counts=sim.counts,
                        truth_patches=sim.truth_patches, scale=float(sim.scale), nphotons=s.dose.nphotons,
                        probe_factor=float(factor), has_truth=True)
    diag = {"probe_normalization_factor": float(factor), "dose_scale": float(sim.scale),
            "mean_total_counts": float(sim.mean_total_counts), "n_patterns": int(positions.shape[0]),
            "scanned_fraction": scanned_fraction(positions, obj.shape, s.probe.n / 2),
            **physics.probe_statistics(probe)}
    return StageResult(out, {"diagnostics": diag_rows("simulate", diag)})


def group_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Groups (neighbour groups or, in grid mode, the scan's clusters), group centres and relative
    coordinates (member - centre)."""
    s, sim = task.scenario, ctx.read(task, "data", SimulatedData)
    rng = np.random.default_rng(derive_seed(s.seed, task.key))
    g = s.grouping
    if g.mode == "grid":
        groups = grouping.grid_groups(sim.positions, gridsize=g.gridsize, n_groups=g.n_groups, rng=rng)
    else:
        groups = grouping.group_positions(sim.positions, gridsize=g.gridsize, k_neighbors=g.resolved_k,
                                          n_groups=g.n_groups, rng=rng)
    out = Groups(indices=groups.indices, centers=groups.centers, relative=groups.relative,
                 gridsize=s.grouping.gridsize)
    diag = {**grouping.grouping_summary(groups, sim.positions),
            "relative_sign": float(grouping.RELATIVE_SIGN),
            **canvas_requirement(sim.positions, sim.probe.shape[0], gridsize=s.grouping.gridsize, probe=sim.probe,
                                 object_shape=sim.object.shape)}
    return StageResult(out, {"diagnostics": diag_rows("group", diag)})


def oracle_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """The oracle arm's "prediction": the true patches of every group member, (B, C, N, N)."""
    sim, groups = ctx.read(task, "data", SimulatedData), ctx.read(task, "groups", Groups)
    return StageResult(Prediction(patches=sim.truth_patches[groups.indices], backend="oracle", amplitude=None))


def stitch_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Stitch the predicted patches at their absolute positions onto the object's grid.

    Fault switches (docs/faults.md): ``faults.collapse_offsets`` stitches every patch at the first
    group's centre (:func:`stitched_positions`); ``faults.legacy_canvas`` stitches onto the older fixed
    padded canvas (frame ``"legacy"``, side N + (gridsize - 1) * 4 + 10, centred on the mean position),
    dropping what falls outside it, whatever ``stitch.frame`` says.
    """
    s = task.scenario
    sim, groups = ctx.read(task, "data", SimulatedData), ctx.read(task, "groups", Groups)
    patches = ctx.read(task, "prediction", Prediction).patches
    positions = stitched_positions(s, groups)
    weights = stitch_weights(s, sim)
    if s.faults.legacy_canvas:
        res = stitch(patches, positions, crop=s.stitch.crop, frame="legacy", weights=weights,
                     side=legacy_canvas_side(sim.probe.shape[0], s.grouping.gridsize))
    else:
        shape = sim.object.shape if s.stitch.frame == "object" else None
        if ctx.device != "numpy" and s.stitch.frame == "object":  # a task with a GPU: torch
            from ptycho_dist.models.device import stitch_on

            res = stitch_on(patches, positions, crop=s.stitch.crop, shape=shape, weights=weights,
                            device="cuda" if ctx.device == "cuda" else "cpu")
        else:
            res = stitch(patches, positions, crop=s.stitch.crop, frame=s.stitch.frame, shape=shape,
                         weights=weights)
    return StageResult(Reconstruction(canvas=res.canvas, coverage=res.coverage,
                                      origin=[float(v) for v in res.origin], crop=res.crop, frame=res.frame))


def evaluate_stage(ctx: StageContext, task: StageTask) -> StageResult:
    """Metrics, bias and diagnostics of the stitched object (and patch-level metrics) vs the truth.

    Diagnostics added here (docs/faults.md): ``evaluated_stitched`` (1 when ``stitched`` metric rows
    were written, else 0), ``stitch_kept_weight_share`` (share of the stitched patches' placement
    weight the canvas kept: 1 unless a fixed canvas clipped), and the position figures of the
    positions the stitch really used (``n_distinct_positions`` is 1 for collapsed offsets).
    With ``faults.patch_only_evaluation`` only ``patch`` metric rows are written, and no bias row
    (the bias figures describe the stitched object, which is then not evaluated).
    """
    s = task.scenario
    sim, groups = ctx.read(task, "data", SimulatedData), ctx.read(task, "groups", Groups)
    if not sim.has_truth:  # measured data without a known object: nothing to compare with
        return StageResult(Evaluation(metrics=[], bias=[]),
                           {"diagnostics": diag_rows("evaluate", {"truth_available": False,
                                                                  "evaluated_stitched": 0})})
    recon = ctx.read(task, "reconstruction", Reconstruction)
    stitched = StitchResult(canvas=recon.canvas, coverage=recon.coverage,
                            origin=np.asarray(recon.origin, dtype=np.float64), crop=int(recon.crop),
                            frame=str(recon.frame))
    # patch-level figures on the central N/2 window: the PINN's object is zero outside it
    n = s.probe.n
    window = (..., slice(n // 4, n // 4 + n // 2), slice(n // 4, n // 4 + n // 2))
    truth_patches = sim.truth_patches[groups.indices][window]
    pred_patches = _predicted_patches(ctx, task, sim, groups)[window]
    positions = stitched_positions(s, groups).reshape(-1, 2)
    placed = groups.indices.size if "prediction" in task.inputs else len(sim.positions)  # iterative: each position once
    kept = {"stitch_kept_weight_share": _kept_share(stitched, placed, s, sim)}
    diag: dict[str, float | int | str]
    if s.faults.patch_only_evaluation:
        metrics = evaluate_patches(pred_patches, truth_patches)
        diag = {"evaluated_stitched": 0, **position_summary(positions), **kept,
                **patch_statistics(pred_patches, truth_patches, structure_crop=stitched.crop)}
        return StageResult(Evaluation(metrics=metrics, bias=[]),
                           {"metrics": metrics, "diagnostics": diag_rows("evaluate", diag)})
    ev = s.evaluation
    result = evaluate_reconstruction(
        stitched, sim.object, border=ev.border, illumination_threshold=ev.illumination_threshold,
        register=ev.registration, phase_ramp=ev.phase_ramp,
        positions=positions, reference_positions=sim.positions,
        pred_patches=pred_patches, truth_patches=truth_patches)
    diag = {"evaluated_stitched": 1, **result.diagnostics, **kept}
    rows = {"metrics": result.metrics_rows, "bias": [result.bias_row], "diagnostics": diag_rows("evaluate", diag)}
    return StageResult(Evaluation(metrics=result.metrics_rows, bias=[result.bias_row]), rows)


def _predicted_patches(ctx: StageContext, task: StageTask, sim: SimulatedData, groups: Groups) -> np.ndarray:
    """The arm's patches of every group member (B, C, N, N): its prediction, or for the iterative
    arm (no prediction input) the patches of its reconstructed object at the true positions, cut
    with the simulation's interpolation."""
    if "prediction" in task.inputs:
        return ctx.read(task, "prediction", Prediction).patches
    recon = ctx.read(task, "reconstruction", IterativeReconstruction)
    cut = physics.extract_patches(recon.estimate, sim.positions, sim.probe.shape[0],
                                  interpolation=task.scenario.data.interpolation)
    return cut[groups.indices]


def stitched_positions(s: Scenario, groups: Groups) -> np.ndarray:
    """Positions (B, C, 2) at which the stitch stage places every member's patch.

    The members' absolute positions (:func:`absolute_positions`), or, with ``faults.collapse_offsets``,
    the first group's centre for every member of every group (offsets broadcast or lost before
    reassembly). The evaluate stage uses the same positions for its position diagnostics.
    """
    positions = absolute_positions(groups)
    if s.faults.collapse_offsets:
        return np.broadcast_to(groups.centers[0], positions.shape).copy()
    return positions


def stitch_weights(s: Scenario, sim: SimulatedData) -> np.ndarray | None:
    """The stitch's placement weights: the probe intensity (N, N) float for ``stitch.weights = "probe"``,
    else None (uniform)."""
    return np.abs(sim.probe) ** 2 if s.stitch.weights == "probe" else None


def _kept_share(stitched: StitchResult, n_patches: int, s: Scenario, sim: SimulatedData) -> float:
    """``stitch_kept_weight_share`` of a reconstruction (its coverage vs the weight that was placed)."""
    weights = stitch_weights(s, sim)
    start, m = crop_bounds(sim.probe.shape[0], stitched.crop)
    weight_sum = float(m * m) if weights is None else float(weights[start:start + m, start:start + m].sum())
    return placed_weight_share(stitched.coverage, n_patches, weight_sum)


def absolute_positions(groups: Groups) -> np.ndarray:
    """Positions (B, C, 2) of every member: group centre + relative coordinates (this project's sign)."""
    return groups.positions(grouping.RELATIVE_SIGN)
