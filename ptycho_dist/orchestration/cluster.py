"""Connecting to Ray: a local instance with explicit resources, or an existing cluster."""

from __future__ import annotations

import os
from typing import Any

import ray

__all__ = ["connect", "gpus_available", "LOCAL_OBJECT_STORE_BYTES", "split_address", "is_loopback",
           "check_reachable", "CONNECT_TIMEOUT_S"]

#: seconds to wait for a Ray head to answer (TCP probe, then ``ray.init``) before giving up
CONNECT_TIMEOUT_S = 30.0

#: default ports by address form: ``ray://`` client server, GCS (``host:port``), job/dashboard http
_DEFAULT_PORTS = {"ray": 10001, "gcs": 6379, "http": 8265, "https": 443}


def split_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a Ray address: ``ray://h:10001``, ``h:6379`` (scheme "gcs"),
    ``http(s)://h:8265``; a missing port takes the scheme's default.

    Raises
    ------
    SpecError
        For an address that is none of these forms.
    """
    from urllib.parse import urlsplit

    from ptycho_dist.errors import SpecError

    scheme, rest = ("gcs", "//" + address) if "://" not in address else (address.split("://", 1)[0], address)
    if scheme not in _DEFAULT_PORTS:
        raise SpecError(f"--address {address!r}: expected host:port, ray://host:port or http(s)://host:port")
    try:
        parts = urlsplit(rest if scheme == "gcs" else address)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise SpecError(f"--address {address!r}: {exc}") from None
    if not host:
        raise SpecError(f"--address {address!r}: no host in it")
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine's loopback interface (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def token_available() -> bool:
    """Whether a Ray auth token is at hand: ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``
    names, or ``~/.ray/auth_token``."""
    from pathlib import Path

    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def check_reachable(address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to the head named by ``address`` within ``timeout`` s.

    Raises
    ------
    ClusterError
        One line: the address, what failed, and what to check.
    """
    import socket

    from ptycho_dist.errors import ClusterError

    if address in ("auto", "local"):
        return
    scheme, host, port = split_address(address)
    if scheme in ("gcs", "ray") and os.environ.get("RAY_AUTH_MODE") == "token" and not token_available():
        # Ray aborts the process (a failed C++ check) when token mode has no token: say it first
        raise ClusterError("RAY_AUTH_MODE is token but no token is at hand: set RAY_AUTH_TOKEN, point "
                           "RAY_AUTH_TOKEN_PATH at a file holding it, or copy the head's ~/.ray/auth_token here")
    try:
        socket.create_connection((host, port), timeout=min(timeout, 10.0)).close()
    except OSError as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(f"cannot reach the Ray head at {address} ({host}:{port}): {what}; is the "
                           f"cluster up, and is {port} its {'client server' if scheme == 'ray' else 'GCS' if scheme == 'gcs' else 'dashboard'} port?") from None
    if scheme == "gcs":
        _within(timeout, address, _check_gcs_token, address, host, port)


def _check_gcs_token(address: str, host: str, port: int) -> None:
    """Ask the head's GCS once, so that a missing or wrong token is one line at once instead of
    ``ray.init`` retrying for its own timeout. Uses Ray's GCS client (``ray._raylet.GcsClient``, not
    a public API: when it is missing or changed, ``ray.init`` reports instead)."""
    from ptycho_dist.errors import ClusterError

    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError
    except ImportError:  # pragma: no cover - another Ray version
        return
    try:
        GcsClient(address=f"{host}:{port}")
    except AuthenticationError:
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        raise ClusterError(f"the Ray head at {address} refused this client's authentication token "
                           f"(RAY_AUTH_MODE is {mode}): set RAY_AUTH_TOKEN, or copy the head's "
                           "~/.ray/auth_token to this machine") from None
    except Exception:  # noqa: BLE001 - anything else is ray.init's to report
        return


def _within(timeout: float, address: str, fn: Any, /, *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` in a daemon thread, given up after ``timeout`` s: a port that accepts
    TCP but is not a Ray head, or a head that never answers, would otherwise block for minutes.
    Exceptions of ``fn`` are re-raised here."""
    import threading

    from ptycho_dist.errors import ClusterError

    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="ptycho-dist-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ClusterError(f"the Ray head at {address} did not answer within {timeout:g} s "
                           "(is that its GCS or ray:// port? --connect-timeout changes the wait)")
    if "error" in box:
        raise box["error"]


def _init(**kwargs: Any) -> None:
    """``ray.init(**kwargs)`` in this (the main) thread, so that Ray installs its signal handlers;
    its errors as one line. The wait is bounded before: :func:`check_reachable` has asked the head's
    GCS within the timeout."""
    from ptycho_dist.errors import ClusterError

    address = str(kwargs.get("address"))
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever ray.init raised, as one line
        text = " ".join(str(exc).split())
        if any(w in text.lower() for w in ("token", "unauthenticated", "authentication", "permission denied")):
            raise ClusterError(f"the Ray head at {address} refused this client's authentication token: "
                               "set RAY_AUTH_TOKEN or copy the head's ~/.ray/auth_token here") from None
        raise ClusterError(f"cannot connect to the Ray head at {address}: {type(exc).__name__}: {text[:300]}") from None


#: a modest object store for local runs: stage tasks exchange only small records, arrays go to zarr
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024


def connect(address: str | None = None, *, num_cpus: int | None = None,
            timeout: float = CONNECT_TIMEOUT_S) -> bool:
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
        check_reachable(address, timeout=timeout)
        _init(address=address, runtime_env=runtime_env, log_to_driver=True)
        return False
    # address="local": always a new instance, never a `ray start` cluster that happens to run here
    ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES, runtime_env=runtime_env, log_to_driver=True)
    return True


def gpus_available() -> bool:
    """True when the connected cluster has at least one GPU."""
    return float(ray.cluster_resources().get("GPU", 0)) > 0
