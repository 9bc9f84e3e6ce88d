"""Submitting a study to a Ray cluster as a job (what ``ray job submit`` does, from Python)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ray.job_submission import JobSubmissionClient

__all__ = ["submit_study"]


def submit_study(spec: str, *, address: str, out: str = "runs", working_dir: str = ".") -> str:
    """Submit ``ptycho-dist run SPEC --out OUT`` as a Ray job; returns the job id.

    ``working_dir`` is uploaded with the job (it must contain the study file). The job's driver
    attaches to the cluster through ``RAY_ADDRESS``, which Ray sets for it.
    """
    # Ray >= 2.52 clusters use token authentication by default; the job client only sends the token
    # when told to, so do that when a token is at hand and the user did not choose a mode.
    if "RAY_AUTH_MODE" not in os.environ and (
        "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").exists()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"
    client = JobSubmissionClient(address)
    entrypoint = f"ptycho-dist run {shlex.quote(spec)} --out {shlex.quote(out)} --no-progress"
    return str(client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": working_dir}))
