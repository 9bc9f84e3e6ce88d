"""Connecting to Ray: a local instance with explicit resources, or an existing cluster."""

from __future__ import annotations

import os

import ray

__all__ = ["connect", "gpus_available", "LOCAL_OBJECT_STORE_BYTES"]

#: a modest object store for local runs: stage tasks exchange only small records, arrays go to zarr
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Initialize Ray; returns True when this call started a local instance (the caller shuts it down).

    ``address`` (or ``RAY_ADDRESS``, set e.g. inside ``ray job submit``) attaches to a running cluster;
    otherwise a local instance starts with explicit CPUs, a modest object store and no dashboard. Ray's
    default token authentication needs nothing more: a local instance generates its token, and clients
    of a ``ray start`` head read ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN``).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"env_vars": {"PYTHONNOUSERSITE": "1"}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        return False
    # address="local": always a new instance, never a `ray start` cluster that happens to run here
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES, runtime_env=runtime_env, log_to_driver=True)
    return True


def gpus_available() -> bool:
    """True when the connected cluster has at least one GPU."""
    return float(ray.cluster_resources().get("GPU", 0)) > 0
