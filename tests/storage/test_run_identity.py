"""Study identity: a run folder belongs to one spec (its hash in study.json); an edited spec is refused
unless a new version is asked for; earlier versions are kept; results show the current version only."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from ptycho_dist.errors import StudyMismatchError
from ptycho_dist.results import open as open_run
from ptycho_dist.storage.run import RunLayout, spec_digest, spec_differences
from ptycho_dist.storage.tables import TableStore, table_schema
from ptycho_dist.study import parse_study

SPEC = """
[study]
name = "ident"
seed = {seed}
[axes]
"grouping.gridsize" = [1, 2]
"""


def _init(run: Path, seed: int = 1, **kw: bool) -> RunLayout:
    study = parse_study(SPEC.format(seed=seed), source=f"ident-{seed}.toml")
    layout = RunLayout(run)
    layout.initialize(study, scenario_ids=[f"s{seed}a", f"s{seed}b"], **kw)
    return layout


def test_the_spec_hash_ignores_formatting_and_pins_the_content() -> None:
    a = parse_study(SPEC.format(seed=1), source="a.toml").to_dict()
    b = parse_study("# a comment\n" + SPEC.format(seed=1).replace(" = ", "="), source="b.toml").to_dict()
    assert spec_digest(a) == spec_digest(b)
    c = parse_study(SPEC.format(seed=2), source="a.toml").to_dict()
    assert spec_digest(c) != spec_digest(a)
    assert spec_differences(a, c) == ["study.seed"]


def test_same_spec_resumes_an_edited_one_is_refused(tmp_path: Path) -> None:
    layout = _init(tmp_path)
    first = json.loads(layout.study_json.read_text())
    full = layout.read_study_json(full=True)  # study.json without the resolved scenarios, put back
    assert "scenarios" not in first["spec"] and first["scenarios_file"] == "study.scenarios.json"
    assert first["version"] == 1 and first["spec_sha256"] == spec_digest(full["spec"])
    _init(tmp_path)  # the same spec: a resume
    with pytest.raises(StudyMismatchError) as err:
        _init(tmp_path, seed=2)
    msg = str(err.value)
    assert msg.startswith("ident-2.toml: ") and "differs in study.seed" in msg and "--new-version" in msg
    assert "\n" not in msg
    assert json.loads(layout.study_json.read_text())["spec_sha256"] == first["spec_sha256"]  # untouched


def test_new_version_keeps_the_previous_study_json(tmp_path: Path) -> None:
    layout = _init(tmp_path)
    first = layout.study_json.read_text()
    _init(tmp_path, seed=2, new_version=True)
    kept = json.loads((tmp_path / "study.v1.json").read_text())
    assert kept == {**json.loads(first), "scenarios_file": "study.v1.scenarios.json"}
    assert layout.read_study_json(full=True)["spec"]["scenarios"] != json.loads(
        (tmp_path / "study.v1.scenarios.json").read_text())["scenarios"]  # each version keeps its own
    now = json.loads(layout.study_json.read_text())
    assert now["version"] == 2 and now["scenario_ids"] == ["s2a", "s2b"]
    _init(tmp_path, seed=3, new_version=True)
    assert [p.name for p in layout.versions()] == ["study.v1.json", "study.v2.json"]
    assert json.loads(layout.study_json.read_text())["version"] == 3


def _pair_row(pair: str, a: str, b: str) -> dict[str, object]:
    return {"pair_id": pair, "scenario_a": a, "scenario_b": b}


def test_every_table_parity_included_shows_the_current_version(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from ptycho_dist.storage.tables import flatten_scenario
    from ptycho_dist.study import Scenario

    layout = _init(tmp_path)
    tables = TableStore(tmp_path)
    for sid in ("s1a", "s1b", "s2a", "s2b"):
        tables.write_scenario(sid, {"scenarios": [{"scenario_id": sid, "study": "ident", "status": "ok",
                                                   "finished_at": datetime.now(UTC), **flatten_scenario(Scenario())}]})
    tables.write_pair("parity", "p1", [_pair_row("p1", "s1a", "s1b")])
    tables.write_pair("parity", "p2", [_pair_row("p2", "s2a", "s2b")])
    info = json.loads(layout.study_json.read_text())
    info.update(scenario_ids=["s2a", "s2b"], pair_ids=["p2"])
    layout.study_json.write_text(json.dumps(info))
    run = open_run(tmp_path)
    assert sorted(run.table("scenarios").column("scenario_id").to_pylist()) == ["s2a", "s2b"]
    assert run.table("parity").column("pair_id").to_pylist() == ["p2"]
    assert run.sql("select pair_id from parity").column("pair_id").to_pylist() == ["p2"]
    # a run recorded before study.json listed its pairs: parity rows filtered by their two arms
    del info["pair_ids"]
    layout.study_json.write_text(json.dumps(info))
    run = open_run(tmp_path)
    assert run.table("parity").column("pair_id").to_pylist() == ["p2"]
    assert run.sql("select pair_id from parity").column("pair_id").to_pylist() == ["p2"]
    assert run.table("parity").schema == table_schema("parity")
    assert isinstance(run.table("parity"), pa.Table)
