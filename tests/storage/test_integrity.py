"""Checksums and durable writes: stage outputs (crc32c chunks, the marker's manifest), table parts
(commit records), files created with the umask; damage is detected, named, and never served."""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from ptycho_dist.errors import CorruptDataError, StorageError
from ptycho_dist.storage.arrays import MARKER, STAGING, ArrayStore, NamedArray
from ptycho_dist.storage.files import write_bytes_atomic
from ptycho_dist.storage.tables import TableStore, flatten_scenario, table_schema
from ptycho_dist.study import Scenario


def _store(tmp_path: Path) -> ArrayStore:
    store = ArrayStore(tmp_path)
    store.initialize()
    return store


def _write(store: ArrayStore, key: str = "k", n: int = 600) -> np.ndarray:
    counts = np.arange(n * 4 * 4, dtype=np.float32).reshape(n, 4, 4)
    store.write("simulate", key, {"counts": NamedArray(counts, ("pattern", "ky", "kx")),
                                  "zeros": NamedArray(np.zeros((3, 2), np.float32), ("a", "b"))}, {"scale": 2.0})
    return counts


def _chunk(store: ArrayStore, key: str = "k", index: int = 1) -> Path:
    return store.path / "simulate" / key / "counts" / "c" / str(index) / "0" / "0"


def test_chunks_carry_crc32c_and_the_marker_a_manifest(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store)
    meta = json.loads((store.path / "simulate" / "k" / "counts" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "blosc", "crc32c"]
    marker = store.read("simulate", "k").attrs[MARKER]
    assert marker["manifest"]["counts"]["files"] == 3  # 600 patterns in chunks of 256
    assert marker["manifest"]["zeros"]["files"] == 1  # an all-zero chunk is a file too
    assert store.check("simulate", "k", deep=True).state == "ok"
    assert not any((store.path / STAGING).iterdir())  # written under staging, renamed into place


def test_flipped_bytes_are_never_served(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store)
    chunk = _chunk(store)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert store.check("simulate", "k").state == "ok"  # same size: only reading finds it
    deep = store.check("simulate", "k", deep=True)
    assert deep.state == "corrupt" and "simulate/k/counts/c/1" in deep.problem and "checksum" in deep.problem
    with pytest.raises(CorruptDataError, match=r"arrays.zarr/simulate/k/counts: damaged .*checksum.*verify RUN --repair"):
        store.read("simulate", "k")["counts"]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_or_truncated_chunk_makes_the_output_incomplete(tmp_path: Path, damage: str) -> None:
    store = _store(tmp_path)
    _write(store)
    chunk = _chunk(store, index=2)
    if damage == "delete":
        chunk.unlink()  # zarr alone would serve fill values here
    else:
        chunk.write_bytes(chunk.read_bytes()[:10])
    state = store.check("simulate", "k")
    assert state.state == "corrupt"
    assert ("2 of 3 chunk files" if damage == "delete" else "bytes of chunks") in state.problem
    assert not store.is_complete("simulate", "k")  # a cache check redoes it
    assert store.read_if_complete("simulate", "k") is None
    with pytest.raises(CorruptDataError, match="simulate/k/counts/c"):
        store.read("simulate", "k")
    _write(store)  # redone from scratch
    assert store.check("simulate", "k", deep=True).state == "ok"


def test_damaged_attributes_and_metadata(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store)
    group_json = store.path / "simulate" / "k" / "zarr.json"
    meta = json.loads(group_json.read_text())
    meta["attributes"]["scale"] = 3.0
    group_json.write_text(json.dumps(meta))
    assert "attributes do not match" in store.check("simulate", "k").problem
    group_json.write_text("{not json")
    state = store.check("simulate", "k")
    assert state.state == "corrupt" and "zarr.json: unreadable" in state.problem
    assert not store.is_complete("simulate", "k")


def test_an_older_group_without_manifest_is_unverified(tmp_path: Path) -> None:
    store = _store(tmp_path)
    g = zarr.open_group(str(store.path), path="group/old", mode="w", zarr_format=3)
    g.create_array("indices", shape=(3,), dtype="int64")[...] = [1, 2, 3]
    g.update_attributes({MARKER: {"complete": True, "written_at": 0.0}})
    assert store.check("group", "old", deep=True).state == "unverified"
    assert store.is_complete("group", "old")


def test_a_failed_write_leaves_the_earlier_output_and_no_partial_one(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    before = _write(store)
    import zarr.storage._local as local

    real = local._put

    def full_disk(path: Path, value: object, exclusive: bool = False) -> int:
        if "/c/" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, value, exclusive)

    monkeypatch.setattr(local, "_put", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.write("simulate", "k", {"counts": NamedArray(before * 2, ("pattern", "ky", "kx"))}, {})
    with pytest.raises(OSError):
        store.write("simulate", "new", {"counts": NamedArray(before, ("pattern", "ky", "kx"))}, {})
    monkeypatch.undo()
    np.testing.assert_array_equal(store.read("simulate", "k")["counts"], before)  # the old one, whole
    assert not (store.path / "simulate" / "new").exists() and not store.is_complete("simulate", "new")
    assert not any((store.path / STAGING).iterdir())


def test_remove_and_listing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store, "a")
    _write(store, "b")
    assert [k for s, k in store.outputs() if s == "simulate"] == ["a", "b"]
    assert store.remove("simulate", "a") and not store.remove("simulate", "a")
    assert [k for s, k in store.outputs() if s == "simulate"] == ["b"]


def _row(sid: str) -> dict[str, object]:
    return {"scenario_id": sid, "study": "t", "status": "ok", "finished_at": datetime(2026, 1, 2, tzinfo=UTC),
            **flatten_scenario(Scenario())}


def test_table_parts_against_their_commit_record(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    metrics = [{"target": "stitched", "channel": "amplitude", "ssim": 0.5 + i / 10} for i in range(3)]
    store.write_scenario("a", {"scenarios": [_row("a")], "metrics": metrics})
    rec = store.record("a")
    assert rec is not None and set(rec["parts"]) == {"scenarios", "metrics"} and rec["parts"]["metrics"]["rows"] == 3
    assert store.committed_row("a")["finished_at"] == _row("a")["finished_at"]
    assert {(c.table, c.state) for c in store.check(deep=True)} == {("scenarios", "ok"), ("metrics", "ok")}
    [part] = store.parts("metrics")
    rel = str(part.relative_to(tmp_path))
    assert rel.startswith("tables/metrics/seg-") and pq.read_metadata(part).num_rows == 3
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF  # same size: only the SHA-256 finds it
    part.write_bytes(bytes(data))
    assert [c.state for c in store.check() if c.table == "metrics"] == ["ok"]
    deep = [c for c in store.check(deep=True) if c.table == "metrics"]
    assert deep[0].state == "corrupt" and "SHA-256" in deep[0].problem and deep[0].affected == ("a",)
    part.write_bytes(bytes(data[: len(data) // 2]))
    quick = [c for c in store.check() if c.table == "metrics"][0]
    assert quick.state == "corrupt" and quick.problem.startswith(f"{rel}: ")
    assert [c.problem for c in store.index.quick_check()] == [quick.problem]
    with pytest.raises(CorruptDataError, match=rf"{rel}: damaged table part.*verify RUN --repair"):
        store.read("metrics")
    assert store.read("metrics", skip={"a"}).num_rows == 0
    part.unlink()
    assert [(c.state, c.path) for c in store.check() if c.table == "metrics"] == [("missing", rel)]


def test_a_part_without_its_record_is_never_read(tmp_path: Path) -> None:
    store = TableStore(tmp_path)
    store.write_scenario("a", {"scenarios": [_row("a")]})
    [record] = list((tmp_path / "commits").glob("seg-*.json"))
    record.unlink()  # a driver killed between the parts and their record: nothing committed
    assert store.reload().live == {} and store.read("scenarios").num_rows == 0 and store.check() == []
    store.write_scenario("b", {"scenarios": [_row("b")]})
    assert store.committed_ids() == {"b"}
    assert store.compact() >= 1  # the orphan part is removed
    assert len(list((tmp_path / "tables" / "scenarios").glob("*.parquet"))) == 1


def test_a_run_written_before_segments_is_read_and_compacted(tmp_path: Path) -> None:
    """Runs of the previous layout: one part per unit, committed by its scenarios part."""
    store = TableStore(tmp_path)
    schema = table_schema("scenarios")
    for sid in ("a", "b"):
        store._write(tmp_path / "tables" / "scenarios" / f"{sid}.parquet", pa.Table.from_pylist([_row(sid)], schema=schema))
    store._write(tmp_path / "tables" / "metrics" / "c.parquet", pa.Table.from_pylist(
        [{"scenario_id": "c", "target": "stitched", "channel": "phase"}], schema=table_schema("metrics")))
    assert store.committed_ids() == {"a", "b"}  # c has no scenarios part: not committed
    assert {(c.table, c.unit, c.state) for c in store.check(deep=True)} == {
        ("scenarios", "a", "unverified"), ("scenarios", "b", "unverified")}
    store.compact()
    assert store.committed_ids() == {"a", "b"} and store.read("metrics").num_rows == 0
    assert {c.state for c in store.check(deep=True)} == {"ok"}
    assert sorted(p.name for p in (tmp_path / "tables").rglob("*.parquet"))[0].startswith("seg-")
    assert len(list((tmp_path / "tables").rglob("*.parquet"))) == 1


def test_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        write_bytes_atomic(tmp_path / "x.json", b"{}")
        store = _store(tmp_path / "run")
        _write(store)
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o664
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert modes == {0o664}


def test_unknown_stage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unknown stage"):
        _store(tmp_path).write("nope", "k", {}, {})
