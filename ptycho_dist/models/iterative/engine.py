"""One pty-chi reconstruction of a whole object from counts and scan positions.

:func:`reconstruct` imports torch and pty-chi when called. ``PtychographyTask.build()`` sets torch's
global default device and dtype, so the pipeline runs it in a worker process of its own that is
recycled after the task (``ptycho_dist.orchestration.tasks``); called in-process it restores both
afterwards. Everything pty-chi prints or logs while it runs (progress bar, "Epoch: …, Loss: …",
warnings) is captured and returned as text for the stage log, never written to the terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho_dist.errors import ModelError
from ptycho_dist.models.iterative.conventions import (
    OBJECT_PAD,
    from_ptychi_positions,
    ptychi_probe,
    to_ptychi_positions,
)
from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable
from ptycho_dist.study.spec import IterativeSpec

__all__ = ["IterativeResult", "reconstruct", "DEFAULT_BATCH_SIZE", "DM_CHUNK", "PIE_ALPHA", "engine_versions"]

#: positions per update when ``iterative.batch_size`` is None (capped at the number of positions)
DEFAULT_BATCH_SIZE = 32
#: scan points per chunk of DM's exit-wave update (pty-chi's default, 1, is a Python loop per point)
DM_CHUNK = 128
#: object step alpha of the PIE family when ``iterative.step_size`` is None: the full step of ePIE
#: (Maiden & Rodenburg 2009) and rPIE (Maiden et al. 2017, alpha in [0, 1]); PIE keeps pty-chi's 0.1
PIE_ALPHA = {"rpie": 1.0, "epie": 1.0}
_OPTIONS = {"lsqml": "LSQMLOptions", "rpie": "RPIEOptions", "epie": "EPIEOptions", "pie": "PIEOptions",
            "dm": "DMOptions"}


@dataclass(frozen=True)
class IterativeResult:
    """What one reconstruction returns.

    Attributes
    ----------
    object : ndarray, complex64, shape (H, W)
        The object on this project's pixel grid (the engine's padding cropped off).
    probe : ndarray, complex64, shape (modes, N, N)
        The final probe in the data's normalization (engine probe times N / s).
    positions : ndarray, float64, shape (P, 2)
        Final probe centres ``(x, y)`` in object pixels.
    history : list of dict
        One row per iteration: ``iteration``, ``data_error`` (pty-chi's displayed loss, the mean
        squared difference of predicted and measured amplitudes sqrt(counts) over pixels and
        positions).
    seconds : float
        Wall time of building and running the engine.
    cpu_seconds : float
        CPU time of this process (all its threads) over the same span: on a busy machine a
        steadier measure of the work than the wall time.
    device : str
        ``cpu`` or ``cuda``.
    log : str
        Everything the engine printed, logged or warned.
    diverged_iteration : int or None
        First iteration whose data error was not finite (or the last one when the object is not
        finite at the end); None when the run stayed finite.
    """

    object: np.ndarray
    probe: np.ndarray
    positions: np.ndarray
    history: list[dict[str, Any]]
    seconds: float
    cpu_seconds: float
    device: str
    log: str
    diverged_iteration: int | None


@contextlib.contextmanager
def _captured(buffer: io.StringIO) -> Iterator[list[warnings.WarningMessage]]:
    """Send stdout, stderr, the root logger and warnings to ``buffer`` (restored afterwards)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = [logging.StreamHandler(buffer)]
    root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        root.handlers, level = saved
        root.setLevel(level)


def engine_versions() -> dict[str, str]:
    """Versions of pty-chi, torch and torchvision (for bundle-like records)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ptychi", "torch", "torchvision"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _options(api: Any, spec: IterativeSpec, *, n_positions: int, seed: int, gpu: bool,
             probe_power: float) -> Any:
    """The pty-chi options object of ``spec`` (docs/conventions.md, "The iterative arm")."""
    opts = getattr(api, _OPTIONS[spec.algorithm])()
    opts.data_options.fft_shift = True
    r = opts.reconstructor_options
    r.num_epochs = spec.iterations
    r.default_device = api.Devices.GPU if gpu else api.Devices.CPU
    r.random_seed = seed
    r.displayed_loss_function = api.LossFunctions.MSE_SQRT
    if spec.algorithm == "dm":
        r.chunk_length = min(n_positions, DM_CHUNK)  # pty-chi's default 1 loops position by position
    else:
        r.batch_size = min(spec.batch_size or DEFAULT_BATCH_SIZE, n_positions)
    if spec.algorithm == "lsqml":
        r.noise_model = api.NoiseModels.POISSON if spec.noise_model == "poisson" else api.NoiseModels.GAUSSIAN
        r.rescale_probe_intensity_in_first_epoch = False  # the probe power is known (below)
        if spec.step_size is not None:
            opts.object_options.optimal_step_size_scaler = spec.step_size
    elif spec.algorithm in ("rpie", "epie", "pie"):
        default = PIE_ALPHA.get(spec.algorithm, opts.object_options.alpha)
        opts.object_options.alpha = spec.step_size if spec.step_size is not None else default
    o = opts.object_options
    o.optimizable = True
    o.patch_interpolation_method = (api.PatchInterpolationMethods.BILINEAR if spec.subpixel == "bilinear"
                                    else api.PatchInterpolationMethods.FOURIER)
    # A refined probe and the object share a scale (P O = (a P)(O / a)). The probe's total intensity,
    # the incident flux, is taken as known (a direct-beam measurement gives it): pty-chi's power
    # constraint holds the probe at that power after every iteration and scales the object inversely.
    # Its default alternative (object mean transmission 1) would bias every object that absorbs.
    o.remove_object_probe_ambiguity.enabled = False
    opts.probe_options.optimizable = spec.refine_probe
    if spec.refine_probe:
        opts.probe_options.power_constraint.enabled = True
        opts.probe_options.power_constraint.probe_power = probe_power
        opts.probe_options.power_constraint.scale_object = True
    pos = opts.probe_position_options
    pos.optimizable = spec.position_correction
    if spec.position_correction:
        pos.optimization_plan.start = max(1, spec.iterations // 10)
    return opts


def _initial_probe(probe: np.ndarray, spec: IterativeSpec, scale: float) -> Any:
    """The engine's starting probe (1, modes, N, N) as a torch tensor (extra modes: pty-chi's
    Hermite orthogonalization of the first, 2 % of the energy each)."""
    import torch

    first = ptychi_probe(probe, scale)
    stack = np.zeros((1, spec.probe_modes) + first.shape, np.complex64)
    stack[0, :] = first
    tensor = torch.from_numpy(stack)
    if spec.probe_modes > 1:
        from ptychi.utils import orthogonalize_initial_probe

        tensor = orthogonalize_initial_probe(tensor)
    return tensor


def reconstruct(counts: np.ndarray, positions: np.ndarray, probe: np.ndarray, *, object_shape: tuple[int, int],
                scale: float, spec: IterativeSpec, seed: int, device: str | None = None,
                probe_energy: float | None = None) -> IterativeResult:
    """Reconstruct the object from ``counts`` with pty-chi.

    Parameters
    ----------
    counts : ndarray, float, shape (P, N, N)
        Counts, zero frequency at pixel (N//2, N//2) (this project's data: intensities, not
        amplitudes).
    positions : ndarray, float, shape (P, 2)
        Probe centres ``(x, y)`` in object pixels that the engine starts from.
    probe : ndarray, complex, shape (N, N)
        Starting probe in the data's normalization (the true one, a perturbed one, a given one).
    object_shape : (H, W)
        The object's pixel grid; the engine's buffer adds :data:`OBJECT_PAD` on every side and
        starts at 1 + 0j.
    scale : float
        The dose scale s of the data (counts = s^2 |F(P O)|^2 with the orthonormal F).
    spec : IterativeSpec
    seed : int
        pty-chi's random seed (batch order).
    device : {"cpu", "cuda"}, optional
        None: ``cuda`` when torch sees a GPU (in a Ray task: when the task was given one).
    probe_energy : float, optional
        The known total intensity sum |P|^2 of the probe in the data's normalization (the incident
        flux), held by pty-chi's probe power constraint while the probe is refined; None: the
        starting probe's.

    Returns
    -------
    IterativeResult
    """
    c = np.asarray(counts, dtype=np.float32)
    if c.ndim != 3 or c.shape[1:] != np.shape(probe)[-2:] or len(positions) != len(c):
        raise ModelError(f"counts (P, N, N) must match the probe (N, N) and the positions (P, 2), got "
                         f"{c.shape}, {np.shape(probe)} and {np.shape(positions)}")
    if not np.all(np.isfinite(c)) or float(c.min()) < 0:
        raise ModelError("counts must be finite and non-negative")
    buffer = io.StringIO()
    with _captured(buffer) as caught:
        ensure_torchvision_importable()
        import torch

        import ptychi.api as api
        from ptychi.api.task import PtychographyTask

        saved = torch.get_default_dtype(), torch.get_default_device()
        gpu = (device == "cuda") if device is not None else torch.cuda.is_available()
        h, w = object_shape
        py, px = to_ptychi_positions(positions, object_shape)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            energy = float(np.sum(np.abs(probe) ** 2)) if probe_energy is None else probe_energy
            power = energy * (scale / c.shape[-1]) ** 2  # the engine probe is P s / N
            opts = _options(api, spec, n_positions=len(c), seed=seed, gpu=gpu, probe_power=power)
            task = PtychographyTask(
                opts, diffraction_data=c, object_data=np.ones((1, h + 2 * OBJECT_PAD, w + 2 * OBJECT_PAD), np.complex64),
                probe_data=_initial_probe(probe, spec, scale), probe_position_x_px=px, probe_position_y_px=py)
            task.run()
            obj = np.asarray(task.get_data_to_cpu("object", as_numpy=True))[0]
            engine_probe = np.asarray(task.get_data_to_cpu("probe", as_numpy=True))[0]
            final = from_ptychi_positions(np.asarray(task.get_probe_positions_y(as_numpy=True), np.float64),
                                          np.asarray(task.get_probe_positions_x(as_numpy=True), np.float64),
                                          object_shape)
            if task.reconstructor is None:  # pragma: no cover - built by the constructor
                raise ModelError("pty-chi built no reconstructor")
            table = task.reconstructor.loss_tracker.table
            losses = [float(v) for v in table["loss"]]
        finally:
            torch.set_default_dtype(saved[0])
            torch.set_default_device(saved[1])
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    log = buffer.getvalue() + "".join(f"{m.category.__name__}: {m.message}\n" for m in caught)
    cropped = obj[OBJECT_PAD:OBJECT_PAD + h, OBJECT_PAD:OBJECT_PAD + w].astype(np.complex64)
    history = [{"iteration": i, "data_error": v} for i, v in enumerate(losses)]
    diverged = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if diverged is None and not np.all(np.isfinite(cropped)):
        diverged = len(losses) - 1
    return IterativeResult(object=cropped, probe=(engine_probe * (c.shape[-1] / scale)).astype(np.complex64),
                           positions=final, history=history, seconds=seconds, cpu_seconds=cpu_seconds,
                           device="cuda" if gpu else "cpu",
                           log=log, diverged_iteration=diverged)
