"""The committed JSON Schema is generated from the spec models and must not go stale."""

from __future__ import annotations

import json
from pathlib import Path

from ptycho_dist.study import axis_paths, study_json_schema

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "study.schema.json"


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == study_json_schema(), (
        "schemas/study.schema.json is stale: regenerate with `ptycho-dist schema > schemas/study.schema.json`"
    )


def test_schema_lists_axis_paths_and_descriptions() -> None:
    schema = study_json_schema()
    names = schema["properties"]["axes"]["propertyNames"]["enum"]
    assert "grouping.gridsize" in names and "dose.nphotons" in names and "zip" in names
    assert set(axis_paths()) < set(names)
    dose = schema["$defs"]["DoseSpec"]["properties"]["nphotons"]
    assert dose["exclusiveMinimum"] == 0 and "photon" in dose["description"]


def test_every_field_has_a_description() -> None:
    schema = study_json_schema()
    missing = [f"{name}.{field}" for name, d in schema["$defs"].items()
               for field, prop in d.get("properties", {}).items() if not prop.get("description")]
    assert missing == []
