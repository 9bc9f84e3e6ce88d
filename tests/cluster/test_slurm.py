"""cluster/slurm/ptycho-dist.sbatch on a real single-node SLURM started by this test.

The test installs Debian's slurm-wlm and munge when they are missing (apt, as root), writes a
slurm.conf for this host (node line from ``slurmd -C``, addresses 127.0.0.1, ports picked free),
starts munged, slurmctld and slurmd in the foreground as its own subprocesses, submits the script
with a tiny oracle study, waits for the job, reads the run's tables and stops what it started by PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_specs import TINY

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "slurm" / "ptycho-dist.sbatch"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ensure_slurm() -> None:
    if all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and apt-get (as root) is not available to install slurm-wlm and munge")
    got = subprocess.run(["apt-get", "install", "-y", "slurm-wlm", "munge"], capture_output=True, text=True,
                         timeout=900, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if got.returncode != 0:
        pytest.skip(f"apt-get install slurm-wlm munge failed: {got.stderr[-500:]}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):  # slurmd, slurmctld, munged: the reverse of their start
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:  # pragma: no cover - only if a daemon ignores SIGTERM
                p.kill()
                p.wait(timeout=30)


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[dict[str, str]]:
    _ensure_slurm()
    base = tmp_path / "slurm"
    for d in ("munge", "state", "spool", "log"):
        (base / d).mkdir(parents=True)
    (base / "munge").chmod(0o700)
    key = base / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = base / "munge" / "munge.socket"
    procs: list[subprocess.Popen[bytes]] = []
    log = open(base / "log" / "daemons.log", "wb")
    try:
        procs.append(subprocess.Popen(
            ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={base / 'munge' / 'munged.pid'}", f"--seed-file={base / 'munge' / 'seed'}",
             f"--log-file={base / 'log' / 'munged.log'}"], stdout=log, stderr=log))
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, (base / "log" / "munged.log").read_text()
            time.sleep(0.2)
        host = socket.gethostname().split(".")[0]
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        node = re.sub(r"^NodeName=\S+", f"NodeName={host} NodeAddr=127.0.0.1", node)
        conf = base / "slurm.conf"
        conf.write_text("\n".join([
            "ClusterName=ptychotest", f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={base / 'state'}", f"SlurmdSpoolDir={base / 'spool'}",
            f"SlurmctldPidFile={base / 'slurmctld.pid'}", f"SlurmdPidFile={base / 'slurmd.pid'}",
            f"SlurmctldLogFile={base / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={base / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/pgid", "TaskPlugin=task/none", "MpiDefault=none", "SwitchType=switch/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill", "MinJobAge=600", "SlurmctldTimeout=30", "SlurmdTimeout=30",
            node, "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        env = {**os.environ, "SLURM_CONF": str(conf)}
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env, stdout=log, stderr=log))
        procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf)], env=env, stdout=log, stderr=log))
        deadline = time.monotonic() + 90
        while True:
            info = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False)
            if info.returncode == 0 and info.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join(f.read_text()[-1500:] for f in (base / "log").glob("*.log"))
                pytest.fail(f"SLURM did not come up (sinfo: {info.stdout!r} {info.stderr!r}):\n{logs}")
            time.sleep(1)
        yield env
    finally:
        _stop(procs)
        log.close()


def test_sbatch_runs_a_study_and_stops_its_ray(slurm: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.toml").write_text(TINY.format(name="slurm_tiny", replicates=1))
    # this machine has no GPU: the copy drops only the GPU request of the template
    script = work / "ptycho-dist.sbatch"
    text = SCRIPT.read_text()
    cpu_text = re.sub(r"^#SBATCH --gpus-per-task=\S+\n", "", text, flags=re.MULTILINE)
    assert text.count("\n") - cpu_text.count("\n") == 1
    script.write_text(cpu_text)
    gcs = _free_port()
    ports = {"--dashboard-agent-listen-port": _free_port(), "--dashboard-agent-grpc-port": _free_port(),
             "--runtime-env-agent-port": _free_port(), "--metrics-export-port": _free_port(),
             "--ray-client-server-port": _free_port(), "--node-manager-port": _free_port(),
             "--object-manager-port": _free_port()}
    ray_args = " ".join(f"{k}={v}" for k, v in ports.items()) + " --num-cpus=2 --include-dashboard=false"
    env = {**slurm, "PTYCHO_DIST_VENV": str(BIN.parent), "PTYCHO_DIST_HEAD_IP": "127.0.0.1",
           "PTYCHO_DIST_RAY_PORT": str(gcs), "PTYCHO_DIST_RAY_ARGS": ray_args,
           "PTYCHO_DIST_JOB_DIR": str(work / "job"), "PTYCHO_DIST_READY_S": "180",
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()
    sub = subprocess.run(["sbatch", "--parsable", "--nodes=1", f"--chdir={work}", f"--output={work}/job.out",
                          str(script), "tiny.toml", str(work / "runs"), "--strict"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    state = ""
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            show = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True, check=False)
            m = re.search(r"JobState=(\S+)", show.stdout)
            state = m.group(1) if m else ""
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
                break
            time.sleep(3)
    finally:
        if state not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            subprocess.run(["scancel", job], env=env, check=False)
    out = (work / "job.out").read_text() if (work / "job.out").exists() else ""
    print(f"SLURM job {job}: {state} after {time.monotonic() - t0:.0f} s\n{out[-3000:]}")
    assert state == "COMPLETED", out[-4000:]
    assert "Ray nodes ready at 127.0.0.1" in out
    assert "run finished with exit code 0" in out
    from ptycho_dist.results import open as open_run

    run = open_run(work / "runs" / "slurm_tiny")
    rows = run.sql("select status, count(*) as n from scenarios group by 1").to_pylist()
    assert rows == [{"status": "ok", "n": 4}]
    # the job's Ray is gone (stopped by its PIDs), and so is its token
    deadline = time.monotonic() + 30
    while _listening(gcs) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _listening(gcs)
    assert not (work / "job" / "auth_token").exists()
    assert (work / "job").stat().st_mode & 0o077 == 0


def test_script_waits_authenticates_and_stops_by_pid_without_slurm() -> None:
    """Fast checks of the script itself (no SLURM needed): valid bash, no fixed sleeps before the
    driver, no `ray stop`, a per-job token file read through RAY_AUTH_TOKEN_PATH, the PIDs it keeps."""
    text = SCRIPT.read_text()
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    code = [line.split("#", 1)[0] for line in text.splitlines() if not line.lstrip().startswith("#")]
    body = "\n".join(code)
    assert "ray stop" not in body
    assert not re.search(r"\bsleep\s+[1-9][0-9]", body)
    assert "ray start --head --block" in body and body.count("pids+=($!)") == 2
    assert 'kill -TERM "$pid"' in body and "trap stop_ray EXIT" in body
    assert "RAY_AUTH_TOKEN_PATH=" in body and "chmod 600" in body and "umask 077" in body
    assert "wait_for_nodes" in body and "ready_s" in body
