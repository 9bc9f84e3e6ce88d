"""Expectations of a study (``[[expect]]``): an SQL query over the run's tables and a condition.

A study file states what its run must show::

    [[expect]]
    name = "collapse_is_caught"
    description = "the faulty arm stitches every patch at one position"
    query = '''select s.faults_collapse_offsets as collapsed, d.value
               from scenarios s join diagnostics d using (scenario_id)
               where d.name = 'n_distinct_positions' and s.faults_collapse_offsets'''
    condition = "= 1"

The query runs on the finished run (every table is a DuckDB view, as in ``ptycho-dist query``).
Each row of its result is one check: the value is the column named ``value`` if there is one,
else the last column; the other columns name the row (``collapsed=true``). A query that returns no
rows, fails, or names an unknown table makes the expectation *broken*, which is reported like a
failure, with its message.

Conditions (:func:`parse_condition`): ``> x``, ``>= x``, ``< x``, ``<= x``, ``= x`` (or ``== x``),
``!= x`` with a number ``x`` (``=`` and ``!=`` also take ``true``, ``false`` or a quoted string),
``between a and b`` (inclusive), ``is true``, ``is false``, ``is null``, ``is not null``,
``is finite``, ``is nan``. A NaN or NULL value fails every numeric comparison.

Pure: parsing and checking values only (running the queries is the report layer's).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, field_validator

from ptycho_dist.study.spec import SpecModel

__all__ = ["Condition", "Expectation", "parse_condition", "CONDITION_FORMS"]

#: the condition forms, for error messages and docs
CONDITION_FORMS = ("> x", ">= x", "< x", "<= x", "= x", "!= x", "between a and b", "is true", "is false",
                   "is null", "is not null", "is finite", "is nan")

Op = Literal[">", ">=", "<", "<=", "=", "!=", "between", "is"]
_COMPARE = re.compile(r"^(>=|<=|==|!=|=|>|<)\s*(.+)$")
_BETWEEN = re.compile(r"^between\s+(\S+)\s+and\s+(\S+)$", re.IGNORECASE)
_IS = re.compile(r"^is\s+(true|false|null|not\s+null|finite|nan)$", re.IGNORECASE)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _literal(text: str) -> float | bool | str:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return _number(text)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return str(value).lower()
    return "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Condition:
    """A parsed condition (see the module docstring).

    Attributes
    ----------
    op : str
        ``>``, ``>=``, ``<``, ``<=``, ``=``, ``!=``, ``between`` or ``is``.
    operands : tuple
        The number(s), boolean or string compared with; for ``is``, the one word (``true``, ``false``,
        ``null``, ``not null``, ``finite``, ``nan``).
    text : str
        The condition as written.
    """

    op: Op
    operands: tuple[Any, ...]
    text: str

    def check(self, value: Any) -> tuple[bool, str]:
        """Whether ``value`` satisfies the condition, and a one-line message saying why.

        ``value`` is a query result: None (SQL NULL), bool, int, float or str (numpy scalars are
        taken as their Python values).
        """
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()
        shown = _fmt(value)
        ok = self._holds(value)
        if ok is None:
            return False, f"{shown} cannot be compared: expected {self.text}"
        return ok, f"{shown} {'satisfies' if ok else 'does not satisfy'} {self.text!r}"

    def _holds(self, value: Any) -> bool | None:
        if self.op == "is":
            word = self.operands[0]
            if word == "null":
                return value is None
            if word == "not null":
                return value is not None
            if word in ("true", "false"):
                return isinstance(value, bool) and value == (word == "true")
            if value is None or isinstance(value, (bool, str)):
                return False
            return math.isfinite(value) if word == "finite" else math.isnan(value)
        if self.op in ("=", "!=") and not isinstance(self.operands[0], float):
            target = self.operands[0]
            if value is None or type(value) is not type(target) and not (
                    isinstance(target, bool) and isinstance(value, int) and value in (0, 1)):
                return None if value is not None else False
            same = bool(value) == target if isinstance(target, bool) else value == target
            return same if self.op == "=" else not same
        if value is None:
            return False
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        v = float(value)
        if math.isnan(v):
            return False
        if self.op == "between":
            return self.operands[0] <= v <= self.operands[1]
        x = self.operands[0]
        return {">": v > x, ">=": v >= x, "<": v < x, "<=": v <= x, "=": v == x, "!=": v != x}[self.op]


def parse_condition(text: str) -> Condition:
    """Parse a condition (module docstring).

    Raises
    ------
    ValueError
        Naming the forms a condition may take.
    """
    s = " ".join(str(text).split())
    try:
        if m := _IS.match(s):
            return Condition("is", (" ".join(m.group(1).lower().split()),), s)
        if m := _BETWEEN.match(s):
            low, high = _number(m.group(1)), _number(m.group(2))
            if low > high:
                raise ValueError(f"between {low:g} and {high:g}: the low bound is above the high one")
            return Condition("between", (low, high), s)
        if m := _COMPARE.match(s):
            op = "=" if m.group(1) == "==" else m.group(1)
            operand = _literal(m.group(2).strip()) if op in ("=", "!=") else _number(m.group(2).strip())
            return Condition(op, (operand,), s)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"condition {s!r}: {exc}") from None
    raise ValueError(f"condition {s!r} is not one of: {', '.join(CONDITION_FORMS)}")


class Expectation(SpecModel):
    """One ``[[expect]]`` entry of a study file: a query over the run's tables and a condition."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    """Name of the expectation (letters, digits, '_', '.', '-'), unique in the study."""
    query: str = Field(min_length=1, max_length=20000)
    """SQL over the run's tables (DuckDB; the views of ``ptycho-dist query``). Each result row is one
    check: its value is the column ``value`` if present, else the last column; the other columns
    label the row."""
    condition: str = Field(min_length=1, json_schema_extra={"examples": list(CONDITION_FORMS)})
    """What every row's value must satisfy: ``> x``, ``>= x``, ``< x``, ``<= x``, ``= x``, ``!= x``,
    ``between a and b``, ``is true``, ``is false``, ``is null``, ``is not null``, ``is finite``,
    ``is nan``."""
    description: str = ""
    """What the expectation shows, in words (the summary and the report print it)."""

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_condition(value)
        return value

    @property
    def parsed(self) -> Condition:
        """The parsed :attr:`condition`."""
        return parse_condition(self.condition)

    @classmethod
    def make(cls, name: str, query: str, condition: str, description: str = "") -> Self:
        """Build an expectation in code (validated like one read from a file)."""
        return cls(name=name, query=query, condition=condition, description=description)
