"""Ray remote wrappers of the stage functions, and their resource requests."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import ray

from ptycho_dist.errors import ModelError
from ptycho_dist.pipeline.base import StageContext, execute_stage
from ptycho_dist.study import RuntimeEnvSpec, Scenario, StageTask, stage_def

__all__ = ["FaultInjection", "run_stage_task", "run_stage_task_recycled", "remote_for", "task_options",
           "task_arm", "task_device", "RECYCLED_BACKENDS", "runtime_env_target"]


@dataclass(frozen=True)
class FaultInjection:
    """Test-only switch: the first task of ``stage`` kills its own worker process (once per marker).

    The marker file records that the fault was injected, so Ray's retry of the task succeeds. Set from
    the environment variable ``PTYCHO_DIST_FAULT_INJECT=<stage>:<marker path>`` by the CLI.
    """

    stage: str
    marker: str

    @classmethod
    def from_env(cls) -> FaultInjection | None:
        value = os.environ.get("PTYCHO_DIST_FAULT_INJECT")
        if not value:
            return None
        stage, _, marker = value.partition(":")
        return cls(stage, marker)

    def maybe_kill(self, stage: str) -> None:
        if stage != self.stage:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)  # a crash of the worker process: a system failure that Ray retries


def _run_stage(run_dir: str, task: dict[str, Any], fault: FaultInjection | None = None) -> dict[str, Any]:
    """Execute one stage task (:meth:`StageTask.to_dict`) in a Ray worker; the outcome as a plain dict."""
    st = StageTask.from_dict(task)
    if fault is not None:
        fault.maybe_kill(st.stage)
    from ptycho_dist.storage.remote import RemoteRun, is_remote

    device = task_device(ray.get_gpu_ids(), backend=os.environ.get("PTYCHO_DIST_BACKEND"))
    if not is_remote(run_dir):
        ctx = StageContext(Path(run_dir), distributed_train=_distributed_train, device=device)
        return dataclasses.asdict(execute_stage(ctx, st))
    # object storage: this node's mirror; the inputs downloaded first, the new output uploaded after
    remote = RemoteRun(run_dir)
    remote.fetch_outputs([node for refs in st.inputs.values() for node in refs])
    outcome = execute_stage(StageContext(remote.root, distributed_train=_distributed_train, device=device), st)
    if not outcome.cached:
        remote.upload_output(st.stage, st.key)
    return dataclasses.asdict(outcome)


#: the stage task (Ray retries it after a system failure; stage errors come back as outcomes)
run_stage_task = ray.remote(max_retries=3, retry_exceptions=False)(_run_stage)
#: the same task in a worker that exits after it (TF model stages: releases TF's GPU memory)
run_stage_task_recycled = ray.remote(max_retries=3, retry_exceptions=False, max_calls=1)(_run_stage)


def task_device(gpu_ids: list[Any], *, backend: str | None,
                cuda_available: Callable[[], bool] | None = None) -> str:
    """The compute path of a stage task: "cuda" when Ray gave it a GPU and torch sees CUDA.

    ``backend`` is the worker pool's backend (``PTYCHO_DIST_BACKEND``): a TF worker never imports
    torch (TF and PyTorch never share a process), so it stays on "numpy". ``cuda_available`` is
    called only when there is a GPU id (default: ``torch.cuda.is_available``).
    """
    from ptycho_dist.models.device import resolve_device

    if not gpu_ids or backend == "tf":
        return "numpy"
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available
    return resolve_device("auto", gpu_ids=gpu_ids, cuda_available=cuda_available())


def task_arm(task: StageTask) -> Scenario:
    """The arm whose backend worker pool and resources run ``task`` (the registry's ``runs_on``)."""
    return task.arms[1] if stage_def(task.stage).runs_on == "b" else task.arms[0]


#: backends whose model-stage workers exit after each task: TF (releases its GPU memory) and the
#: iterative arm (pty-chi sets torch's global default device and dtype in the process)
RECYCLED_BACKENDS = frozenset({"tf", "ptychi"})


def remote_for(task: StageTask) -> Any:
    """The remote function for ``task`` (workers recycled after each TF or pty-chi model-stage task)."""
    if stage_def(task.stage).resources == "model" and task_arm(task).model.backend in RECYCLED_BACKENDS:
        return run_stage_task_recycled
    return run_stage_task


def _distributed_train(data: Any, config: Any, *, seed: int, num_workers: int, backend: str) -> Any:
    """Data-parallel training of one scenario with Ray Train (torch: TorchTrainer + RayDDPStrategy)."""
    if backend != "torch":
        raise ModelError(f"resources.train_workers > 1 is implemented for the torch backend only, not {backend!r}")
    from ptycho_dist.orchestration.cluster import gpus_available
    from ptycho_dist.orchestration.ray_train import train_pinn_distributed

    return train_pinn_distributed(data, config, seed=seed, num_workers=num_workers, use_gpu=gpus_available())


def runtime_env_target(task: StageTask) -> str:
    """Which ``[runtime_env]`` entry applies to ``task``: its arm's backend for a model stage of the
    torch, tf or ptychi arm, else ``base`` (CPU stages, the oracle arm)."""
    if stage_def(task.stage).resources == "model":
        backend = task_arm(task).model.backend
        if backend in ("torch", "tf", "ptychi"):
            return backend
    return "base"


def task_options(task: StageTask, *, has_gpu: bool, runtime_env: RuntimeEnvSpec | None = None) -> dict[str, Any]:
    """Ray options of a stage task: CPUs, GPUs for model stages, retries, a per-backend worker pool.

    ``runtime_env`` (the study's ``[runtime_env]``, or the CLI's ``--runtime-env``) adds the
    environment of the task's target (:func:`runtime_env_target`); the variables ptycho-dist sets on
    model-stage workers are merged into its ``env_vars``.

    Model stages of different backends get different ``runtime_env``s, so Ray keeps separate worker
    processes for them: TensorFlow and PyTorch never share a worker, nor the PINN and pty-chi. TF
    and pty-chi workers are also recycled after each task (``max_calls=1``): TF to release GPU
    memory, pty-chi because it changes torch's global default device and dtype.
    """
    scenario = task_arm(task)
    res = scenario.resources
    opts: dict[str, Any] = {"num_cpus": res.num_cpus, "max_retries": res.max_retries}
    user = runtime_env.for_target(runtime_env_target(task)) if runtime_env is not None else None
    user_env = user.to_ray() if user is not None else {}
    if user_env:
        opts["runtime_env"] = user_env
    if stage_def(task.stage).resources == "model":
        gpus = res.num_gpus if res.num_gpus is not None else (1.0 if has_gpu else 0.0)
        opts["num_gpus"] = gpus
        backend = scenario.model.backend
        env = {"PTYCHO_DIST_BACKEND": backend, "PYTHONNOUSERSITE": "1"}
        if backend == "tf":
            env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TF's start-up banners, not warnings of ours
        opts["runtime_env"] = {**user_env, "env_vars": {**user_env.get("env_vars", {}), **env}}
        if task.stage == "train" and res.train_workers > 1:
            # the task only coordinates the Ray Train workers, which hold the CPUs/GPUs themselves
            opts.update(num_cpus=0, num_gpus=0)
    return opts
