"""The runner benchmark's parts that need no Ray, the light commands' imports, and (slow) a quick run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ptycho_dist.bench.runner import count_files, driver_memory, tiny_study
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.storage.tables import TableStore, Unit, flatten_scenario
from ptycho_dist.study import scenario_id

ROOT = Path(__file__).resolve().parents[2]


def test_driver_memory_is_fitted_by_a_line() -> None:
    peaks, slope, intercept = driver_memory([4, 8, 16])
    assert len(peaks) == 3 and peaks[0] < peaks[1] < peaks[2]
    assert slope > 0 and abs(intercept + slope * 16 - peaks[2]) < 0.2 * peaks[2]


def test_replicates_share_their_sections() -> None:
    study = tiny_study(3)
    a, b, c = study.scenarios
    assert len({scenario_id(s) for s in study.scenarios}) == 3 and [s.replicate for s in study.scenarios] == [0, 1, 2]
    assert a.probe is b.probe is c.probe and a.scan is c.scan  # one copy per distinct section
    assert b.to_dict() == {**a.to_dict(), "replicate": 1}


def _fake_run(tmp_path: Path, n: int) -> Path:
    study = tiny_study(n)
    layout = RunLayout(tmp_path / "run")
    ids = [scenario_id(s) for s in study.scenarios]
    layout.initialize(study, scenario_ids=ids)
    rows = [Unit(sid, "scenario", {
        "scenarios": [{"scenario_id": sid, "study": "t", "status": "ok", "finished_at": datetime.now(UTC),
                       **flatten_scenario(s)}],
        "metrics": [{"target": "stitched", "channel": "amplitude", "ssim": 0.9}]}) for sid, s in zip(ids, study.scenarios)]
    store = TableStore(layout.root)
    for i in range(0, n, 4):
        store.write_units(rows[i:i + 4])
    return layout.root


def test_compaction_leaves_a_few_files_whatever_the_number_of_scenarios(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, 24)
    tables = TableStore(run)
    assert tables.files() == 6 * 3 + 1  # 6 segments of (2 parts + 1 record), the schema file
    tables.compact()
    assert tables.files() == 2 + 1 + 1 and len(tables.committed_ids()) == 24
    assert count_files(run) < 24  # the whole run: fewer files than scenarios


@pytest.mark.parametrize("command", [["query", "{run}", "select count(*) as n from metrics"], ["status", "{run}"]])
def test_light_commands_import_neither_the_numerics_nor_zarr(tmp_path: Path, command: list[str]) -> None:
    run = _fake_run(tmp_path, 8)
    args = [a.format(run=run) for a in command]
    code = ("import json, sys\nfrom ptycho_dist.cli import main\n"
            f"rc = main({args!r})\n"
            "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0
    heavy = {"scipy", "skimage", "zarr", "pyarrow", "ray", "torch", "tensorflow", "pydantic", "numcodecs"}
    assert heavy.isdisjoint({m.split(".")[0] for m in out["modules"]})
    if command[0] == "query":
        assert " 8 " in proc.stdout or "8" in proc.stdout.splitlines()[-2]


@pytest.mark.slow
@pytest.mark.ray
def test_quick_runner_bench_reports_every_figure() -> None:
    from ptycho_dist.bench.runner import run

    records = {r.metric.split(" ")[0]: r for r in run(quick=True, scenarios=12)}
    assert set(records) == {"ms_per_stage_task", "files_per_scenario_after_compaction", "driver_bytes_per_scenario",
                            "query_count_seconds"}
    assert records["files_per_scenario_after_compaction"].value < records["files_per_scenario_after_compaction"].baseline_value
    assert all(r.value > 0 and r.baseline_value > 0 for r in records.values())
