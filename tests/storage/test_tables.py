"""Parquet tables: schemas, the commit rule, exactly one row set per scenario."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from ptycho_dist.errors import StorageError
from ptycho_dist.storage.tables import (
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
    # an orphan part (driver killed before the scenarios part) is never read
    store._write(store._part("metrics", "b"), pa.Table.from_pylist(
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
