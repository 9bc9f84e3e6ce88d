"""Parse the ``pip install`` command lines of shell scripts, Dockerfiles and Markdown code blocks.

What an install step asks for, reduced to what must not drift between the README's set-up scripts
and the image: constraint files (``-c``), requirement files (``-r``), the extras of the project
(``-e ".[a,b]"`` / ``"$ROOT[a,b]"``), other requirement specifiers and the index (``--index-url``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

__all__ = ["Install", "pip_installs", "dockerfile_stages", "markdown_block", "merged"]


@dataclass
class Install:
    constraints: set[str] = field(default_factory=set)
    requirements: set[str] = field(default_factory=set)
    extras: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    index_url: set[str] = field(default_factory=set)
    project: int = 0  # how many installs of the project itself

    def key(self) -> tuple[object, ...]:
        return (self.constraints, self.requirements, self.extras, self.packages, self.index_url, self.project)


def _logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined and comments dropped."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


_PROJECT = re.compile(r"^(?:\.|\$ROOT|\$\{ROOT\}|/opt/ptycho-dist)\[(?P<extras>[^\]]*)\]$")


def _repo_path(path: str) -> str:
    for prefix in ("$ROOT/", "${ROOT}/", "./", "/opt/ptycho-dist/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def _parse_one(words: list[str], into: Install) -> None:
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("-c", "--constraint"):
            into.constraints.add(_repo_path(nxt)); i += 2; continue
        if w in ("-r", "--requirement"):
            into.requirements.add(_repo_path(nxt)); i += 2; continue
        if w in ("--index-url", "-i"):
            into.index_url.add(nxt); i += 2; continue
        if w in ("--extra-index-url", "-f", "--find-links"):
            i += 2; continue  # where wheels come from, not what is installed
        if w in ("-e", "--editable"):
            i += 1; continue
        if w.startswith("-"):
            i += 1; continue
        m = _PROJECT.match(w)
        if m:
            into.project += 1
            into.extras |= {e.strip() for e in m.group("extras").split(",") if e.strip()}
        elif w != "pip":  # `pip install --upgrade pip` upgrades the installer itself
            into.packages.add(w)
        i += 1


def pip_installs(text: str) -> Install:
    """Everything the ``pip install`` commands of ``text`` (shell) ask for, merged."""
    result = Install()
    for line in _logical_lines(text):
        for command in re.split(r"&&|;|\|\||\{|\}", line):
            try:
                words = shlex.split(command, posix=True)
            except ValueError:
                continue
            words = [w.strip('"') for w in words]
            for j in range(len(words) - 1):
                if words[j].endswith("pip") and words[j + 1] == "install":
                    _parse_one(words[j + 2:], result)
                    break
    return result


def dockerfile_stages(text: str) -> dict[str, str]:
    """The text of each named stage (``FROM ... AS name``) of a Dockerfile."""
    stages: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", line.strip(), re.IGNORECASE)
        if m:
            current = m.group(1) or f"<unnamed {len(stages)}>"
            stages[current] = ""
            continue
        if current is not None:
            stages[current] += line + "\n"
    return stages


def markdown_block(text: str, heading: str) -> str:
    """The first fenced code block after ``heading`` in a Markdown text."""
    at = text.index(heading)
    m = re.search(r"```[a-z]*\n(.*?)```", text[at:], re.DOTALL)
    assert m, f"no code block after {heading!r}"
    return m.group(1)


def merged(*parts: Install) -> Install:
    out = Install()
    for p in parts:
        out.constraints |= p.constraints; out.requirements |= p.requirements; out.extras |= p.extras
        out.packages |= p.packages; out.index_url |= p.index_url; out.project += p.project
    return out
