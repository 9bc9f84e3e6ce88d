"""Reading study files from disk (the only file access of the spec layer)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pydantic import ValidationError

from ptycho_dist.errors import SpecError
from ptycho_dist.storage.datasets import inspect_npz_dataset
from ptycho_dist.storage.inputs import check_npz_probe
from ptycho_dist.study import RuntimeEnvSpec, Study, parse_study
from ptycho_dist.study.messages import first_error_message
from ptycho_dist.study.spec import RUNTIME_ENV_TARGETS

__all__ = ["load_study", "check_input_files", "MAX_SPEC_BYTES", "load_runtime_env"]

#: largest study file read (the largest real one is a few KiB)
MAX_SPEC_BYTES = 1024 * 1024


def load_study(path: str | Path) -> Study:
    """Read, validate and expand the study file at ``path``, then check the input files it names.

    Raises
    ------
    SpecError
        The file is missing or unreadable, is not UTF-8 TOML, does not validate, or names an input
        file that exists but does not hold what the spec asks for (:func:`check_input_files`).
    """
    p = Path(path)
    try:
        info = p.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{path}: is a directory, expected a study file (.toml)")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path}: is not a regular file (a device, pipe or socket), expected a study file (.toml)")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: is {info.st_size} bytes, more than a study file may be "
                            f"({MAX_SPEC_BYTES // 1024} KiB)")
        with p.open("rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: grew past {MAX_SPEC_BYTES // 1024} KiB while it was read")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such study file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read study file: {exc.strerror or exc}") from None
    study = parse_study(text, source=str(path))
    check_input_files(study)
    return study


def _where(study: Study, field: str, value: object) -> str:
    """The place in the study file that gave ``field`` its ``value``: the base or an axis value."""
    for axis in study.axes:
        for column, path in enumerate(axis.paths):
            for i, values in enumerate(axis.values):
                if path == field and values[column] == value:
                    return f'axes."{path}"[{i}]' if len(axis.paths) == 1 else f'axes.zip."{path}"[{i}]'
    return f"base.{field}"


def check_input_files(study: Study) -> None:
    """Check the input files of every scenario that exist now, from their headers only.

    The ``probe.npz_key`` array of a ``probe.kind = "npz"`` file must be (probe.n, probe.n), complex
    or real floating; a ``data.source = "npz"`` dataset must hold its keys with consistent shapes
    (:func:`~ptycho_dist.storage.datasets.inspect_npz_dataset`). A file that does not exist yet is not an error here (it
    may be written before the run); the simulate stage then fails with a clear message.

    Raises
    ------
    SpecError
        One line: ``<study file>: <field path>: <file>: <problem>`` (naming the key and the shape
        found), the field path being where the file was given (``base.probe.path`` or an axis
        value ``axes."probe.path"[i]``).
    """
    seen: set[str] = set()
    for s in study.scenarios:
        probe = s.probe
        if probe.kind != "npz" or probe.path is None:
            continue
        item = json.dumps([probe.path, probe.npz_key, probe.n])
        if item in seen or not Path(probe.path).exists():
            continue
        seen.add(item)
        check_npz_probe(probe.path, key=probe.npz_key, n=probe.n,
                        field=f"{study.source}: {_where(study, 'probe.path', probe.path)}")
    checked: set[tuple[str, int]] = set()
    for s in study.scenarios:
        data = s.data
        if data.source != "npz" or data.path is None or (data.path, s.probe.n) in checked:
            continue
        checked.add((data.path, s.probe.n))
        if Path(data.path).exists():
            inspect_npz_dataset(data.path, probe_n=s.probe.n,
                                field=f"{study.source}: {_where(study, 'data.path', data.path)}")


def load_runtime_env(arg: str) -> RuntimeEnvSpec:
    """``BACKEND=FILE.json`` (``run --runtime-env``): the Ray runtime environment in FILE (a JSON
    object with the fields of ``[runtime_env.<backend>]``) for BACKEND (base, torch, tf, ptychi).

    Raises
    ------
    SpecError
        A malformed argument, an unknown backend, a missing or unreadable file, or a field that does
        not validate (one line naming the file and the field path).
    """
    target, sep, path = arg.partition("=")
    if not sep or not path:
        raise SpecError(f"--runtime-env: expected BACKEND=FILE.json, got {arg!r}")
    if target not in RUNTIME_ENV_TARGETS:
        raise SpecError(f"--runtime-env: backend must be one of {', '.join(RUNTIME_ENV_TARGETS)}, got {target!r}")
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: larger than {MAX_SPEC_BYTES} bytes: not a runtime environment")
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such runtime environment file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: cannot read a JSON runtime environment: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a runtime environment is a JSON object, got {type(data).__name__}")
    try:
        return RuntimeEnvSpec.from_dict({target: data})
    except ValidationError as exc:
        raise SpecError(first_error_message(exc, source=path, root=RuntimeEnvSpec, prefix=("runtime_env",))) from None
