"""`ptycho-dist query` is read-only: no writes, no attaching, no extension installs, no files outside
the run; a refused statement is one line and exit 2 (issue #16, item 5)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ptycho_dist.cli import main
from ptycho_dist.results import QueryRefused, check_read_only
from ptycho_dist.storage.run import RunLayout


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder with a study.json and one metrics part (no Ray needed)."""
    from ptycho_dist.storage.specs import load_study

    spec = tmp_path / "s.toml"
    spec.write_text('[study]\nname = "ro"\n[base.object]\nsize = 128\n[base.probe]\nn = 32\n'
                    '[base.scan]\nn_positions = 36\n')
    study = load_study(spec)
    layout = RunLayout.for_study(tmp_path / "runs", "ro")
    from ptycho_dist.study import scenario_id

    layout.initialize(study, scenario_ids=[scenario_id(s) for s in study.scenarios])
    return layout.root


@pytest.mark.parametrize("statement", [
    "copy (select 1) to '/tmp/ptycho-dist-ro.csv'",
    "attach '/tmp/ptycho-dist-ro.db'",
    "install httpfs",
    "load httpfs",
    "drop view metrics",
    "create table t as select 1",
    "set threads = 1",
    "pragma version",
    "select 1; drop view metrics",
    "export database '/tmp/ptycho-dist-ro'",
    "call pragma_version()",
])
def test_refused_statements(statement: str, run_dir: Path, capsys: pytest.CaptureFixture[str],
                            tmp_path: Path) -> None:
    with pytest.raises(QueryRefused):
        check_read_only(statement)
    assert main(["query", str(run_dir), statement]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused" in err
    assert not Path("/tmp/ptycho-dist-ro.csv").exists() and not Path("/tmp/ptycho-dist-ro.db").exists()


@pytest.mark.parametrize("reader", ["read_text('/etc/passwd')", "read_csv('/etc/hosts')",
                                    "read_parquet('/nonexistent/*.parquet')", "read_text('{run}/../../x')"])
def test_no_files_outside_the_run(reader: str, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", str(run_dir), f"select * from {reader.format(run=run_dir)}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused" in err and "run's own files" in err


@pytest.mark.parametrize("query", ["select count(*) as n from scenarios", "describe metrics", "show tables",
                                   "with a as (select 1 as x) select * from a", "from diagnostics limit 1",
                                   "summarize select 1 as x", "explain select 1"])
def test_queries_still_work(query: str, run_dir: Path) -> None:
    assert main(["query", str(run_dir), query]) == 0


def test_results_api_reads_the_run(run_dir: Path) -> None:
    from ptycho_dist.results import open as open_run

    run = open_run(run_dir)
    assert isinstance(run.sql("select count(*) from metrics"), pa.Table)
    assert run.sql(f"select count(*) as n from read_text('{run_dir}/study.json')").column("n")[0].as_py() == 1
