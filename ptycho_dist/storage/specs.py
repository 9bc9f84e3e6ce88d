"""Reading study files from disk (the only file access of the spec layer)."""

from __future__ import annotations

from pathlib import Path

from ptycho_dist.errors import SpecError
from ptycho_dist.study import Study, parse_study

__all__ = ["load_study"]


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
    return parse_study(text, source=str(path))
