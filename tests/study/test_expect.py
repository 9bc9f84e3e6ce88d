"""[[expect]] entries: condition parsing and checks (pure), validation in study files, the schema."""

from __future__ import annotations

import math

import pytest

from ptycho_dist.errors import SpecError
from ptycho_dist.study import Study, parse_condition, parse_study, study_json_schema


@pytest.mark.parametrize(("condition", "value", "ok"), [
    ("> 1", 2, True), ("> 1", 1, False), (">= 1", 1.0, True), ("< 0.5", 0.2, True), ("<= 0.5", 0.6, False),
    ("= 1", 1, True), ("== 1", 1.0, True), ("!= 1", 2, True), ("= 1", 2, False),
    ("between 0.9 and 1.1", 1.05, True), ("between 0.9 and 1.1", 1.2, False), ("between 0.9 and 1.1", 0.9, True),
    ("is true", True, True), ("is true", False, False), ("is false", False, True), ("is true", 1, False),
    ("is null", None, True), ("is not null", 0, True), ("is finite", 3.0, True), ("is finite", math.inf, False),
    ("is nan", math.nan, True), ("is nan", 1.0, False),
    ("= true", True, True), ("= false", True, False), ("= 'ok'", "ok", True), ("!= 'ok'", "diverged", True),
    # NaN and NULL fail every numeric comparison, also the negated one
    ("> 1", math.nan, False), ("!= 1", math.nan, False), ("< 1", None, False), ("is not null", None, False),
])
def test_condition_checks(condition: str, value: object, ok: bool) -> None:
    passed, message = parse_condition(condition).check(value)
    assert passed is ok
    assert condition.split()[0] in message or "satisf" in message


def test_condition_refuses_values_of_the_wrong_kind() -> None:
    # a boolean is not a number and a string is not a boolean: reported, never silently true
    for condition, value in (("> 1", True), ("is finite", "x"), ("= 'ok'", 1.0), ("< 2", "1")):
        passed, message = parse_condition(condition).check(value)
        assert not passed, (condition, value, message)


@pytest.mark.parametrize(("text", "part"), [
    ("~ 3", "is not one of"), ("between 3 and 1", "low bound"), ("> inf", "not a finite number"),
    ("> nan", "not a finite number"), ("> abc", "not a number"), ("", "is not one of"), ("is maybe", "is not one of"),
])
def test_bad_conditions_name_the_forms(text: str, part: str) -> None:
    with pytest.raises(ValueError, match=part):
        parse_condition(text)


STUDY = """
[study]
name = "e"
expected_status = ["ok", "diverged"]
[[expect]]
name = "good"
query = "select 1 as value"
condition = "= 1"
description = "one is one"
"""


def test_study_keeps_its_expectations_through_json() -> None:
    study = parse_study(STUDY, source="e.toml")
    assert [e.name for e in study.expectations] == ["good"]
    assert study.meta.expected_status == ("ok", "diverged")
    again = Study.from_dict(study.to_dict(), source="e.toml")
    assert again.expectations == study.expectations and again.meta == study.meta


@pytest.mark.parametrize(("extra", "where"), [
    ('[[expect]]\nname = "good"\nquery = "select 2"\ncondition = "= 2"\n', "expect: expectation name 'good' is used more than once"),
    ('[[expect]]\nname = "bad"\nquery = "select 2"\ncondition = "roughly 2"\n', "expect[1].condition: condition 'roughly 2'"),
    ('[[expect]]\nname = "x"\nquery = ""\ncondition = "= 2"\n', "expect[1].query"),
    ('[[expect]]\nname = "x y"\nquery = "select 1"\ncondition = "= 2"\n', "expect[1].name"),
    ('[[expect]]\nname = "x"\nquery = "select 1"\ncondition = "= 2"\nwhen = 3\n', "expect[1]: unknown key 'when'"),
])
def test_bad_expectations_are_spec_errors_naming_the_field(extra: str, where: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_study(STUDY + extra, source="e.toml")
    assert str(err.value).startswith("e.toml: ") and where in str(err.value), str(err.value)


def test_expected_status_is_checked() -> None:
    with pytest.raises(SpecError, match="study.expected_status"):
        parse_study('[study]\nexpected_status = ["fine"]\n', source="e.toml")


def test_schema_covers_expect() -> None:
    schema = study_json_schema()
    expect = schema["properties"]["expect"]
    assert expect["type"] == "array"
    entry = schema["$defs"]["Expectation"]
    assert set(entry["required"]) == {"name", "query", "condition"}
    assert "between a and b" in entry["properties"]["condition"]["description"]
    assert "FaultsSpec" in schema["$defs"]
