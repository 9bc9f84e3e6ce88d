"""Measure how a run folder survives the faults of issue #16 (concurrency, corruption, edits, kills, ENOSPC).

Usage (from the checkout, with the project's Python):

    python scripts/measure_faults.py [--only NAME ...] [--work DIR] [--json PATH]

Each scenario runs the real CLI (``python -m ptycho_dist.cli``) in subprocesses on a tiny oracle study
(4 scenarios, each ``run`` starts its own local Ray), and prints one line per observation: exit codes,
the last line of stderr, whether a traceback was printed, and the figures named in the issue. It works
on any version of the package (commands that do not exist yet are reported with their exit code), so
the same script gives the "before" and "after" figures. Nothing outside ``--work`` is touched; the only
processes it signals are the ones it started, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

TINY = """
[study]
name = "tiny"
seed = 3
replicates = 1
[base.object]
size = 96
[base.probe]
n = 32
[base.scan]
step = 8.0
n_positions = 64
[base.stitch]
crop = 16
[axes]
"grouping.gridsize" = [1, 2]
"scan.kind" = ["grid", "random"]
"""

#: injected OSError(ENOSPC): a sitecustomize that patches zarr's chunk writer (stage mode: chunks of a
#: stitch output) or pyarrow's parquet writer (driver mode) once the module is imported
SITECUSTOMIZE = '''
import errno, os, sys, importlib.abc, importlib.machinery
_MODE = os.environ.get("MEASURE_ENOSPC")

def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device (injected)")

def _patch(name, module):
    if _MODE == "stage" and name == "zarr.storage._local":
        orig = module._put
        def _put(path, value, exclusive=False):
            if "/stitch" in str(path) and "/c/" in str(path):  # arrays.zarr/stitch/<key> or .staging/stitch-<key>
                _enospc()
            return orig(path, value, exclusive)
        module._put = _put
    if _MODE == "driver" and name == "pyarrow.parquet":
        module.write_table = _enospc

class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in ("zarr.storage._local", "pyarrow.parquet"):
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        orig_exec = loader.exec_module
        def exec_module(module, _orig=orig_exec, _name=name):
            _orig(module)
            _patch(_name, module)
        loader.exec_module = exec_module
        return spec

if _MODE:
    import importlib.util
    sys.meta_path.insert(0, _Hook())
'''


def cli(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run ``ptycho-dist ARGS``; exit code, seconds, last stderr line, whether a traceback was shown."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ptycho_dist.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - t0, 1),
            "traceback": "Traceback (most recent call last)" in proc.stderr,
            "stderr": err[-1][:300] if err else "", "stderr_lines": len(err), "stdout": proc.stdout}


def brief(r: dict[str, Any]) -> str:
    tb = " TRACEBACK" if r["traceback"] else ""
    return f"rc={r['rc']}{tb} ({r['stderr_lines']} stderr lines) {r['stderr']!r}"


def sql(run: Path, query: str) -> Any:
    r = cli(["query", str(run), query, "--format", "json"])
    if r["rc"] != 0:
        return {"error": brief(r)}
    return json.loads(r["stdout"])


def broken_complete_groups(run: Path) -> list[str]:
    """Stage groups carrying the completion marker whose arrays cannot be read in full, or whose
    chunk files are missing (zarr would serve fill values silently)."""
    import numpy as np
    import zarr

    bad = []
    root = run / "arrays.zarr"
    for meta in root.glob("*/*/zarr.json"):
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except ValueError:
            bad.append(f"{meta.parent.relative_to(root)} (unreadable zarr.json)")
            continue
        if not attrs.get("ptycho_dist_complete", {}).get("complete"):
            continue
        group = meta.parent
        try:
            g = zarr.open_group(str(root), path=str(group.relative_to(root)), mode="r", zarr_format=3)
            for name in g.array_keys():
                arr = g[name]
                np.asarray(arr[...])
                n_chunks = int(np.prod([-(-s // c) for s, c in zip(arr.shape, arr.chunks)])) if arr.shape else 1
                found = sum(1 for p in (group / name / "c").rglob("*") if p.is_file()) if arr.shape else 1
                if found < n_chunks:
                    bad.append(f"{group.relative_to(root)}/{name} ({found}/{n_chunks} chunks)")
        except Exception as exc:  # noqa: BLE001 - a measurement: any failure to read is what we count
            bad.append(f"{group.relative_to(root)} ({type(exc).__name__})")
    return bad


def baseline(work: Path) -> tuple[Path, Path]:
    """One clean run of the tiny study (copied by the scenarios that damage a run)."""
    spec = work / "tiny.toml"
    spec.write_text(TINY)
    out = work / "baseline"
    if not (out / "tiny" / "study.json").exists():
        r = cli(["run", str(spec), "--out", str(out), "--no-progress"])
        if r["rc"] != 0:
            raise SystemExit(f"baseline run failed: {brief(r)}")
    return spec, out / "tiny"


def copy_run(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst / src.name)
    return dst / src.name


def s_concurrent(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    out = work / "concurrent"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", str(out), "--no-progress"]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        err = [line for line in stderr.splitlines() if line.strip()]
        failed = [line for line in stdout.splitlines() if "failed" in line][:1]
        results.append({"rc": p.returncode, "stderr": err[-1][:300] if err else "",
                        "traceback": "Traceback" in stderr, "summary": failed[0].strip()[:200] if failed else ""})
    wall = round(time.monotonic() - t0, 1)
    run = out / "tiny"
    broken = broken_complete_groups(run)
    again = cli(["run", str(spec), "--out", str(out), "--no-progress"])
    counts = sql(run, "select status, count(*) as n from scenarios group by 1 order by 1")
    return {"runs": results, "wall_s": wall, "complete_groups_with_missing_arrays": broken,
            "third_run": brief(again), "status_after_third_run": counts}


def _chunk(run: Path, stage: str, array: str) -> Path:
    return sorted(p for p in (run / "arrays.zarr" / stage).glob(f"*/{array}/c/**/*") if p.is_file())[0]


def s_flipped_chunk(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    import numpy as np
    import zarr

    run = copy_run(base, work / "flipped")
    chunk = _chunk(run, "stitch", "canvas")
    rel = "/".join(chunk.relative_to(run / "arrays.zarr").parts[:3])  # stage/key/array
    before = np.asarray(zarr.open_array(str(run / "arrays.zarr"), path=rel, mode="r", zarr_format=3)[...])
    data = bytearray(chunk.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 8):
        data[i] ^= 0xFF
    chunk.write_bytes(bytes(data))
    try:
        after = np.asarray(zarr.open_array(str(run / "arrays.zarr"), path=rel, mode="r", zarr_format=3)[...])
        read = "served silently, values differ" if not np.array_equal(before, after, equal_nan=True) else "served, values equal"
    except Exception as exc:  # noqa: BLE001
        read = f"read raises {type(exc).__name__}: {str(exc)[:120]}"
    res: dict[str, Any] = {"chunk": str(chunk.relative_to(run)), "direct_read": read}
    res["status"] = brief(cli(["status", str(run)]))
    res["report"] = brief(cli(["report", str(run)]))
    verify = cli(["verify", str(run)])
    res["verify"] = brief(verify)
    res["verify_stdout"] = verify["stdout"][-1500:]
    res["verify_repair"] = brief(cli(["verify", str(run), "--repair"]))
    try:
        fixed = np.asarray(zarr.open_array(str(run / "arrays.zarr"), path=rel, mode="r", zarr_format=3)[...])
        res["after_repair"] = "identical to before" if np.array_equal(before, fixed, equal_nan=True) else "differs"
    except Exception as exc:  # noqa: BLE001
        res["after_repair"] = f"read raises {type(exc).__name__}"
    res["verify_after_repair"] = brief(cli(["verify", str(run)]))
    return res


ROWS_SQL = {"scenarios": "select * exclude (finished_at) from scenarios order by scenario_id",
            "metrics": "select * from metrics order by all"}


def _truncated(work: Path, spec: Path, base: Path, table: str) -> dict[str, Any]:
    run = copy_run(base, work / f"truncated_{table}")
    rows_before = {t: sql(run, q) for t, q in ROWS_SQL.items()}
    part = sorted((run / "tables" / table).glob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    res: dict[str, Any] = {"part": str(part.relative_to(run))}
    res["status"] = brief(cli(["status", str(run)]))
    res["report"] = brief(cli(["report", str(run)]))
    res["query"] = brief(cli(["query", str(run), f"select count(*) from {table}"]))
    verify = cli(["verify", str(run)])
    res["verify"] = brief(verify)
    res["verify_stdout"] = verify["stdout"][-1500:]
    res["verify_repair"] = brief(cli(["verify", str(run), "--repair"]))
    res["status_after_repair"] = brief(cli(["status", str(run)]))
    after = {t: sql(run, q) for t, q in ROWS_SQL.items()}
    res["rows_identical_after_repair"] = after == rows_before
    res["run_after"] = brief(cli(["run", str(spec), "--out", str(run.parent), "--no-progress"]))
    after_run = {t: sql(run, q) for t, q in ROWS_SQL.items()}
    res["rows_identical_after_run"] = {t: after_run[t] == rows_before[t] for t in ROWS_SQL}
    return res


def s_truncated_metrics(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    return _truncated(work, spec, base, "metrics")


def s_truncated_scenarios(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    return _truncated(work, spec, base, "scenarios")


def s_edited_study(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    run = copy_run(base, work / "edited")
    edited = work / "edited.toml"
    edited.write_text(TINY + '"dose.nphotons" = [1e7]\n')
    res: dict[str, Any] = {"edit": 'axes."dose.nphotons" = [1e7] added'}
    r = cli(["run", str(edited), "--out", str(run.parent), "--no-progress"])
    res["run_edited"] = brief(r)
    res["study_json_versions"] = sorted(p.name for p in run.glob("study*.json"))
    res["scenario_parts_in_folder"] = len(list((run / "tables" / "scenarios").glob("*.parquet")))
    res["query_count_scenarios"] = sql(run, "select count(*) as n from scenarios")
    r = cli(["run", str(edited), "--out", str(run.parent), "--no-progress", "--new-version"])
    res["run_new_version"] = brief(r)
    res["study_json_versions_after"] = sorted(p.name for p in run.glob("study*.json"))
    res["query_count_after"] = sql(run, "select count(*) as n, min(dose_nphotons) as d from scenarios")
    return res


def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int(d.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _descendants(pid: int) -> set[int]:
    kids, out, stack = _children(), set(), [pid]
    while stack:
        for c in kids.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:400]
    except OSError:
        return "?"


def _short(cmdline: str) -> str:
    """The program of a command line: the script a Python runs, else the executable."""
    words = cmdline.split()
    script = next((w for w in words[1:] if w.endswith(".py")), None)
    return (script or (words[0] if words else "?")).rsplit("/", 1)[-1]


def s_driver_sigkill(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    out = work / "sigkill"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "ptycho_dist.cli", "run", str(spec), "--out", str(out), "--no-progress",
           "--max-in-flight", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, tuple[str | None, str]] = {}
    parts = out / "tiny" / "tables" / "scenarios"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        for pid in _descendants(proc.pid):
            seen.setdefault(pid, (_proc_start(pid), _name(pid)))
        if parts.exists() and list(parts.glob("*.parquet")):
            break
        time.sleep(0.1)
    for pid in _descendants(proc.pid):
        seen.setdefault(pid, (_proc_start(pid), _name(pid)))
    committed = len(list(parts.glob("*.parquet"))) if parts.exists() else 0
    t_kill = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    alive = {pid for pid, (start, _) in seen.items() if start is not None}
    gone_at: dict[int, float] = {}
    while alive and time.monotonic() - t_kill < 120:
        for pid in list(alive):
            if _proc_start(pid) != seen[pid][0]:
                gone_at[pid] = time.monotonic() - t_kill
                alive.discard(pid)
        time.sleep(0.2)
    survivors = [f"{pid} {seen[pid][1]}" for pid in alive]
    for pid in alive:  # clean up what outlived the measurement (only the PIDs recorded above)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    res: dict[str, Any] = {
        "ray_processes_recorded": len(seen), "committed_before_kill": committed,
        "last_ray_process_gone_after_s": round(max(gone_at.values()), 1) if gone_at else None,
        "survivors_after_120s": survivors,
        "lifetimes_after_kill_s": sorted(((round(t, 1), _short(seen[pid][1])) for pid, t in gone_at.items()),
                                         reverse=True),
    }
    again = cli(["run", str(spec), "--out", str(out), "--no-progress"])
    res["rerun"] = brief(again)
    res["rows_after_rerun"] = sql(out / "tiny", "select count(*) as n, count(distinct scenario_id) as d from scenarios")
    res["stages_run_on_rerun"] = json.loads((out / "tiny" / "study.json").read_text()).get("summary", {}).get(
        "stages_run")
    return res


def _enospc(work: Path, spec: Path, mode: str) -> dict[str, Any]:
    out = work / f"enospc_{mode}"
    shutil.rmtree(out, ignore_errors=True)
    hook = work / "inject"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "MEASURE_ENOSPC": mode,
           "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    r = cli(["run", str(spec), "--out", str(out), "--no-progress"], env=env)
    res: dict[str, Any] = {"run": brief(r)}
    res["status"] = brief(cli(["status", str(out / "tiny")]))
    res["failed_rows"] = sql(out / "tiny", "select failed_stage, error from scenarios where status != 'ok' limit 2")
    res["leftover_partial_files"] = len([p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial"))])
    res["recovery_run"] = brief(cli(["run", str(spec), "--out", str(out), "--no-progress"]))
    res["rows_after_recovery"] = sql(out / "tiny", "select status, count(*) as n from scenarios group by 1")
    return res


def s_enospc_stage(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    return _enospc(work, spec, "stage")


def s_enospc_driver(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    return _enospc(work, spec, "driver")


def s_umask(work: Path, spec: Path, base: Path) -> dict[str, Any]:
    out = work / "umask"
    shutil.rmtree(out, ignore_errors=True)
    script = textwrap.dedent(f"""
        import os, sys
        os.umask(0o002)
        from ptycho_dist.cli import main
        sys.exit(main(["run", {str(spec)!r}, "--out", {str(out)!r}, "--no-progress"]))
    """)
    subprocess.run([sys.executable, "-c", script], capture_output=True, check=False, timeout=600)
    modes: dict[str, int] = {}
    for p in (out / "tiny").rglob("*"):
        if p.is_file():
            modes.setdefault(oct(p.stat().st_mode & 0o777), 0)
            modes[oct(p.stat().st_mode & 0o777)] += 1
    examples = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777)
                for p in [out / "tiny" / "study.json", *sorted((out / "tiny" / "tables" / "scenarios").glob("*"))[:1]]
                if p.exists()}
    return {"umask": "0o002 (expect 0o664 files)", "file_modes": modes, "examples": examples}


SCENARIOS = {name[2:]: fn for name, fn in globals().items() if name.startswith("s_")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--work", default="/tmp/ptycho-measure-faults")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec, base = baseline(work)
    results = {}
    for name in args.only or list(SCENARIOS):
        t0 = time.monotonic()
        results[name] = SCENARIOS[name](work, spec, base)
        results[name]["scenario_seconds"] = round(time.monotonic() - t0, 1)
        print(f"== {name}")
        for k, v in results[name].items():
            print(f"   {k}: {v if not isinstance(v, str) else v.rstrip()}")
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
