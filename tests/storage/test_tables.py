"""Parquet tables: schemas, the commit rule, exactly one row set per scenario."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from ptycho_dist.errors import StorageError
from ptycho_dist.storage.tables import (  # noqa: I001
    SCHEMA_VERSION,
    TABLES,
    TableStore,
    flatten_scenario,
    schema_to_json,
    table_schema,
)
from ptycho_dist.study import Scenario

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "tables"


def _scenario_row(sid: str, status: str = "ok") -> dict:
    return {"scenario_id": sid, "study": "t", "status": status, "finished_at": datetime.now(UTC),
            **flatten_scenario(Scenario())}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_exported_schema_is_current(name: str) -> None:
    committed = json.loads((SCHEMAS / f"{name}.json").read_text())
    assert committed == schema_to_json(name), f"regenerate schemas/tables/{name}.json (python -m ptycho_dist.storage.export_schemas)"


def test_schema_version_in_metadata() -> None:
    meta = table_schema("metrics").metadata
    assert meta[b"ptycho_dist.schema_version"] == SCHEMA_VERSION.encode()


def test_scenario_columns_are_typed() -> None:
    schema = table_schema("scenarios")
    assert schema.field("dose_nphotons").type == pa.float64()
    assert schema.field("grouping_gridsize").type == pa.int64()
    assert schema.field("object_amplitude_range").type == pa.list_(pa.float64())
    assert schema.field("model_filters").nullable


def test_commit_rule_and_rewrite(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    metrics = [{"target": "stitched", "channel": "amplitude", "ssim": 0.9}]
    store.write_scenario("a", {"scenarios": [_scenario_row("a")], "metrics": metrics})
    # an orphan part (driver killed before its segment's record) is never read
    store._write(store._part("metrics", "seg-00000000000000000001-00000000"), pa.Table.from_pylist(
        [{"scenario_id": "b", "target": "stitched", "channel": "phase"}], schema=table_schema("metrics")))
    assert store.committed_ids() == {"a"}
    assert store.read("metrics").column("scenario_id").to_pylist() == ["a"]
    # rewriting a scenario replaces its rows: still exactly one set
    store.write_scenario("a", {"scenarios": [_scenario_row("a", "failed")], "metrics": []})
    assert store.read("scenarios").column("status").to_pylist() == ["failed"]
    assert store.read("metrics").num_rows == 0


def test_unknown_column_and_missing_scenarios_row(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    with pytest.raises(StorageError, match="unknown columns"):
        store.write_scenario("a", {"scenarios": [_scenario_row("a")], "metrics": [{"bogus": 1}]})
    with pytest.raises(StorageError, match="exactly one 'scenarios' row"):
        store.write_scenario("a", {"metrics": []})


def test_segments_batches_tombstones_and_compaction(tmp_path: Path) -> None:
    from ptycho_dist.storage.tables import Unit

    store = TableStore(tmp_path)
    metrics = [{"target": "stitched", "channel": "amplitude", "ssim": 0.5}]
    store.write_units([Unit(f"s{i}", "scenario", {"scenarios": [_scenario_row(f"s{i}")], "metrics": metrics})
                       for i in range(4)])
    assert store.committed_ids() == {"s0", "s1", "s2", "s3"} and len(store.parts("metrics")) == 1
    store.write_scenario("s1", {"scenarios": [_scenario_row("s1", "failed")]})  # a later segment wins
    store.remove_unit("s2")  # a tombstone
    store.write_run_table("expectations", [{"name": "e", "status": "passed"}])
    assert store.committed_ids() == {"s0", "s1", "s3"}
    assert sorted(store.read("metrics").column("scenario_id").to_pylist()) == ["s0", "s3"]
    before = {r["scenario_id"]: r["status"] for r in store.status_rows()}
    assert before == {"s0": "ok", "s1": "failed", "s3": "ok"}
    assert store.files() > 6 and store.compact() > 0
    # one part per table with rows (scenarios, metrics, expectations), one record
    assert store.files() == 1 + 3, sorted(str(p) for p in tmp_path.rglob("*") if p.is_file())
    assert {r["scenario_id"]: r["status"] for r in store.status_rows()} == before
    assert store.read("expectations").column("name").to_pylist() == ["e"]
    assert store.compact() == 0  # nothing left to merge
    # a compaction killed after its record: the old segments are obsolete whatever is left of them
    store.write_scenario("s4", {"scenarios": [_scenario_row("s4")]})
    old = {p for p in tmp_path.rglob("*") if p.is_file()}
    store.compact()
    for p in old:  # put the older files back, as if their deletion had not happened
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"stale")
    assert store.reload().segments[0].base is not None
    assert {r["scenario_id"]: r["status"] for r in store.status_rows()} == {**before, "s4": "ok"}


def test_results_views_follow_segments_and_versions(tmp_path: Path) -> None:
    from ptycho_dist.results import Results
    from ptycho_dist.storage.run import RunLayout
    from ptycho_dist.storage.tables import Unit

    store = TableStore(tmp_path)
    store.write_schema_file()
    metrics = [{"target": "stitched", "channel": "amplitude", "ssim": 0.5}]
    store.write_units([Unit(f"s{i}", "scenario", {"scenarios": [_scenario_row(f"s{i}")], "metrics": metrics})
                       for i in range(3)])
    store.write_scenario("s0", {"scenarios": [_scenario_row("s0", "failed")]})
    run = Results(RunLayout(tmp_path), frozenset({"s0", "s1"}), frozenset())
    assert run.sql_rows("select scenario_id, status from scenarios order by 1")[1] == [("s0", "failed"), ("s1", "ok")]
    assert run.sql_rows("select scenario_id from metrics")[1] == [("s1",)]
    assert run.table("metrics").column("scenario_id").to_pylist() == ["s1"]
    assert run.sql_rows("select count(*) from history")[1] == [(0,)]
    assert run.sql("select * from parity").num_rows == 0
