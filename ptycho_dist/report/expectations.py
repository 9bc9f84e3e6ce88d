"""Evaluate a study's ``[[expect]]`` entries on a finished run; quality flags; the strict verdict.

:func:`check_run` runs every expectation's query over the run's tables (nothing is recomputed),
checks each result row against the condition (:class:`ptycho_dist.study.Condition`), replaces the
run-level ``expectations`` table with the results and returns them. A query that fails, names an
unknown table or returns no rows is *broken*: reported with its message like a failure, and never
touching any other table. ``ptycho-dist run`` calls it after the run, ``ptycho-dist check`` on
demand; :func:`verdict` is what ``--strict`` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import duckdb
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ptycho_dist.errors import SpecError
from ptycho_dist.study.flags import FLAG_MEANINGS, FLAG_RULES
from ptycho_dist.results import Results
from ptycho_dist.study import Expectation

__all__ = ["ExpectationResult", "CheckReport", "check_run", "evaluate_expectation", "study_expectations",
           "flagged_scenarios", "verdict", "render_check", "load_expectations"]

Status = Literal["passed", "failed", "broken"]

@dataclass(frozen=True)
class ExpectationResult:
    """One checked row of one expectation (a broken expectation has one result, with ``label`` "")."""

    name: str
    description: str
    query: str
    condition: str
    label: str
    value: str | None
    value_number: float | None
    passed: bool
    status: Status
    message: str


@dataclass(frozen=True)
class CheckReport:
    """The results of every expectation of a run, and its flagged scenarios."""

    results: tuple[ExpectationResult, ...]
    flagged: tuple[dict[str, Any], ...]

    @property
    def n_failed(self) -> int:
        """Results that failed or are broken."""
        return sum(1 for r in self.results if not r.passed)

    @property
    def n_expectations(self) -> int:
        return len({r.name for r in self.results})


def _python(value: Any) -> Any:
    """A query value as the Python scalar a condition compares (DECIMAL -> float, dates -> text)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, dict, bytes)):
        return str(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _label(row: dict[str, Any], value_column: str) -> str:
    return ", ".join(f"{k}={_text(_python(v))}" for k, v in row.items() if k != value_column)


def evaluate_expectation(run: Results, expectation: Expectation) -> list[ExpectationResult]:
    """Run one expectation's query on ``run`` and check every row (see the module docstring)."""
    e = expectation

    def result(label: str, value: Any, passed: bool, status: Status, message: str) -> ExpectationResult:
        return ExpectationResult(e.name, e.description, e.query, e.condition, label, _text(value),
                                 _number(value), passed, status, message)

    try:
        table = run.sql(e.query)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [result("", None, False, "broken", f"query failed: {first}")]
    if table.num_columns == 0 or table.num_rows == 0:
        return [result("", None, False, "broken", "the query returned no rows")]
    column = "value" if "value" in table.column_names else table.column_names[-1]
    condition = e.parsed
    out = []
    for row in table.to_pylist():
        value = _python(row[column])
        ok, message = condition.check(value)
        out.append(result(_label(row, column), value, ok, "passed" if ok else "failed", message))
    return out


def study_expectations(run: Results) -> tuple[Expectation, ...]:
    """The expectations recorded in the run's ``study.json``."""
    return tuple(Expectation.from_dict(e) for e in run.study()["spec"].get("expect", []))


def flagged_scenarios(run: Results) -> tuple[dict[str, Any], ...]:
    """Scenarios whose ``flags`` column is not empty: id, arm, status and flags."""
    rows = run.sql("select scenario_id, model_backend as arm, status, flags from scenarios "
                   "where coalesce(flags, '') <> '' order by scenario_id").to_pylist()
    return tuple(rows)


def check_run(run: Results, expectations: Sequence[Expectation] | None = None, *,
              write: bool = True) -> CheckReport:
    """Evaluate ``expectations`` (default: the study's) on ``run``; with ``write``, replace the
    ``expectations`` table with the results (an empty table when the study has none)."""
    exps = study_expectations(run) if expectations is None else tuple(expectations)
    results = tuple(r for e in exps for r in evaluate_expectation(run, e))
    if write:
        now = datetime.now(UTC)
        run.layout.tables.write_run_table("expectations", [asdict(r) | {"evaluated_at": now} for r in results])
    return CheckReport(results, flagged_scenarios(run))


def verdict(run: Results, report: CheckReport, *, fail_on_flags: bool = False) -> list[str]:
    """Why ``--strict`` fails the run (empty: it passes): scenarios whose status the study does not
    accept (``study.expected_status``, default ok only), failed or broken expectations, and with
    ``fail_on_flags`` the flagged scenarios."""
    accepted = set(run.study()["spec"]["study"].get("expected_status", ["ok"]))
    rows = run.sql("select status, count(*) as n from scenarios group by 1 order by 1").to_pylist()
    reasons = [f"{r['n']} scenario(s) {r['status']}" for r in rows if r["status"] not in accepted]
    recorded = int(run.sql_rows("select count(*) from scenarios")[1][0][0])
    if recorded < len(run.scenario_ids):
        reasons.append(f"{len(run.scenario_ids) - recorded} scenario(s) not recorded")
    if report.n_failed:
        names = sorted({r.name for r in report.results if not r.passed})
        reasons.append(f"{report.n_failed} expectation check(s) failed or broken: {', '.join(names)}")
    if fail_on_flags and report.flagged:
        reasons.append(f"{len(report.flagged)} scenario(s) flagged")
    return reasons


def render_check(report: CheckReport) -> Group:
    """The expectations as a terminal table, and the flagged scenarios with what the flags mean."""
    parts: list[Any] = []
    if report.results:
        # The message only where it says more than the row (a failure or a broken query), so the
        # table stays readable in an 80-column terminal; rows sorted by expectation, then group.
        table = Table("expectation", "row", "value", "condition", "result",
                      title=f"expectations ({report.n_expectations}; table `expectations`)")
        for r in sorted(report.results, key=lambda r: (r.name, r.label)):
            style = {"passed": "green", "failed": "red", "broken": "magenta"}[r.status]
            result = Text(r.status, style=style)
            if r.status != "passed" and r.message:
                result.append(f": {r.message}")
            table.add_row(r.name, r.label, r.value or "", r.condition, result)
        parts.append(table)
        failed = report.n_failed
        parts.append(Text(f"expectations: {len(report.results) - failed} passed, {failed} failed or broken",
                          style="red" if failed else "green"))
    else:
        parts.append(Text("expectations: none in this study"))
    for row in report.flagged:
        flags = [f for f in str(row["flags"]).split(",") if f]
        parts.append(Text(f"warning: scenario {row['scenario_id']} ({row['arm']}) is flagged "
                          + "; ".join(f"{f}: {FLAG_MEANINGS.get(f, f)} ({FLAG_RULES.get(f, '')})" for f in flags),
                          style="yellow"))
    return Group(*parts)


def load_expectations(path: str) -> tuple[Expectation, ...]:
    """The ``[[expect]]`` entries of a study file (``check --spec FILE``: expectations edited after
    the run, checked without recomputing)."""
    from ptycho_dist.storage.specs import load_study

    study = load_study(path)
    if not study.expectations:
        raise SpecError(f"{path}: has no [[expect]] entries")
    return study.expectations
