"""Cluster access fails fast with one line (issue #16, item 6): an unreachable head, a port that is
not a Ray head, a wrong or missing token; ``submit`` validates first and keeps the token off plain
http to other machines; a local study that asks for more than the machine has is refused at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptycho_dist.cli import main
from ptycho_dist.errors import SpecError
from ptycho_dist.orchestration.cluster import is_loopback, split_address

REPO = Path(__file__).resolve().parents[2]
STUDY = '[study]\nname = "ca"\n[base.object]\nsize = 128\n[base.probe]\nn = 32\n[base.scan]\nn_positions = 36\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``ptycho-dist ARGS`` in a fresh process (ray.init must never run in the test process)."""
    return subprocess.run([sys.executable, "-m", "ptycho_dist.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def _our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ptycho-dist")]


@pytest.mark.parametrize(("address", "expected"), [
    ("head:6379", ("gcs", "head", 6379)), ("head", ("gcs", "head", 6379)),
    ("ray://head", ("ray", "head", 10001)), ("ray://10.0.0.1:10002", ("ray", "10.0.0.1", 10002)),
    ("http://head:8265", ("http", "head", 8265)), ("https://head", ("https", "head", 443)),
])
def test_split_address(address: str, expected: tuple[str, str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["foo://head:1", "http://:80", "head:notaport"])
def test_bad_address_is_bad_input(address: str) -> None:
    with pytest.raises(SpecError):
        split_address(address)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.1.2.3") and not is_loopback("no-such-host.invalid")


def test_unreachable_head_fails_fast_before_the_run_folder(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    t0 = time.monotonic()
    r = _cli("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "runs"), "--address",
             f"127.0.0.1:{_free_port()}")
    assert r.returncode == 1 and time.monotonic() - t0 < 30
    lines = _our_lines(r.stderr)
    assert len(lines) == 1 and "cannot reach the Ray head" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_port_that_is_not_a_ray_head_times_out(tmp_path: Path) -> None:
    """A listener that accepts and never answers (a wrong service on the port): bounded by
    --connect-timeout, one line, no run folder."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        (tmp_path / "s.toml").write_text(STUDY)
        t0 = time.monotonic()
        r = _cli("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "runs"), "--address",
                 f"127.0.0.1:{server.getsockname()[1]}", "--connect-timeout", "4")
        assert r.returncode == 1 and time.monotonic() - t0 < 40, r.stderr
        lines = _our_lines(r.stderr)
        assert len(lines) == 1 and "did not answer within 4 s" in lines[0], r.stderr
        assert not (tmp_path / "runs").exists()
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        server.close()


def test_submit_validates_the_spec_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text("[base.grouping]\ngridsize = true\n")
    assert main(["submit", "bad.toml", "--working-dir", str(tmp_path), "--address", "http://127.0.0.1:9"]) == 2
    assert "base.grouping.gridsize" in capsys.readouterr().err


def test_submit_keeps_the_token_off_plain_http(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 32)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert main(["submit", "s.toml", "--working-dir", str(tmp_path), "--address", "http://10.255.255.1:8265"]) == 2
    err = capsys.readouterr().err
    assert "over plain http" in err and err.count("\n") == 1


def test_submit_unreachable_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    assert main(["submit", "s.toml", "--working-dir", str(tmp_path), "--address",
                 f"http://127.0.0.1:{_free_port()}"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and err.count("\n") == 1


def test_local_study_asking_for_more_cpus_than_the_machine(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.toml").write_text(STUDY + "[base.resources]\nnum_cpus = 64.0\n")
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "runs"), "--num-cpus", "2"]) == 2
    err = capsys.readouterr().err
    assert "resources.num_cpus" in err and "could never start" in err
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def token_head(tmp_path: Path) -> Iterator[int]:
    """A Ray head with token authentication on 127.0.0.1 (``ray start --block``), stopped by PID."""
    port = _free_port()
    ray_bin = Path(sys.executable).parent / "ray"
    proc = subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--node-ip-address=127.0.0.1", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(3)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)  # --block stops the head's processes on SIGTERM
        proc.wait(timeout=60)


@pytest.mark.slow
def test_wrong_or_missing_token_is_one_line_at_once(token_head: int, tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    nohome = str(tmp_path / "nohome")
    cases = [({"RAY_AUTH_TOKEN": "w" * 32}, "refused this client's authentication token"),
             ({"HOME": nohome}, "refused this client's authentication token"),
             ({"HOME": nohome, "RAY_AUTH_MODE": "token"}, "no token is at hand")]
    for env, message in cases:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ptycho_dist.cli", "run", str(tmp_path / "s.toml"), "--out",
                            str(tmp_path / "runs"), "--address", f"127.0.0.1:{token_head}"],
                           capture_output=True, text=True, timeout=90, cwd=REPO, env={**base, **env})
        assert r.returncode == 1 and time.monotonic() - t0 < 15, r.stderr
        lines = _our_lines(r.stderr)
        assert len(lines) == 1 and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "runs").exists()
