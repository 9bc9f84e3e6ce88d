"""Submitting a study to a Ray cluster as a job (what ``ray job submit`` does, from Python)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ptycho_dist.errors import ClusterError, SpecError
from ptycho_dist.orchestration.cluster import CONNECT_TIMEOUT_S, check_reachable, is_loopback, split_address

__all__ = ["submit_study"]


def submit_study(spec: str, *, address: str, out: str = "runs", working_dir: str = ".",
                 timeout: float = CONNECT_TIMEOUT_S, allow_insecure_token: bool = False) -> str:
    """Submit ``ptycho-dist run SPEC --out OUT`` as a Ray job; returns the job id.

    ``working_dir`` is uploaded with the job (it must contain the study file). The job's driver
    attaches to the cluster through ``RAY_ADDRESS``, which Ray sets for it. The job server is probed
    first (``timeout``); the auth token is sent only to a loopback address or over https unless
    ``allow_insecure_token``.

    Raises
    ------
    SpecError
        For an address that is not http(s)://host:port, or a token that would go out over plain
        http to another machine.
    ClusterError
        When the job server cannot be reached, or refuses the token.
    """
    scheme, host, _ = split_address(address)
    if scheme not in ("http", "https"):
        raise SpecError(f"--address {address!r}: submit talks to the job server: http(s)://host:8265")
    token = "RAY_AUTH_TOKEN" in os.environ or (Path.home() / ".ray" / "auth_token").exists()
    if token and os.environ.get("RAY_AUTH_MODE", "token") != "disabled" and scheme == "http" \
            and not is_loopback(host) and not allow_insecure_token:
        raise SpecError(f"--address {address!r}: would send the Ray auth token to {host} over plain http; "
                        "use https, an SSH tunnel (ssh -L 8265:localhost:8265 head, then "
                        "http://127.0.0.1:8265), or --allow-insecure-token on a trusted network")
    check_reachable(address, timeout=timeout)
    # Ray >= 2.52 clusters use token authentication by default; the job client only sends the token
    # when told to, so do that when a token is at hand and the user did not choose a mode.
    if "RAY_AUTH_MODE" not in os.environ and token:
        os.environ["RAY_AUTH_MODE"] = "token"
    from ray.job_submission import JobSubmissionClient

    entrypoint = f"ptycho-dist run {shlex.quote(spec)} --out {shlex.quote(out)} --no-progress"
    try:
        client = JobSubmissionClient(address)
        return str(client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": working_dir}))
    except (RuntimeError, ConnectionError, OSError, ValueError) as exc:
        text = " ".join(str(exc).split())
        if any(w in text.lower() for w in ("401", "403", "unauthorized", "token", "authentication")):
            raise ClusterError(f"the job server at {address} refused the auth token: set RAY_AUTH_TOKEN "
                               "or copy the head's ~/.ray/auth_token here") from None
        raise ClusterError(f"submitting to {address} failed: {text[:300]}") from None
