"""Turn pydantic validation errors into one-line messages naming the file and the dotted field path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["format_loc", "model_at", "describe_error", "first_error_message"]


def format_loc(loc: Sequence[str | int]) -> str:
    """``("base", "grouping", "gridsize")`` -> ``base.grouping.gridsize``; ints become ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def model_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found by walking ``loc`` down the fields of ``model`` (None if not a model)."""
    for part in loc:
        if model is None or isinstance(part, int) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_error(err: Mapping[str, Any], root: type[BaseModel] | None) -> tuple[tuple[str | int, ...], str]:
    """(location, message) for one pydantic error dict; unknown keys get a "did you mean"."""
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        options = list(parent.model_fields) if parent is not None else []
        return loc[:-1], f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), options)}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] not in ("missing", "value_error") and "input" in err:
        msg += f", got {err['input']!r}"
    return loc, msg


def first_error_message(
    exc: ValidationError, *, source: str, root: type[BaseModel] | None, prefix: Sequence[str | int] = ()
) -> str:
    """One line: ``<source>: <path>: <message>`` for the first error, plus a count of the others."""
    errors = exc.errors()
    loc, msg = describe_error(errors[0], root)
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{source}: {format_loc(tuple(prefix) + loc)}: {msg}{more}"
