"""``ptycho-dist``: argument parsing only; every command calls the package API.

Exit codes: 0 success; 1 a command failed (or scenarios failed with ``--strict``); 2 bad input,
reported as one line naming the file and the field path. :data:`EXIT_CODES` maps exception classes
to exit codes in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ptycho_dist import __version__
from ptycho_dist.errors import (
    ClusterError,
    CorruptDataError,
    ModelError,
    PtychoDistError,
    RunLockedError,
    SpecError,
    StorageError,
)

__all__ = ["main", "build_parser", "EXIT_CODES", "exit_code"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: the default wait for a Ray head (ptycho_dist.orchestration.cluster.CONNECT_TIMEOUT_S; not imported
#: from there so that the light commands do not import Ray)
CONNECT_TIMEOUT_S = 30.0

#: exception class -> (exit code, label); the first class the exception is an instance of wins.
#: Bad input (a spec, an argument, a folder that is not a run, a folder another writer holds, a spec
#: that differs from the folder's) is 2 with a one-line message; every other error of ours is 1
#: ("error: ...", a damaged run names the damaged file); an OS error (a full disk) is 1 with one line
#: too (:func:`main`); anything else is a bug and keeps its traceback.
EXIT_CODES: tuple[tuple[type[PtychoDistError], int, str], ...] = (
    (SpecError, EXIT_BAD_INPUT, ""),
    (RunLockedError, EXIT_BAD_INPUT, ""),
    (CorruptDataError, EXIT_FAILED, "damaged run: "),
    (StorageError, EXIT_FAILED, "storage error: "),
    (ClusterError, EXIT_FAILED, "cluster: "),
    (ModelError, EXIT_FAILED, "model error: "),
    (PtychoDistError, EXIT_FAILED, "error: "),
)


def exit_code(exc: PtychoDistError) -> tuple[int, str]:
    """(exit code, message prefix) of ``exc`` from :data:`EXIT_CODES`."""
    for cls, code, label in EXIT_CODES:
        if isinstance(exc, cls):
            return code, label
    return EXIT_FAILED, "error: "  # pragma: no cover - PtychoDistError closes the table


def _console() -> Console:
    return Console(soft_wrap=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from ptycho_dist.storage.specs import load_study
    from ptycho_dist.study.describe import describe_study

    study = load_study(args.spec)
    _console().print(describe_study(study))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from ptycho_dist.study import study_json_schema

    sys.stdout.write(json.dumps(study_json_schema(), indent=2) + "\n")
    return EXIT_OK


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    from ptycho_dist.bench.gpu import NoGpuError, run_gpu

    try:
        doc = run_gpu(device=args.device, quick=args.quick)
    except NoGpuError as exc:
        _console().print(f"[bold red]no GPU[/bold red]: {exc}")
        return 2
    table = Table("section", "metric", "value", "unit", "baseline", "baseline value", "ratio",
                  title=f"ptycho-dist bench gpu (device {doc['device']}, GPU {doc['gpu_name'] or 'none'})")
    for section in ("simulate", "stitch", "train", "infer"):
        for r in doc[section]:
            table.add_row(section, r["metric"], f"{r['value']:.4g}", r["unit"], r["baseline"],
                          f"{r['baseline_value']:.4g}", f"{r['ratio']:.3g}")
    _console().print(table)
    if not doc["gpu"]:
        _console().print("[bold yellow]not a GPU run[/bold yellow]: the torch paths ran on the CPU "
                         "(smoke test); these are not GPU figures")
    out = args.json or "bench_gpu.json"
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    _console().print(f"wrote {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ptycho_dist.bench import REGISTRY, run_bench

    if args.name == "gpu":
        return cmd_bench_gpu(args)
    names = [args.name] if args.name else sorted(REGISTRY)
    if args.name and args.name not in REGISTRY:
        raise SpecError(f"bench: unknown benchmark {args.name!r}; known: {', '.join(sorted(REGISTRY))}")
    records = [r for name in names for r in run_bench(name, quick=args.quick, scenarios=args.scenarios if name == "runner" else None,
                                                            query_only=args.query_only or None if name == "runner" else None)]
    table = Table("bench", "metric", "value", "unit", "baseline", "baseline value", "ratio", title="ptycho-dist bench")
    for r in records:
        table.add_row(r.bench, r.metric, f"{r.value:.4g}", r.unit, r.baseline, f"{r.baseline_value:.4g}", f"{r.ratio:.3g}")
    _console().print(table)
    if args.json:
        from ptycho_dist.storage.files import write_json_atomic

        write_json_atomic(args.json, [r.to_dict() for r in records])
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ptycho_dist.orchestration.driver import RunOptions, run_study
    from ptycho_dist.orchestration.tasks import FaultInjection
    from ptycho_dist.report.summary import render_run_summary
    from ptycho_dist.storage.specs import load_runtime_env, load_study

    from ptycho_dist.storage.remote import RemoteRun, normalize_url

    study = load_study(args.spec)
    runtime_env = None
    for arg in args.runtime_env or ():
        one = load_runtime_env(arg)
        runtime_env = one if runtime_env is None else runtime_env.merged(one)
    url = normalize_url(args.out)
    options = RunOptions(runtime_env=runtime_env, out=url if url is not None else Path(args.out), address=args.address,
                         max_in_flight=args.max_in_flight,
                         num_cpus=args.num_cpus, progress=not args.no_progress,
                         fault_injection=FaultInjection.from_env(), break_lock=args.break_lock,
                         new_version=args.new_version, connect_timeout=args.connect_timeout)
    summary = run_study(study, options)
    from ptycho_dist.report.expectations import check_run, render_check, verdict
    from ptycho_dist.report.html import write_report
    from ptycho_dist.results import open as open_run

    run = open_run(summary.run_dir)
    report = check_run(run)  # before the summary and the report, which show its results
    console = _console()
    console.print(render_run_summary(summary))
    console.print(render_check(report))
    try:
        console.print(f"report: {write_report(run)}")
    except StorageError as exc:  # an output the report shows is damaged or was removed: the run is recorded
        print(f"ptycho-dist run: report not written: {exc}", file=sys.stderr)
    if summary.remote_url is not None:  # the expectations' rows and the report, uploaded
        RemoteRun(summary.remote_url).push()
        console.print(f"run on object storage: {summary.remote_url} (local mirror {summary.run_dir})")
    return _strict_exit(args, verdict(run, report, fail_on_flags=args.fail_on_flags))


def _strict_exit(args: argparse.Namespace, reasons: list[str]) -> int:
    """Exit 1 under ``--strict`` (or ``--fail-on-flags``) when :func:`verdict` gave reasons."""
    if not (args.strict or args.fail_on_flags) or not reasons:
        return EXIT_OK
    print(f"ptycho-dist {args.command}: --strict: " + "; ".join(reasons), file=sys.stderr)
    return EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    from ptycho_dist.report.expectations import check_run, load_expectations, render_check, verdict
    from ptycho_dist.results import open as open_run

    run = _open(args.run_dir, open_run)
    expectations = load_expectations(args.spec) if args.spec else None
    report = check_run(run, expectations)
    _push_if_remote(args.run_dir)  # check records its results in the run's tables
    _console().print(render_check(report))
    return _strict_exit(args, verdict(run, report, fail_on_flags=args.fail_on_flags))


def cmd_submit(args: argparse.Namespace) -> int:
    from ptycho_dist.orchestration.submit import submit_study

    from ptycho_dist.storage.specs import load_study

    spec_path = Path(args.working_dir) / args.spec
    load_study(spec_path)  # a spec that would not run is refused here, before anything is uploaded
    job_id = submit_study(args.spec, address=args.address, out=args.out, working_dir=args.working_dir,
                          timeout=args.connect_timeout, allow_insecure_token=args.allow_insecure_token)
    _console().print(f"submitted job {job_id} to {args.address}; follow it with: ray job logs --follow {job_id}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from ptycho_dist.report.text import render_status
    from ptycho_dist.results import open as open_run

    run = _open(args.run_dir, open_run)
    run.require_intact()  # a damaged part: one line naming it, exit 1
    _console().print(render_status(run))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ptycho_dist.report.html import write_report
    from ptycho_dist.results import open as open_run

    run = _open(args.run_dir, open_run)
    run.require_intact()
    written = write_report(run)
    if _push_if_remote(args.run_dir):
        written = f"{written} (uploaded to {args.run_dir.rstrip('/')}/report/)"
    _console().print(f"report: {written}")
    return EXIT_OK


def _push_if_remote(run_dir: str) -> bool:
    """Upload what a command wrote into the mirror of a run on object storage (True when remote)."""
    from ptycho_dist.storage.remote import RemoteRun, is_remote

    if not is_remote(run_dir):
        return False
    RemoteRun(run_dir).push()
    return True


def cmd_verify(args: argparse.Namespace) -> int:
    from ptycho_dist.orchestration.driver import RunOptions
    from ptycho_dist.orchestration.repair import repair_run, verify_run
    from ptycho_dist.report.integrity import render_repair, render_verify
    from ptycho_dist.results import open as open_run

    from ptycho_dist.storage.lock import read_lock

    from ptycho_dist.storage.remote import is_remote

    run = _open(args.run_dir, open_run)  # a folder that is not a run: exit 2
    if is_remote(args.run_dir):
        if args.repair:
            raise SpecError(f"{args.run_dir}: --repair of a run on object storage is not supported; "
                            "re-run the study (it recomputes what is missing) or repair a local copy")
        args.run_dir = str(run.layout.root)  # the mirror, synced down by open
    console = _console()
    holder = read_lock(args.run_dir)
    if holder is not None and holder.stale_reason() is None and not args.repair:
        print(f"ptycho-dist verify: {args.run_dir} is being written ({holder.describe()}): parts still being "
              "committed may show as missing", file=sys.stderr)
    if not args.repair:
        report = verify_run(args.run_dir, deep=not args.quick)
        console.print(render_verify(report))
        return EXIT_OK if report.ok else EXIT_FAILED
    result = repair_run(args.run_dir, RunOptions(num_cpus=args.num_cpus, progress=not args.no_progress,
                                                 break_lock=args.break_lock))
    if result.expectations_damaged:
        from ptycho_dist.report.expectations import check_run

        check_run(open_run(args.run_dir))
    console.print(render_repair(result))
    return EXIT_OK if result.after.ok else EXIT_FAILED


def _open(run_dir: str, opener: Callable[[str], Any]) -> Any:
    """Open a run directory; a folder that is not a run is bad input (exit 2)."""
    try:
        return opener(run_dir)
    except CorruptDataError:  # a run whose study.json is damaged: exit 1, naming it
        raise
    except StorageError as exc:
        raise SpecError(str(exc)) from None


def cmd_query(args: argparse.Namespace) -> int:
    from ptycho_dist.report.text import format_rows
    from ptycho_dist.results import open as open_run

    run = _open(args.run_dir, open_run)
    try:
        columns, rows = run.sql_rows(args.sql)  # a damaged part: CorruptDataError naming it (exit 1)
    except duckdb_error() as exc:
        first = str(exc).splitlines()[0]
        if "disabled by configuration" in first:  # the lock-down of results.lock_down
            first = f"refused: {first.split(' - ')[0].replace('Permission Error: ', '')}: queries read only the run's own files"
        raise SpecError(first) from None
    sys.stdout.write(format_rows(columns, rows, args.format))
    return EXIT_OK


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


def _strict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a scenario's status is not accepted (study.expected_status, default ok), "
                        "a scenario is missing, or an expectation failed or is broken")
    p.add_argument("--fail-on-flags", action="store_true",
                   help="--strict, and also exit 1 when a scenario has a quality flag (scenarios.flags)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptycho-dist", description="Distributed batch studies for ptychography.")
    parser.add_argument("--version", action="version", version=f"ptycho-dist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="validate a study file and describe its scenarios")
    p.add_argument("spec", help="study file (TOML)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run (or resume) a study on a local Ray or a cluster")
    p.add_argument("spec", help="study file (TOML)")
    p.add_argument("--out", default="runs", help="output folder; the run goes to OUT/<study name>/ (default: runs)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--max-in-flight", type=int, default=None, help="most stage tasks submitted at once (default: 8 x CPUs)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="S",
                   help=f"seconds to wait for the Ray head of --address (default: {CONNECT_TIMEOUT_S:g})")
    _strict_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress bars")
    p.add_argument("--runtime-env", action="append", metavar="BACKEND=FILE.json",
                   help="a Ray runtime_env (JSON) for the tasks of BACKEND (base, torch, tf, ptychi); replaces "
                        "the study's [runtime_env.BACKEND]; repeatable")
    p.add_argument("--break-lock", action="store_true",
                   help="take over the run folder's lock when it looks stale by its heartbeat (a run on another "
                        "host that stopped); a dead run on this host is taken over without it, a live one never")
    p.add_argument("--new-version", action="store_true",
                   help="the spec differs from the one the folder holds: record it as the folder's next version "
                        "(the previous study.json is kept as study.v<N>.json; tables show the new version only)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="re-evaluate a finished run's [[expect]] entries (nothing is recomputed)")
    p.add_argument("run_dir", help="run directory (OUT/<study name>)")
    p.add_argument("--spec", default=None, help="take the [[expect]] entries from this study file instead of "
                   "the run's study.json (expectations edited after the run)")
    _strict_arguments(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("submit", help="submit a study as a Ray job (ray job submit) to a cluster")
    p.add_argument("spec", help="study file (TOML), relative to the working dir")
    p.add_argument("--address", required=True, help="Ray dashboard/job address, e.g. http://head:8265")
    p.add_argument("--out", default="runs", help="output folder as seen from the cluster (shared FS)")
    p.add_argument("--working-dir", default=".", help="folder uploaded with the job (default: .)")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="S",
                   help=f"seconds to wait for the job server (default: {CONNECT_TIMEOUT_S:g})")
    p.add_argument("--allow-insecure-token", action="store_true",
                   help="send the Ray auth token to a non-local address over plain http (refused otherwise: "
                        "use https, an SSH tunnel to localhost, or this flag on a trusted network)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="per-stage counts and failures of a run")
    p.add_argument("run_dir", help="run directory (OUT/<study name>)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("query", help="SQL over a run's tables (DuckDB; every table is a view)")
    p.add_argument("run_dir", help="run directory (OUT/<study name>)")
    p.add_argument("sql", help="e.g. \"select status, count(*) from scenarios group by 1\"")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("verify", help="check every stored array, model bundle and table part of a run "
                       "(checksums); --repair recomputes or rebuilds what is damaged")
    p.add_argument("run_dir", help="run directory (OUT/<study name>)")
    p.add_argument("--repair", action="store_true",
                   help="remove damaged stage outputs and recompute those the results need (local Ray only when "
                        "something must be computed), and rebuild damaged table parts from the stored stage rows")
    p.add_argument("--quick", action="store_true", help="sizes and markers only, no reading of the data")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray a repair starts (default: all)")
    p.add_argument("--break-lock", action="store_true", help="as for run")
    p.add_argument("--no-progress", action="store_true", help="no live progress bars during a repair")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="write the static HTML report of a run (RUN_DIR/report/index.html)")
    p.add_argument("run_dir", help="run directory (OUT/<study name>)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("schema", help="print the JSON Schema of study files")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("bench", help="run a benchmark (ratios against a baseline measured in the same run)")
    p.add_argument("name", nargs="?", help="benchmark name (default: all; 'gpu' runs every GPU benchmark into one JSON)")
    p.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test, figures not representative)")
    p.add_argument("--scenarios", type=int, metavar="N", help="runner: number of tiny scenarios (default 1000)")
    p.add_argument("--query-only", action="store_true",
                   help="runner: time query and status only, on the tables of N scenarios written without Ray")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="bench gpu only: the torch device (auto = CUDA, refused without a GPU; cpu = smoke test)")
    p.set_defaults(func=cmd_bench)
    return parser


def prefer_token_auth(address: str | None) -> None:
    """Before Ray is imported: a client of a cluster (``--address`` or ``RAY_ADDRESS``) sends the auth
    token only when ``RAY_AUTH_MODE=token``; without it, a token-authenticated head (Ray >= 2.52's
    default) refuses it after ~20 s of retries. Set it when a token is at hand and the user chose no
    mode. Ray reads the mode when it is imported, so this must run first."""
    import os

    if not (address or os.environ.get("RAY_ADDRESS")) or "RAY_AUTH_MODE" in os.environ:
        return
    if "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ or \
            (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ptycho-dist`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if args.command == "run":
        prefer_token_auth(args.address)
    try:
        return func(args)
    except PtychoDistError as exc:
        code, label = exit_code(exc)
        print(f"ptycho-dist {args.command}: {label}{exc}", file=sys.stderr)
        return code
    except OSError as exc:  # a full disk, a permission: one line; what was written is complete or absent
        hint = ("; nothing half-written is kept: fix it and run the same command again to resume"
                if args.command == "run" else "")
        print(f"ptycho-dist {args.command}: OS error: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
