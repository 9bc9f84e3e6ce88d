"""Hostile and malformed study files, generated from the study's JSON Schema plus a table of the
cases a schema cannot express, and a classifier of what ``ptycho-dist validate`` does with each.

Run as a module to print the counts (the figures of issue #16's closing note)::

    python -m tests.faults.hostile_specs            # every case: outcome counts, and each bad outcome

Each case is ``(name, text, field)``: the TOML text of a study file and the field path its one-line
error must name (``None`` for a valid study that must be accepted).
"""

from __future__ import annotations

import io
import json
import math
import sys
import traceback
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: a small valid study every generated case starts from (oracle arm, tiny sizes)
BASE: dict[str, dict[str, Any]] = {
    "study": {"name": "hostile", "seed": 1},
    "object": {"kind": "lines", "size": 128},
    "probe": {"n": 32},
    "scan": {"kind": "grid", "step": 8.0, "n_positions": 36},
    "model": {"backend": "oracle"},
}


def toml_value(v: Any) -> str:
    """``v`` as a TOML value (floats keep inf/nan, which TOML spells ``inf``/``nan``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def study_text(sections: dict[str, dict[str, Any]], axes: dict[str, Any] | None = None) -> str:
    """TOML text of a study file: ``sections`` maps "study" and base section names to their keys."""
    out: list[str] = []
    for name, keys in sections.items():
        out.append("[study]" if name == "study" else f"[base.{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in keys.items() if v is not None]
    if axes:
        out.append("[axes]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in axes.items()]
    return "\n".join(out) + "\n"


def with_field(section: str, key: str, value: Any) -> str:
    sections = {k: dict(v) for k, v in BASE.items()}
    sections.setdefault(section, {})[key] = value
    return study_text(sections)


def _schema() -> dict[str, Any]:
    from ptycho_dist.study import study_json_schema

    return study_json_schema()


def _options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]


def _bad_values(prop: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(label, value) pairs every one of which the field must reject."""
    opts = _options(prop)
    types = {o.get("type") for o in opts}
    enum = [v for o in opts for v in o.get("enum", [])]
    if types & {"number", "integer"}:
        yield "inf", math.inf
        yield "nan", math.nan
        yield "-inf", -math.inf
        yield "bool", True
        yield "string", "1"
        for o in opts:
            if "minimum" in o:
                yield "below_min", o["minimum"] - 1
            if "exclusiveMinimum" in o:
                yield "at_exclusive_min", o["exclusiveMinimum"]
            if "maximum" in o:
                yield "above_max", o["maximum"] + 1
    if "integer" in types and "number" not in types:
        yield "fraction", 1.5
    if enum and all(isinstance(v, str) for v in enum):
        yield "unknown_choice", "no-such-choice"
    if enum and all(isinstance(v, int) and not isinstance(v, bool) for v in enum):
        yield "bool_for_choice", True
        yield "not_a_choice", max(enum) + 7
    if "boolean" in types:
        yield "int_for_bool", 1
        yield "string_for_bool", "true"
    if "array" in types:
        yield "scalar_for_array", 3 if "string" not in types else 3
        yield "string_item", ["x", "y"]
    if "string" in types and not enum and types == {"string"}:
        yield "number_for_string", 5


#: sections of the base whose leaf fields are generated (name in the spec -> schema definition)
SECTIONS = {"object": "ObjectSpec", "probe": "ProbeSpec", "scan": "ScanSpec", "dose": "DoseSpec",
            "data": "DataSpec", "grouping": "GroupingSpec", "model": "ModelSpec",
            "training": "TrainingSpec", "stitch": "StitchSpec", "evaluation": "EvaluationSpec",
            "resources": "ResourcesSpec", "faults": "FaultsSpec"}


def generated_cases() -> Iterator[tuple[str, str, str]]:
    """One malformed study per (schema field, bad value): the value in the base, and every third
    one as an axis value next to a valid one (the error then names the axis entry)."""
    defs = _schema()["$defs"]
    n = 0
    for section, name in SECTIONS.items():
        for key, prop in defs[name]["properties"].items():
            for label, value in _bad_values(prop):
                n += 1
                if n % 3 == 0 and not isinstance(value, list):
                    default = prop.get("default")
                    text = study_text({k: dict(v) for k, v in BASE.items()},
                                      axes={f"{section}.{key}": [value]} if default is None
                                      else {f"{section}.{key}": [default, value]})
                    yield f"axis:{section}.{key}:{label}", text, f'"{section}.{key}"'
                else:
                    yield f"base:{section}.{key}:{label}", with_field(section, key, value), f"base.{section}.{key}"
    for key, prop in defs["StudyMeta"]["properties"].items():
        for label, value in _bad_values(prop):
            sections = {k: dict(v) for k, v in BASE.items()}
            sections["study"][key] = value
            yield f"study:{key}:{label}", study_text(sections), f"study.{key}"


def _tweak(**changes: dict[str, Any]) -> str:
    sections = {k: dict(v) for k, v in BASE.items()}
    for section, keys in changes.items():
        sections.setdefault(section, {}).update(keys)
    return study_text(sections)


#: cases the schema cannot express: cross-field rules, sizes, duplicates, resources, file shapes
TABLE: list[tuple[str, str, str | None]] = [
    ("duplicate_axis_values", study_text(BASE, axes={"dose.nphotons": [1e4, 1e4]}), '"dose.nphotons"'),
    ("duplicate_axis_values_int_float", study_text(BASE, axes={"scan.step": [8, 8.0]}), '"scan.step"'),
    ("duplicate_zip_rows", study_text(BASE) + '[[axes.zip]]\n"dose.nphotons" = [1e4, 1e4]\n"scan.step" = [8.0, 8.0]\n',
     "axes.zip"),
    ("gridsize_true", _tweak(grouping={"gridsize": True}), "base.grouping.gridsize"),
    ("gridsize_true_axis", study_text(BASE, axes={"grouping.gridsize": [1, True]}), '"grouping.gridsize"'),
    ("replicates_true", _tweak(study={"replicates": True}), "study.replicates"),
    ("filters_length_vs_n", _tweak(model={"backend": "torch", "filters": [8, 16, 32, 64]}), "base.model.filters"),
    ("k_neighbors_below_gridsize", _tweak(grouping={"gridsize": 2, "k_neighbors": 2}), "base.grouping.k_neighbors"),
    ("n_groups_1e12", _tweak(grouping={"n_groups": 10**12}), "base.grouping.n_groups"),
    ("jitter_1e9", _tweak(scan={"jitter": 1e9}), "base.scan.jitter"),
    ("n_positions_2_70", _tweak(scan={"kind": "random", "n_positions": 2**70}), "base.scan.n_positions"),
    ("n_positions_1e9", _tweak(scan={"kind": "random", "n_positions": 10**9}), "base.scan.n_positions"),
    ("epochs_1e11", _tweak(model={"backend": "torch"}, training={"epochs": 10**11}), "base.training.epochs"),
    ("num_cpus_1e9", _tweak(resources={"num_cpus": 1e9}), "base.resources.num_cpus"),
    ("num_gpus_1e6", _tweak(resources={"num_gpus": 1e6}), "base.resources.num_gpus"),
    ("train_workers_1e6", _tweak(model={"backend": "torch"}, resources={"train_workers": 10**6}),
     "base.resources.train_workers"),
    ("object_size_huge_patterns", _tweak(object={"size": 16384}, probe={"n": 128},
                                         scan={"kind": "grid", "step": 1.0, "n_positions": None}),
     "base.scan.step"),
    ("seed_2_70", _tweak(study={"seed": 2**70}), "study.seed"),
    ("replicates_1e9", _tweak(study={"replicates": 10**9}), "study.replicates"),
    ("nested_5000", "x = " + "[" * 5000 + "]" * 5000 + "\n", "<file>"),
    ("nested_tables_5000", "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "<file>"),
    ("binary_garbage", "\x00\x01\x02\xff" * 16, "<file>"),
    ("empty_axis_list", study_text(BASE, axes={"dose.nphotons": []}), '"dose.nphotons"'),
    ("unknown_axis_path", study_text(BASE, axes={"dose.photons": [1e4]}), '"dose.photons"'),
    # valid studies: must be accepted
    ("valid_base", study_text(BASE), None),
    ("valid_two_doses", study_text(BASE, axes={"dose.nphotons": [1e4, 1e9]}), None),
    ("valid_torch_small", _tweak(model={"backend": "torch", "filters": [8, 16]}, training={"epochs": 1}), None),
]

#: file-level cases: (name, how to make the path under a folder, field)
FILE_CASES = ("directory", "dev_zero", "fifo", "too_large", "not_utf8")


def make_file_case(name: str, folder: Path) -> Path:
    """A study path that is not a regular, small, UTF-8 TOML file."""
    import os

    p = folder / f"{name}.toml"
    if name == "directory":
        p.mkdir()
    elif name == "dev_zero":
        return Path("/dev/zero")
    elif name == "fifo":
        os.mkfifo(p)
    elif name == "too_large":
        p.write_text("# padding\n" * 2_000_000)
    elif name == "not_utf8":
        p.write_bytes(b"[study]\nname = \"\xff\xfe\"\n")
    return p


@dataclass(frozen=True)
class Outcome:
    """What ``ptycho-dist validate`` did with one case."""

    name: str
    kind: str  # "rejected" (exit 2, one line), "accepted" (exit 0), "traceback" (anything else)
    code: int | None
    message: str
    field: str | None

    @property
    def as_expected(self) -> bool:
        if self.field is None:
            return self.kind == "accepted"
        return (self.kind == "rejected" and self.message.count("\n") == 0
                and (self.field in self.message or self.field == "<file>"))


def classify(name: str, path: Path, field: str | None) -> Outcome:
    """Run ``ptycho-dist validate PATH`` in this process and classify the outcome."""
    from ptycho_dist.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["validate", str(path)])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - a traceback is the outcome we count
        tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Outcome(name, "traceback", None, tb, field)
    message = err.getvalue().strip()
    kind = {0: "accepted", 2: "rejected"}.get(code, "traceback")
    return Outcome(name, kind, code, message, field)


def all_cases(folder: Path) -> Iterator[tuple[str, Path, str | None]]:
    """Every case as a path under ``folder``."""
    for i, (name, text, field) in enumerate([*generated_cases(), *TABLE]):
        p = folder / f"case{i:04d}.toml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        yield name, p, field
    for name in FILE_CASES:
        yield f"file:{name}", make_file_case(name, folder), "<file>"


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        outcomes = [classify(n, p, f) for n, p, f in all_cases(Path(tmp))]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    bad = [o for o in outcomes if not o.as_expected]
    print(f"{len(outcomes)} specs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; not as expected {len(bad)}")
    for o in bad:
        print(f"  {o.name}: {o.kind} (exit {o.code}) expected field {o.field!r}: {o.message[:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
