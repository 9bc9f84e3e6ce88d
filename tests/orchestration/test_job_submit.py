"""`ray job submit` of a study to a local head started by this test (`ray start --head --block`).

Stopping: the `--block` process stops every Ray process it started when it receives SIGTERM; the test
sends it SIGTERM by PID (and, if it lingers, SIGKILLs the process group it created) — nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner_specs import TINY

pytestmark = pytest.mark.ray

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_dashboard(address: str, env: dict[str, str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError(f"dashboard at {address} did not come up: {probe.stderr[-2000:]}")


def test_ray_job_submit_runs_a_study(tmp_path: Path) -> None:
    gcs, dash, agent, agent_grpc, renv, metrics, client = (_free_port() for _ in range(7))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--port", str(gcs), "--num-cpus", "2",
         "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
         "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
         "--runtime-env-agent-port", str(renv), "--metrics-export-port", str(metrics),
         "--ray-client-server-port", str(client), "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"http://127.0.0.1:{dash}"
        _wait_for_dashboard(address, env)
        work = tmp_path / "job"
        work.mkdir()
        (work / "tiny.toml").write_text(TINY.format(name="submitted", replicates=1))
        out = tmp_path / "runs"
        cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(work), "--",
               "ptycho-dist", "run", "tiny.toml", "--out", str(out), "--no-progress", "--strict"]
        for _ in range(30):  # the job agent comes up a little after the dashboard
            job = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, check=False)
            if "No available agent" not in job.stderr:
                break
            time.sleep(2)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout + job.stderr
        from ptycho_dist.results import open as open_run

        run = open_run(out / "submitted")
        assert run.sql("select count(*) as n from scenarios where status = 'ok'").column("n").to_pylist() == [4]
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if Ray ignores SIGTERM
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
