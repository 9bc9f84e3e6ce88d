"""A run on object storage (``--out s3://bucket/prefix``) against a local S3: moto's server on
127.0.0.1, with its IAM checks on (so wrong credentials are refused as by AWS).

The first run is a subprocess with its own local Ray, and every process (the driver, each Ray worker)
uses its own mirror folder (``PTYCHO_DIST_MIRROR_PER_PROCESS``): nothing is shared through the file
system, the stage outputs travel through the bucket only. The later commands run in this process,
with a mirror of their own: they read what is in the bucket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner_specs import TINY

pytest.importorskip("obstore")
pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

BUCKET = "ptycho-test"
NAME = "objs"
_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
             "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ALLOW_HTTP")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server (a subprocess, stopped by its pid) with one IAM user allowed everything and
    one bucket; yields the environment that points a process at it."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # the first 3 requests (the IAM user, its policy, its key) are not authenticated; every later one is
    env = {k: v for k, v in os.environ.items() if k not in _ENV_KEYS} | {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
        anon = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "anonymous",
                "aws_secret_access_key": "anonymous"}
        iam = boto3.client("iam", **anon)
        iam.create_user(UserName="runner")
        iam.put_user_policy(UserName="runner", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="runner")["AccessKey"]
        creds = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                 "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}
        client(creds).create_bucket(Bucket=BUCKET)
        yield creds
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def client(creds: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=creds["AWS_ENDPOINT_URL"], region_name=creds["AWS_REGION"],
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])


def objects(creds: dict[str, str], prefix: str) -> dict[str, bytes]:
    c = client(creds)
    out: dict[str, bytes] = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
    return out


@pytest.fixture()
def env(s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's environment: the bucket's credentials, a cache of its own, one mirror per process."""
    for k in _ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    values = s3 | {"PTYCHO_DIST_CACHE": str(tmp_path / "cache"), "PTYCHO_DIST_MIRROR_PER_PROCESS": "1"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / f"{NAME}.toml"
    path.write_text(TINY.format(name=NAME, replicates=1))
    return path


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip() and "INFO worker.py" not in line
            and "authentication" not in line]


@pytest.mark.ray
def test_run_on_s3_reads_resumes_and_locks(env: dict[str, str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from ptycho_dist.cli import main
    from ptycho_dist.results import open as open_run

    out, run_url = f"s3://{BUCKET}/runs", f"s3://{BUCKET}/runs/{NAME}"
    spec = _spec(tmp_path)
    # 1. the run: its own process and local Ray; the driver and every worker with its own mirror
    sub_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", out,
                           "--no-progress", "--num-cpus", "2"], env=sub_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mirrors = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(mirrors) >= 2, mirrors  # the driver's and at least one worker's: nothing shared

    # 2. what is in the bucket: the run's files, committed, packed; no credentials anywhere
    stored = objects(env, f"runs/{NAME}/")
    rels = {k.removeprefix(f"runs/{NAME}/") for k in stored}
    assert "study.json" in rels and "run.lock" not in rels
    assert any(r.startswith("commits/") and r.endswith(".json") for r in rels)
    assert any(r.startswith("tables/scenarios/") and r.endswith(".parquet") for r in rels)
    assert any(r.startswith("arrays.zarr/.packs/pack-") for r in rels)
    assert any(r.startswith("arrays.zarr/.packs/index-") for r in rels)
    assert any(r.startswith("report/") for r in rels)
    loose = {r.split("/")[1] for r in rels if r.startswith("arrays.zarr/") and r.count("/") >= 3
             and not r.startswith("arrays.zarr/.packs/")}
    assert not loose, f"loose groups left beside the packs: {sorted(loose)[:5]}"
    for key, body in stored.items():
        for secret in (env["AWS_SECRET_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]):
            assert secret.encode() not in body, f"{key} holds a credential"
    summary = json.loads(stored[f"runs/{NAME}/study.json"])["summary"]
    assert summary["status"] == {"ok": 4} and summary["stages_run"], summary

    # 3. the light commands and results.open on the URL (this process: a fresh mirror, from the bucket)
    capsys.readouterr()
    assert main(["status", run_url]) == 0
    assert "4 scenarios" in capsys.readouterr().out
    assert main(["query", run_url, "select scenario_id, status from scenarios order by scenario_id",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    run = open_run(run_url)
    assert run.sql("select count(*) as n from metrics").to_pylist()[0]["n"] > 0
    assert main(["verify", run_url, "--quick"]) == 0
    assert main(["check", run_url]) == 0
    assert main(["report", run_url]) == 0

    # 4. the same run again, from this process (its own mirror, synced from the bucket): nothing is recomputed
    assert main(["run", str(spec), "--out", out, "--no-progress", "--num-cpus", "2"]) == 0
    again = json.loads(objects(env, f"runs/{NAME}/study.json")[f"runs/{NAME}/study.json"])["summary"]
    assert again["stages_run"] == {} and again["status"] == {"ok": 4}, again

    # 5. a second writer is refused while the lock object is there (its holder: this live process)
    from ptycho_dist.storage.lock import process_start

    lock = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid()),
            "since": time.time(), "heartbeat": time.time(), "token": "other-writer", "command": "test"}
    client(env).put_object(Bucket=BUCKET, Key=f"runs/{NAME}/run.lock", Body=json.dumps(lock).encode())
    before = {k: len(v) for k, v in objects(env, f"runs/{NAME}/").items()}
    capsys.readouterr()
    assert main(["run", str(spec), "--out", out, "--no-progress", "--num-cpus", "2"]) == 2
    line = _lines(capsys.readouterr().err)
    assert len(line) == 1 and "locked by another writer" in line[0], line
    assert {k: len(v) for k, v in objects(env, f"runs/{NAME}/").items()} == before
    client(env).delete_object(Bucket=BUCKET, Key=f"runs/{NAME}/run.lock")


def test_wrong_credentials_fail_with_one_line_and_write_nothing(env: dict[str, str], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ptycho_dist.cli import main

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    spec = _spec(tmp_path)
    code = main(["run", str(spec), "--out", f"s3://{BUCKET}/wrong", "--no-progress", "--num-cpus", "1"])
    err = capsys.readouterr().err
    assert code in (1, 2), err
    line = _lines(err)
    assert len(line) == 1 and "Traceback" not in err, line
    assert "storage error" in line[0] and "not-the-secret" not in line[0], line
    assert objects(env, "wrong/") == {}
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("study.json"))


def test_lock_object_create_only_heartbeat_and_takeover(env: dict[str, str]) -> None:
    from ptycho_dist.errors import RunLockedError
    from ptycho_dist.storage.remote import RemoteLock, RemoteRun

    remote = RemoteRun(f"s3://{BUCKET}/locks/one")
    key = "locks/one/run.lock"
    first = RemoteLock(remote, command="first").acquire()
    try:
        with pytest.raises(RunLockedError, match="locked by another writer"):
            RemoteLock(remote, command="second").acquire()
        etag = first.etag
        first.refresh()  # a conditional update on the ETag it wrote
        assert first.etag != etag and not first.lost and first.owned()
        # another writer replaced the object: the next heartbeat fails its condition, the lock is lost
        client(env).put_object(Bucket=BUCKET, Key=key, Body=json.dumps(
            {"host": "elsewhere", "pid": 1, "since": 0.0, "heartbeat": 0.0, "token": "x"}).encode())
        first.refresh()
        assert first.lost
    finally:
        first.release()
    assert key in objects(env, "locks/one/")  # not ours any more: left alone
    # a holder on another host, silent for long: reported as stale, taken over with --break-lock only
    with pytest.raises(RunLockedError, match="looks stale"):
        RemoteLock(remote).acquire()
    notes: list[str] = []
    taker = RemoteLock(remote, break_stale=True, notify=notes.append).acquire()
    assert notes and "took over the stale lock" in notes[0]
    assert json.loads(objects(env, "locks/one/")[key])["token"] == taker.token
    taker.release()
    assert objects(env, "locks/one/") == {}
