"""``ptycho-dist``: argument parsing only; every command calls the package API.

Exit codes: 0 success; 1 a command failed (or scenarios failed with ``--strict``); 2 bad input,
reported as one line naming the file and the field path.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from ptycho_dist import __version__
from ptycho_dist.errors import PtychoDistError, SpecError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


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


def cmd_bench(args: argparse.Namespace) -> int:
    from ptycho_dist.bench import REGISTRY, run_bench

    names = [args.name] if args.name else sorted(REGISTRY)
    if args.name and args.name not in REGISTRY:
        raise SpecError(f"bench: unknown benchmark {args.name!r}; known: {', '.join(sorted(REGISTRY))}")
    records = [r for name in names for r in run_bench(name, quick=args.quick)]
    table = Table("bench", "metric", "value", "unit", "baseline", "baseline value", "ratio", title="ptycho-dist bench")
    for r in records:
        table.add_row(r.bench, r.metric, f"{r.value:.4g}", r.unit, r.baseline, f"{r.baseline_value:.4g}", f"{r.ratio:.3g}")
    _console().print(table)
    if args.json:
        from ptycho_dist.storage.files import write_json_atomic

        write_json_atomic(args.json, [r.to_dict() for r in records])
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptycho-dist", description="Distributed batch studies for ptychography.")
    parser.add_argument("--version", action="version", version=f"ptycho-dist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="validate a study file and describe its scenarios")
    p.add_argument("spec", help="study file (TOML)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of study files")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("bench", help="run a benchmark (ratios against a baseline measured in the same run)")
    p.add_argument("name", nargs="?", help="benchmark name (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test, figures not representative)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ptycho-dist`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SpecError as exc:
        print(f"ptycho-dist {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except PtychoDistError as exc:
        print(f"ptycho-dist {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
