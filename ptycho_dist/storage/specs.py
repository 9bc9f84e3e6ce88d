"""Reading study files from disk (the only file access of the spec layer)."""

from __future__ import annotations

from pathlib import Path

from ptycho_dist.errors import SpecError
from ptycho_dist.storage.datasets import inspect_npz_dataset
from ptycho_dist.study import Study, parse_study

__all__ = ["load_study", "check_data_files"]


def load_study(path: str | Path) -> Study:
    """Read, validate and expand the study file at ``path``.

    Raises
    ------
    SpecError
        The file is missing or unreadable, is not UTF-8 TOML, or does not validate.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such study file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a study file (.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read study file: {exc}") from None
    study = parse_study(text, source=str(path))
    check_data_files(study)
    return study


def check_data_files(study: Study) -> None:
    """Check the measured-data files a study names that exist now (keys, shapes: headers only).

    A file that does not exist yet is not an error here: its scenarios fail at their simulate stage
    with the same message (a ``failed`` row), and the rest of the study runs.
    """
    seen: set[tuple[str, int]] = set()
    for s in study.scenarios:
        if s.data.source != "npz" or s.data.path is None or (s.data.path, s.probe.n) in seen:
            continue
        seen.add((s.data.path, s.probe.n))
        if Path(s.data.path).exists():
            try:
                inspect_npz_dataset(s.data.path, field="data.path", probe_n=s.probe.n)
            except SpecError as exc:
                raise SpecError(f"{study.source}: {exc}") from None
