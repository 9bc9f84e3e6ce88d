"""Data-parallel training of one PINN with Ray Train (PyTorch Lightning + DDP).

:func:`train_pinn_distributed` runs the same Lightning module, data split and normalization as
:func:`ptycho_dist.models.torch.train.train_pinn` on ``num_workers`` Ray Train workers
(``TorchTrainer`` with ``RayDDPStrategy`` and ``RayLightningEnvironment``; gloo on CPU, NCCL on
GPU) and returns one :class:`~ptycho_dist.models.TrainResult` whose weights come from
rank 0 (DDP keeps the ranks' weights identical).

Data parallelism: the training split is sharded with a ``DistributedSampler`` seeded with the run's
seed (the last shard is padded with repeated groups when the split does not divide evenly); every
rank evaluates the whole validation split, so the validation loss is exact.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from ptycho_dist.errors import ModelError, SpecError
from ptycho_dist.models import PinnConfig, TrainData, TrainResult

__all__ = ["train_pinn_distributed"]


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Body run by every Ray Train worker (imports torch/Lightning inside the worker)."""
    import ray
    import ray.train

    from ptycho_dist.models.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # before lightning imports torchvision (through torchmetrics)
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer
    from torch.utils.data.distributed import DistributedSampler

    from ptycho_dist.models.torch import train as tt

    data: TrainData = ray.get(loop_config["data"])
    config = PinnConfig.from_dict(loop_config["config"])
    seed, use_gpu = int(loop_config["seed"]), bool(loop_config["use_gpu"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    prepared = tt.prepare_data(data, config, seed=seed)
    module = tt.make_module(data, config, seed=seed, has_val=prepared.val is not None)
    sampler: DistributedSampler[Any] = DistributedSampler(prepared.train, num_replicas=world, rank=rank, shuffle=True,
                                 seed=seed)
    train = tt.make_loader(prepared.train, config, seed=seed, shuffle=False, sampler=sampler)
    val = None if prepared.val is None else tt.make_loader(prepared.val, config, seed=seed,
                                                           shuffle=False)
    trainer = tt.make_trainer(config, accelerator="gpu" if use_gpu else "cpu", devices="auto",
                              strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()],
                              use_distributed_sampler=False)
    trainer = prepare_trainer(trainer)
    seconds = tt.fit(trainer, module, train, val, cpu=not use_gpu)
    result = tt.result_of(module, prepared, seconds)
    if rank == 0:
        ray.get(loop_config["box"].put.remote(_result_to_dict(result)))
    last = result.history[-1] if result.history else {}
    ray.train.report({"rank": rank, "train_loss": last.get("train_loss"),
                      "val_loss": last.get("val_loss"), "diverged_epoch": result.diverged_epoch})


class _ResultBox:
    """Driver-owned actor that receives rank 0's result (weights never go through logs or files)."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None

    def put(self, value: dict[str, Any]) -> None:
        self.value = value

    def get(self) -> dict[str, Any] | None:
        return self.value


def _result_to_dict(result: TrainResult) -> dict[str, Any]:
    return {"weights": result.weights, "norm_factor": result.norm_factor,
            "log_scale": result.log_scale, "history": result.history,
            "diverged_epoch": result.diverged_epoch, "seconds": result.seconds,
            "n_train": result.n_train, "n_val": result.n_val}


def _dict_to_result(metrics: dict[str, Any]) -> TrainResult:
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in metrics["weights"].items()}
    return TrainResult(weights=weights, norm_factor=float(metrics["norm_factor"]),
                       log_scale=float(metrics["log_scale"]), history=list(metrics["history"]),
                       diverged_epoch=metrics["diverged_epoch"], seconds=float(metrics["seconds"]),
                       n_train=int(metrics["n_train"]), n_val=int(metrics["n_val"]))


def train_pinn_distributed(data: TrainData, config: PinnConfig, *, seed: int, num_workers: int,
                           use_gpu: bool = False, cpus_per_worker: float = 1.0,
                           storage_path: str | None = None) -> TrainResult:
    """Train one PINN data-parallel on ``num_workers`` Ray Train workers (Ray must be initialized).

    Parameters
    ----------
    data : TrainData
        Put once into the object store and read by every worker.
    config : PinnConfig
        ``batch_size`` is per worker (the effective batch is ``num_workers * batch_size``).
    seed : int
        Same meaning as in :func:`~ptycho_dist.models.torch.train.train_pinn`.
    num_workers : int
        Number of DDP ranks (one GPU each when ``use_gpu``).
    use_gpu : bool
        NCCL on GPUs when True, gloo on CPUs when False.
    cpus_per_worker : float
        CPUs reserved per worker.
    storage_path : str or None
        Where Ray Train keeps its run state (shared storage on a multi-node cluster); None uses a
        temporary directory removed afterwards. No checkpoint is written: rank 0 hands its result
        to a small driver-owned actor, through the object store.

    Returns
    -------
    TrainResult
        From rank 0.

    Raises
    ------
    SpecError
        If ``num_workers`` < 1.
    ModelError
        If the Ray Train run fails (the worker's error is chained).
    """
    if num_workers < 1:
        raise SpecError(f"num_workers must be >= 1, got {num_workers}")
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    box: Any = ray.remote(num_cpus=0)(_ResultBox).remote()  # an actor handle (Ray's stubs type it loosely)
    loop_config = {"data": ray.put(data), "config": config.to_dict(), "seed": int(seed),
                   "use_gpu": bool(use_gpu), "box": box}
    scaling = ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                            resources_per_worker={"CPU": cpus_per_worker})
    with tempfile.TemporaryDirectory(prefix="ptycho-dist-raytrain-") as tmp:
        trainer = TorchTrainer(
            _worker_loop, train_loop_config=loop_config, scaling_config=scaling,
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RunConfig(name=f"pinn-seed{seed}", storage_path=storage_path or tmp))
        try:
            trainer.fit()
            value: dict[str, Any] | None = ray.get(box.get.remote())
        except Exception as exc:  # ray.train.TrainingFailedError and friends
            raise ModelError(f"Ray Train run failed with {num_workers} workers: {exc}") from exc
        finally:
            ray.kill(box)
    if value is None:
        raise ModelError("Ray Train run ended without a result from rank 0")
    return _dict_to_result(value)
