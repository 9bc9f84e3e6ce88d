"""Which table files of a run hold which units: the segment index (JSON only, no Arrow).

Rows are committed in **segments**: one segment holds the rows of a batch of units (scenarios, pairs
of arms, the run-level tables) as one Parquet part per table, ``tables/<table>/<segment>.parquet``,
and its commit record ``commits/<segment>.json``, written **last**, lists the units and the size,
SHA-256 and row count of every part. A segment without its record was never committed and is never
read. Segment names sort in commit order (``seg-<20-digit sequence>-<random>``); a unit's rows are
those of the **latest** committed segment that names it, so rewriting a unit is a new segment, and a
tombstone segment (``removed``) uncommits units without touching older files.

Compaction merges every live unit into one segment whose record carries ``base``: segments older
than it are obsolete and never read, so a compaction killed at any point leaves either the old
segments (the new record missing) or the new one (the old files merely not deleted yet).

Runs written before segments (one part per unit, ``tables/<table>/<unit>.parquet``, committed by
its ``scenarios`` part, records ``commits/<unit>.json``) are read as segments older than any new
one (**legacy** units); compaction rewrites them as a segment.

This module reads JSON only, so that the light commands (``query``, ``status``) need neither
pyarrow's table layer nor the schema definitions to find the files.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SegmentIndex", "Source", "Segment", "PartCheck", "new_segment_name", "SEGMENT_RE", "UNIT_COLUMN",
           "COMMITS", "RUN_UNIT", "RUN_PART", "is_segment_name"]

#: folder of the commit records
COMMITS = "commits"
#: the unit of the run-level tables, and the stem of their part in a legacy run
RUN_UNIT, RUN_PART = "_run", "run"
#: names of segments (sorting them sorts by commit order)
SEGMENT_RE = re.compile(r"^seg-(\d{20})-[0-9a-f]{8}$")
#: the column naming a row's unit, by kind of table (run-level tables have none: one unit)
UNIT_COLUMN = {"scenario": "scenario_id", "pair": "pair_id"}


def is_segment_name(stem: str) -> bool:
    return SEGMENT_RE.match(stem) is not None


def new_segment_name(after: str | None = None) -> str:
    """A segment name that sorts after ``after`` (and after every name made earlier in this process)."""
    seq = time.time_ns()
    if after is not None:
        m = SEGMENT_RE.match(after)
        if m is not None:
            seq = max(seq, int(m.group(1)) + 1)
    return f"seg-{seq:020d}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class PartCheck:
    """The state of one table part: ``ok``, ``missing`` (the unit's commit record lists it, the file is
    gone), ``corrupt`` (size or SHA-256 differ from the record, or it does not decode) or
    ``unverified`` (no commit record: written by an older version, but readable)."""

    table: str
    unit: str
    """the segment (or, in a run written before segments, the unit) the part belongs to"""
    path: str
    state: str
    problem: str = ""
    units: tuple[str, ...] = ()
    """the units whose current rows the part holds"""

    @property
    def affected(self) -> tuple[str, ...]:
        """The units a damaged part loses (its segment's name when it names none)."""
        return self.units or (self.unit,)



@dataclass(frozen=True)
class Segment:
    """One committed segment (or one legacy unit) as its record describes it."""

    name: str
    units: Mapping[str, str]
    """unit id -> kind (``scenario``, ``pair``, ``run``)"""
    parts: Mapping[str, Mapping[str, Any]]
    """table -> {bytes, sha256, rows}"""
    removed: tuple[str, ...] = ()
    base: str | None = None
    """set by compaction: every segment that sorts before it is obsolete"""
    legacy: bool = False
    record_path: str | None = None
    """the record's path relative to the run (None for a legacy part without record)"""

    def part_path(self, table: str) -> str:
        """The part of ``table`` relative to the run folder."""
        stem = RUN_PART if self.legacy and self.units.get(RUN_UNIT) == "run" else self.name
        return f"tables/{table}/{stem}.parquet"


@dataclass(frozen=True)
class Source:
    """One part file of a table and what of it is current: ``drop`` lists the units of the file
    whose rows are not (overridden by a later segment or removed)."""

    path: Path
    segment: str
    units: frozenset[str]
    drop: frozenset[str]


@dataclass
class SegmentIndex:
    """The committed segments of one run (read once; cheap: one JSON file per segment)."""

    root: Path
    segments: list[Segment] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """records that do not parse (relative paths)"""
    live: dict[str, str] = field(default_factory=dict)
    """unit -> the segment holding its current rows"""
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> SegmentIndex:
        index = cls(Path(root))
        index._load()
        return index

    def _load(self) -> None:
        commits = self.root / COMMITS
        found: list[Segment] = []
        legacy_records: dict[str, dict[str, Any]] = {}
        try:
            names = sorted(os.listdir(commits))
        except FileNotFoundError:
            names = []
        for n in names:
            if not n.endswith(".json"):
                continue
            stem = n[:-5]
            rel = f"{COMMITS}/{n}"
            try:
                data = json.loads((commits / n).read_text())
                if not isinstance(data, dict) or not isinstance(data.get("parts", {}), dict):
                    raise ValueError("not a record")
            except (OSError, ValueError):
                self.unreadable.append(rel)
                continue
            if is_segment_name(stem):
                units = data.get("units", {})
                found.append(Segment(stem, dict(units) if isinstance(units, dict) else {}, data.get("parts", {}),
                                     tuple(data.get("removed", ())), data.get("base"), record_path=rel))
            else:
                legacy_records[stem] = data
        base = max((s.base for s in found if s.base), default=None)
        current = [s for s in found if base is None or s.name >= base]
        legacy = [] if base is not None else self._legacy(legacy_records)
        self.segments = legacy + sorted(current, key=lambda s: s.name)
        for seg in self.segments:
            for unit in seg.removed:
                self.live.pop(unit, None)
                self.kinds.pop(unit, None)
            for unit, kind in seg.units.items():
                self.live[unit] = seg.name
                self.kinds[unit] = kind

    def _legacy(self, records: dict[str, dict[str, Any]]) -> list[Segment]:
        """Units of a run written before segments: committed when their committing part exists."""
        tables = self.root / "tables"
        out: list[Segment] = []
        committed: dict[str, str] = {}
        try:
            scen = os.listdir(tables / "scenarios")
        except FileNotFoundError:
            scen = []
        for n in scen:
            if n.endswith(".parquet") and not is_segment_name(n[:-8]):
                committed[n[:-8]] = "scenario"
        try:
            table_dirs = [d for d in os.listdir(tables) if (tables / d).is_dir()]
        except FileNotFoundError:
            table_dirs = []
        loose: dict[str, dict[str, str]] = {}
        for d in table_dirs:
            for n in os.listdir(tables / d):
                if n.endswith(".parquet") and not is_segment_name(n[:-8]):
                    loose.setdefault(n[:-8], {})[d] = n
        for unit, rec in records.items():
            kind = rec.get("kind", "scenario")
            if kind == "scenario" and unit not in committed:
                continue
            if kind == "pair" and not any(t in loose.get(unit, {}) for t in rec.get("parts", {})):
                continue
            if kind == "run":
                if RUN_PART not in loose:
                    continue
                out.append(Segment(RUN_UNIT, {RUN_UNIT: "run"}, rec.get("parts", {}), legacy=True,
                                   record_path=f"{COMMITS}/{unit}.json"))
                continue
            out.append(Segment(unit, {unit: kind}, rec.get("parts", {}), legacy=True,
                               record_path=f"{COMMITS}/{unit}.json"))
        for unit in sorted(committed.keys() - records.keys()):  # parts without record: unverified
            parts: dict[str, dict[str, Any]] = {t: {} for t in loose.get(unit, {})}
            out.append(Segment(unit, {unit: "scenario"}, parts, legacy=True))
        return out

    # --- queries ---------------------------------------------------------------------------------

    def last_name(self) -> str | None:
        names = [s.name for s in self.segments if not s.legacy]
        return names[-1] if names else None

    def units_of_kind(self, kind: str) -> set[str]:
        return {u for u, k in self.kinds.items() if k == kind}

    def sources(self, table: str, kind: str, *, skip: Iterable[str] = ()) -> list[Source]:
        """The part files of ``table`` (whose rows belong to units of ``kind``) holding current rows,
        each with the units to leave out of it (those in ``skip`` too)."""
        left_out = set(skip)
        out: list[Source] = []
        for seg in self.segments:
            if table not in seg.parts:
                continue
            units = frozenset(u for u, k in seg.units.items() if k == kind)
            current = {u for u in units if self.live.get(u) == seg.name and u not in left_out}
            if not current:
                continue
            out.append(Source(self.root / seg.part_path(table), seg.name, units, frozenset(units - current)))
        return out

    def segment(self, name: str) -> Segment | None:
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def files(self) -> int:
        """Number of committed files (parts and records) the index refers to."""
        return sum(len(s.parts) + (1 if s.record_path else 0) for s in self.segments)

    def quick_check(self) -> list[PartCheck]:
        """The damaged parts of the current segments by the cheap test: unreadable records, and the
        size of every part against its record (a part without record: its footer decodes)."""
        out: list[PartCheck] = []
        for rel in self.unreadable:
            out.append(PartCheck("commits", Path(rel).stem, rel, "corrupt", f"{rel}: unreadable commit record"))
        for seg in self.segments:
            live = tuple(sorted(u for u in seg.units if self.live.get(u) == seg.name))
            if not live:
                continue
            for table, want in seg.parts.items():
                rel = seg.part_path(table)
                try:
                    size = os.stat(self.root / rel).st_size
                except FileNotFoundError:
                    out.append(PartCheck(table, seg.name, rel, "missing", f"{rel}: missing (its commit record lists it)",
                                         live))
                    continue
                if want and size != want.get("bytes"):
                    out.append(PartCheck(table, seg.name, rel, "corrupt", f"{rel}: {size} bytes, {want['bytes']} written",
                                         live))
                elif not want:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    try:
                        pq.read_metadata(self.root / rel)
                    except (pa.ArrowException, OSError) as exc:
                        out.append(PartCheck(table, seg.name, rel, "corrupt", f"{rel}: does not decode "
                                             f"({type(exc).__name__}: {str(exc)[:100]})", live))
        return out
