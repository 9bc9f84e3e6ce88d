"""JSON Schema of study files, generated from the spec models (kept in ``schemas/study.schema.json``)."""

from __future__ import annotations

from typing import Any

from ptycho_dist.study.study import StudyFile, axis_paths

__all__ = ["study_json_schema"]

SCHEMA_ID = "https://ptycho-dist.invalid/schemas/study.schema.json"


def study_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a study file, with the sweepable axis paths listed."""
    schema = StudyFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "ptycho_dist study file"
    axes = schema["properties"]["axes"]
    axes["propertyNames"] = {"enum": [*axis_paths(), "zip", "exclude"]}
    return schema
