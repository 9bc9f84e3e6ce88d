"""OS errors inside a stage (a full disk) are failed outcomes with one line; nothing half-written is
kept; a damaged input is named for the driver to remove."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ptycho_dist.pipeline import StageContext, execute_stage
from ptycho_dist.storage.arrays import STAGING
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import parse_study, scenario_keys, scenario_tasks
from runner_specs import SMALL_BASE


def _setup(tmp_path: Path) -> tuple[StageContext, list]:
    s = parse_study(SMALL_BASE, source="<test>").scenarios[0]
    layout = RunLayout(tmp_path / "run")
    layout.initialize(parse_study("", source="<test>"), scenario_ids=[scenario_keys(s).scenario])
    return StageContext(layout.root), scenario_tasks(s)


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr.storage._local as local

    real = local._put

    def put(path: Path, value: object, exclusive: bool = False) -> int:
        if "/c/" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, value, exclusive)

    monkeypatch.setattr(local, "_put", put)


def test_enospc_in_a_stage_is_a_failed_outcome_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, tasks = _setup(tmp_path)
    simulate, group = tasks[0], tasks[1]
    assert execute_stage(ctx, simulate).status == "ok"
    _full_disk(monkeypatch)
    out = execute_stage(ctx, group)
    assert out.status == "failed" and out.error is not None
    assert out.error.startswith("OSError: [Errno 28] No space left on device") and "\n" not in out.error
    assert out.traceback and "Traceback" in out.traceback  # the traceback goes to logs/, not the row
    assert not ctx.layout.arrays.group_dir("group", group.key).exists()
    assert not any((ctx.layout.arrays.path / STAGING).iterdir())
    monkeypatch.undo()
    again = execute_stage(ctx, group)  # space freed: the same task succeeds
    assert again.status == "ok" and not again.cached
    assert execute_stage(ctx, group).cached


def test_a_damaged_input_is_named(tmp_path: Path) -> None:
    ctx, tasks = _setup(tmp_path)
    simulate, group = tasks[0], tasks[1]
    execute_stage(ctx, simulate)
    chunk = next(p for p in (ctx.layout.arrays.group_dir("simulate", simulate.key) / "positions" / "c").rglob("*")
                 if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    out = execute_stage(ctx, group)
    assert out.status == "failed" and out.info["corrupt_input"] == ["simulate", simulate.key]
    assert out.error is not None and "positions: damaged" in out.error and "\n" not in out.error
