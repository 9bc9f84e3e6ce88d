"""Study files: ``[study]`` metadata, a ``[base]`` scenario, ``[axes]`` to sweep; grid expansion.

A study file (TOML)::

    [study]
    name = "dose_ladder"
    seed = 7
    replicates = 2

    [base.probe]
    n = 64

    [axes]
    "dose.nphotons" = [1e4, 1e6, 1e9]          # one axis: a dotted field path -> list of values
    "grouping.gridsize" = [1, 2]
    exclude = [{ "grouping.gridsize" = 2, "dose.nphotons" = 1e4 }]   # drop matching scenarios

    [[axes.zip]]                                # values taken together, not crossed
    "scan.kind" = ["grid", "random"]
    "scan.n_positions" = [400, 400]

Scenarios are the cartesian product of the axes (file order, then zip groups), each repeated
``replicates`` times (the replicate index is innermost), minus the excluded ones.
"""

from __future__ import annotations

import copy
import typing
import itertools
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, ValidationError, field_validator

from ptycho_dist.errors import SpecError
from ptycho_dist.study.expect import Expectation
from ptycho_dist.study.messages import describe_error, first_error_message, format_loc
from ptycho_dist.study.spec import RuntimeEnvSpec, Scenario, SpecModel

__all__ = ["StudyMeta", "StudyFile", "Axis", "Study", "parse_study", "study_from_dict", "axis_paths"]

_RESERVED_AXES = ("zip", "exclude")


class StudyMeta(SpecModel):
    """The ``[study]`` table."""

    name: str = Field("study", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Study name; the run is written to ``<out>/<name>/`` (letters, digits, '_', '.', '-')."""
    seed: int = Field(0, ge=0)
    """Study seed: every random draw derives its seed from it and its stage key."""
    replicates: int = Field(1, ge=1, le=10000)
    """Repetitions of every grid point with independent simulation draws."""
    description: str = ""
    """Free text shown in the report."""
    expected_status: tuple[Literal["ok", "diverged", "failed"], ...] = Field(("ok",), min_length=1)
    """Scenario statuses that ``run --strict`` and ``check --strict`` accept (default: ok only). A
    study that shows a divergence on purpose lists "diverged" and states it with an expectation."""


class StudyFile(SpecModel):
    """A whole study file as written (axes are checked separately, field path by field path)."""

    study: StudyMeta = StudyMeta()
    """Metadata."""
    base: Scenario = Scenario()
    """The scenario every grid point starts from (``seed`` and ``replicate`` are set by the study)."""
    axes: dict[str, Any] = {}
    """Dotted field path -> list of values; ``zip`` (list of tables of equal-length lists);
    ``exclude`` (list of tables path -> value)."""
    expect: tuple[Expectation, ...] = ()
    """``[[expect]]`` entries: what the run's tables must show (evaluated after the run, by
    ``ptycho-dist check`` and in the report)."""
    runtime_env: RuntimeEnvSpec = RuntimeEnvSpec()
    """``[runtime_env.<backend>]``: a Ray runtime environment per backend (``base``, ``torch``,
    ``tf``, ``ptychi``), applied to that backend's tasks. How the study runs, not what it computes:
    it is not part of the scenarios, their ids or their stage keys."""

    @field_validator("expect")
    @classmethod
    def _unique_names(cls, expect: tuple[Expectation, ...]) -> tuple[Expectation, ...]:
        names = [e.name for e in expect]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"expectation name {dup[0]!r} is used more than once")
        return expect

    @field_validator("base")
    @classmethod
    def _no_seed_in_base(cls, base: Scenario) -> Scenario:
        if base.seed != 0 or base.replicate != 0:
            raise ValueError("seed and replicate are set by [study] (seed, replicates), not in [base]")
        return base


@dataclass(frozen=True)
class Axis:
    """One swept dimension: one path, or several zipped paths, and their values."""

    paths: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    @property
    def label(self) -> str:
        return " + ".join(self.paths)


@dataclass(frozen=True)
class Study:
    """A validated, expanded study."""

    source: str
    meta: StudyMeta
    base: Scenario
    axes: tuple[Axis, ...]
    excludes: tuple[Mapping[str, Any], ...]
    scenarios: tuple[Scenario, ...]
    expectations: tuple[Expectation, ...] = ()
    runtime_env: RuntimeEnvSpec = RuntimeEnvSpec()
    """Ray runtime environments per backend (not part of any scenario or key; not in ``study.json``)."""

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as JSON-compatible data (written to ``study.json``)."""
        return {
            "study": self.meta.to_dict(),
            "base": self.base.to_dict(),
            "axes": [{"paths": list(a.paths), "values": [list(v) for v in a.values]} for a in self.axes],
            "exclude": [dict(e) for e in self.excludes],
            "scenarios": [s.to_dict() for s in self.scenarios],
            "expect": [e.to_dict() for e in self.expectations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=source,
            meta=StudyMeta.from_dict(data["study"]),
            base=Scenario.from_dict(data["base"]),
            axes=tuple(Axis(tuple(a["paths"]), tuple(tuple(v) for v in a["values"])) for a in data["axes"]),
            excludes=tuple(data["exclude"]),
            scenarios=tuple(Scenario.from_dict(s) for s in data["scenarios"]),
            expectations=tuple(Expectation.from_dict(e) for e in data.get("expect", [])),
        )


def axis_paths(model: type[SpecModel] = Scenario, prefix: str = "") -> list[str]:
    """Every dotted field path of ``model`` (sections and leaves) that an axis may sweep."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        if name in ("seed", "replicate") and model is Scenario:
            continue
        path = f"{prefix}{name}"
        out.append(path)
        ann = field.annotation
        sub = ann if isinstance(ann, type) else next(  # an optional section (``data.test_scan``) too
            (a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, SpecModel)), None)
        if isinstance(sub, type) and issubclass(sub, SpecModel):
            out.extend(axis_paths(sub, path + "."))
    return out


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = copy.deepcopy(value)


def _get_path(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def _check_path(path: str, where: str, source: str) -> None:
    if path in axis_paths():
        return
    import difflib

    close = difflib.get_close_matches(path, axis_paths(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SpecError(f"{source}: {where}: unknown field path {path!r}{hint}")


def _values_list(value: Any, where: str, source: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{source}: {where}: must be a non-empty list of values, got {value!r}")
    return value


def _check_distinct(values: Sequence[Any], where: str, source: str) -> None:
    """An axis lists each value once (8 and 8.0 are the same value): a repeated value would make
    two identical scenarios."""
    for i, v in enumerate(values):
        for j in range(i):
            if _same(values[j], v) if not isinstance(v, tuple) else all(
                    _same(a, b) for a, b in zip(values[j], v, strict=True)):
                raise SpecError(f"{source}: {where}[{i}]: repeats {where}[{j}] = {json.dumps(values[j])} "
                                "(each value of an axis once; use study.replicates for repeated draws)")


def _parse_axes(raw: Mapping[str, Any], source: str) -> tuple[list[Axis], list[dict[str, Any]]]:
    axes: list[Axis] = []
    for path, values in raw.items():
        if path in _RESERVED_AXES:
            continue
        where = f'axes."{path}"'
        _check_path(path, where, source)
        listed = _values_list(values, where, source)
        _check_distinct(listed, where, source)
        axes.append(Axis((path,), tuple((v,) for v in listed)))
    zips = raw.get("zip", [])
    if not isinstance(zips, list):
        raise SpecError(f"{source}: axes.zip: must be a list of tables ([[axes.zip]]), got {zips!r}")
    for i, group in enumerate(zips):
        if not isinstance(group, dict) or not group:
            raise SpecError(f"{source}: axes.zip[{i}]: must be a non-empty table path -> list, got {group!r}")
        lists = {}
        for path, values in group.items():
            where = f'axes.zip[{i}]."{path}"'
            _check_path(path, where, source)
            lists[path] = _values_list(values, where, source)
        lengths = {p: len(v) for p, v in lists.items()}
        if len(set(lengths.values())) != 1:
            raise SpecError(f"{source}: axes.zip[{i}]: lists must have equal lengths, got {lengths}")
        rows = tuple(zip(*lists.values()))
        _check_distinct(rows, f"axes.zip[{i}]", source)
        axes.append(Axis(tuple(lists), rows))
    excludes = raw.get("exclude", [])
    if not isinstance(excludes, list) or not all(isinstance(e, dict) and e for e in excludes):
        raise SpecError(f"{source}: axes.exclude: must be a list of non-empty tables path -> value, got {excludes!r}")
    for i, flt in enumerate(excludes):
        for path in flt:
            _check_path(path, f'axes.exclude[{i}]."{path}"', source)
    seen = [p for a in axes for p in a.paths]
    dup = sorted({p for p in seen if seen.count(p) > 1})
    if dup:
        raise SpecError(f"{source}: axes: path {dup[0]!r} is swept more than once")
    return axes, excludes


def _validate_axis_values(base: dict[str, Any], axes: Sequence[Axis], source: str, zipped: list[int]) -> None:
    """Validate each axis value on its own (applied to the base) so errors point at that value."""
    for a_idx, axis in enumerate(axes):
        for v_idx, values in enumerate(axis.values):
            trial = copy.deepcopy(base)
            for path, value in zip(axis.paths, values):
                _set_path(trial, path, value)
            try:
                Scenario.from_dict(trial)
            except ValidationError as exc:
                raise SpecError(_axis_error(exc, axis, v_idx, source, zipped[a_idx])) from None


def _axis_error(exc: ValidationError, axis: Axis, v_idx: int, source: str, zip_idx: int) -> str:
    loc, msg = describe_error(exc.errors()[0], Scenario)
    for path in axis.paths:
        parts = tuple(path.split("."))
        if loc[: len(parts)] == parts:
            head = f'axes."{path}"[{v_idx}]' if zip_idx < 0 else f'axes.zip[{zip_idx}]."{path}"[{v_idx}]'
            rest = loc[len(parts):]
            return f"{source}: {head}{'.' + format_loc(rest) if rest else ''}: {msg}"
    return f"{source}: {format_loc(loc)}: {msg} (with {axis.label} = {list(axis.values[v_idx])})"


def study_from_dict(raw: Mapping[str, Any], *, source: str = "<study>") -> Study:
    """Validate a parsed study file and expand its scenarios.

    Raises
    ------
    SpecError
        With one line ``<source>: <dotted path>: <what was expected, what was given>``.
    """
    try:
        parsed = StudyFile.from_dict(dict(raw))
    except ValidationError as exc:
        raise SpecError(first_error_message(exc, source=source, root=StudyFile)) from None
    axes_raw = dict(raw.get("axes", {}))
    axes, excludes = _parse_axes(axes_raw, source)
    zipped = [-1] * sum(1 for k in axes_raw if k not in _RESERVED_AXES) + list(range(len(axes_raw.get("zip", []))))
    base = parsed.base.to_dict()
    _validate_axis_values(base, axes, source, zipped)
    scenarios = _expand(parsed, axes, excludes, source)
    return Study(source, parsed.study, parsed.base, tuple(axes), tuple(excludes), tuple(scenarios),
                 parsed.expect, runtime_env=parsed.runtime_env)


def _interned(scenario: Scenario, shared: dict[str, Any]) -> Scenario:
    """``scenario`` with each section (a frozen sub-model) replaced by an equal one seen before."""
    update = {}
    for name in type(scenario).model_fields:
        section = getattr(scenario, name)
        if isinstance(section, BaseModel):
            key = f"{name}:{section.model_dump_json()}"
            known = shared.setdefault(key, section)
            if known is not section:
                update[name] = known
    return scenario.model_copy(update=update) if update else scenario


def _expand(parsed: StudyFile, axes: Sequence[Axis], excludes: Sequence[Mapping[str, Any]], source: str) -> list[Scenario]:
    base = parsed.base.to_dict()
    out: list[Scenario] = []
    used = [False] * len(excludes)
    made: dict[str, str] = {}
    shared: dict[str, Any] = {}
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        data = copy.deepcopy(base)
        for axis, idx in zip(axes, combo):
            for path, value in zip(axis.paths, axis.values[idx]):
                _set_path(data, path, value)
        hit = [all(_same(_get_path(data, p), v) for p, v in flt.items()) for flt in excludes]
        used = [u or h for u, h in zip(used, hit)]
        if any(hit):
            continue
        where = ", ".join(f"{p} = {json.dumps(_get_path(data, p))}" for a in axes for p in a.paths)
        canonical = json.dumps(Scenario.from_dict(data | {"seed": 0, "replicate": 0}).to_dict(), sort_keys=True)
        if canonical in made:
            raise SpecError(f"{source}: axes: two combinations make the same scenario ({made[canonical]}) "
                            f"and ({where}): an axis value that equals the base or another axis's effect")
        made[canonical] = where
        data.update(seed=parsed.study.seed, replicate=0)
        try:
            first = _interned(Scenario.from_dict(data), shared)
        except ValidationError as exc:
            raise SpecError(f"{first_error_message(exc, source=source, root=Scenario)} (scenario {where})") from None
        # replicates differ in the replicate number only: they share every section (frozen models),
        # so a study of 10^5 replicates holds one copy of each distinct section, not 10^5
        out.extend(first if rep == 0 else first.model_copy(update={"replicate": rep})
                   for rep in range(parsed.study.replicates))
    for i, u in enumerate(used):
        if not u:
            raise SpecError(f"{source}: axes.exclude[{i}]: matches no scenario: {dict(excludes[i])}")
    if not out:
        raise SpecError(f"{source}: axes.exclude: every scenario is excluded")
    return out


#: deepest nesting of tables and arrays a study file may have (real ones use 4)
MAX_NESTING = 16


def _check_raw(value: Any, source: str, where: str = "", depth: int = 0) -> None:
    """Before validation: bounded nesting, and every float finite (``inf``/``nan`` are TOML floats
    but mean nothing in a spec), each reported at its path in the file."""
    if depth > MAX_NESTING:
        raise SpecError(f"{source}: {where or '<top level>'}: nested more than {MAX_NESTING} levels deep")
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        raise SpecError(f"{source}: {where}: must be a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise SpecError(f"{source}: {where}: must fit in a signed 64-bit integer, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            key = f'"{k}"' if "." in str(k) or not str(k) else str(k)
            _check_raw(v, source, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_raw(v, source, f"{where}[{i}]", depth + 1)


def parse_study(text: str, *, source: str = "<study>") -> Study:
    """Parse TOML text of a study file (``source`` names it in error messages)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: malformed TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{source}: malformed TOML: nested too deeply (at most {MAX_NESTING} levels)") from None
    _check_raw(raw, source)
    return study_from_dict(raw, source=source)
