"""The command line: exit codes and one-line messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.cli import main
from ptycho_dist.errors import GroupingError, ModelError, SpecError, StorageError

ROOT = Path(__file__).resolve().parents[1]


def test_validate_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "studies" / "quickstart.toml")]) == 0
    out = capsys.readouterr().out
    assert "28 scenarios" in out and "grouping.gridsize" in out and "scan.kind" in out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[base.dose]\nnphotons = -1.0\n", "base.dose.nphotons"),
        ("[study\n", "malformed TOML"),
        ('[axes]\n"nope.x" = [1]\n', 'axes."nope.x"'),
    ],
)
def test_validate_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(content)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(spec) in err and needle in err and "Traceback" not in err


def test_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["validate", str(missing)]) == 2
    assert f"{missing}: no such study file" in capsys.readouterr().err


def test_schema_command_prints_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "ptycho_dist study file"


def test_console_script_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[base.grouping]\ngridsize = 0\n")
    proc = subprocess.run([sys.executable, "-m", "ptycho_dist.cli", "validate", str(spec)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ptycho-dist validate: {spec}: base.grouping.gridsize: Input should be 1, 2 or 3, got 0"


def test_query_csv_holds_list_columns() -> None:
    import pyarrow as pa

    from ptycho_dist.report.summary import format_table

    table = pa.table({"gs": [1, 2], "widths": [[0.5, 1.0], None], "name": ["a", "b"]})
    lines = format_table(table, "csv").splitlines()
    assert lines[0] == '"gs","widths","name"'
    assert lines[1] == '1,"[0.5, 1.0]","a"' and lines[2] == '2,,"b"'


@pytest.mark.parametrize(("exc", "code", "prefix"), [
    (SpecError("x.toml: base.dose.nphotons: bad"), 2, "ptycho-dist validate: x.toml"),
    (StorageError("run/arrays.zarr: unreadable"), 1, "ptycho-dist validate: storage error: run/"),
    (ModelError("no CUDA device"), 1, "ptycho-dist validate: model error: no CUDA"),
    (GroupingError("too few positions"), 1, "ptycho-dist validate: error: too few"),
])
def test_exit_codes_come_from_one_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                        exc: Exception, code: int, prefix: str) -> None:
    import ptycho_dist.cli as cli

    def boom(args: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_validate", boom)
    assert cli.main(["validate", "whatever.toml"]) == code
    assert capsys.readouterr().err.startswith(prefix)


def _npz_study(tmp_path: Path, probe_path: Path, axes: str = "") -> Path:
    spec = tmp_path / "npz.toml"
    spec.write_text(f'[base.object]\nsize = 80\n[base.probe]\nkind = "npz"\nn = 32\npath = "{probe_path}"\n{axes}')
    return spec


def test_validate_accepts_a_ptychopinn_npz_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe = tmp_path / "probe.npz"
    np.savez(probe, probeGuess=np.ones((32, 32), np.complex64), xcoords=np.zeros(3))
    assert main(["validate", str(_npz_study(tmp_path, probe))]) == 0
    # a file that does not exist yet is left to the simulate stage (it may be written before the run)
    assert main(["validate", str(_npz_study(tmp_path, tmp_path / "later.npz"))]) == 0


@pytest.mark.parametrize(("arrays", "axes", "needles"), [
    ({"xcoords": np.zeros(3)}, "", ["base.probe.path", "no array 'probeGuess'", "found: xcoords"]),
    ({"probeGuess": np.ones((64, 64), complex)}, "",
     ["base.probe.path", "'probeGuess' has shape (64, 64), expected (32, 32)", "probe.n = 32"]),
    ({"probeGuess": np.ones((32, 32), np.int32)}, "", ["base.probe.path", "dtype int32"]),
    ({"probeGuess": np.ones((32, 32), complex)}, '[axes]\n"probe.n" = [32, 64]\n',
     ["base.probe.path", "shape (32, 32), expected (64, 64)", "probe.n = 64"]),
])
def test_validate_bad_npz_probe_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       arrays: dict[str, np.ndarray], axes: str, needles: list[str]) -> None:
    probe = tmp_path / "probe.npz"
    np.savez(probe, **arrays)  # type: ignore[arg-type]
    spec = _npz_study(tmp_path, probe, axes)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ptycho-dist validate: {spec}: ") and "Traceback" not in err
    assert str(probe) in err and all(needle in err for needle in needles), err


def test_validate_names_the_axis_value_that_gave_a_bad_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    np.savez(good, probeGuess=np.ones((32, 32), complex))
    np.savez(bad, probeGuess=np.ones((16, 16), complex))
    spec = _npz_study(tmp_path, good, f'[axes]\n"probe.path" = ["{good}", "{bad}"]\n')
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f'{spec}: axes."probe.path"[1]: {bad}: array \'probeGuess\' has shape (16, 16)' in err


@pytest.mark.parametrize("spec", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "studies").rglob("*.toml")))
def test_every_shipped_study_validates(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / spec)]) == 0, capsys.readouterr().err


def test_query_output_without_arrow_matches_the_arrow_rendering() -> None:
    import pyarrow as pa

    from ptycho_dist.report.summary import format_table
    from ptycho_dist.report.text import format_rows

    table = pa.table({"gs": [1, 2], "ok": [True, None], "x": [0.25, 1e-7], "widths": [[0.5, 1.0], None],
                      "name": ['a "q"', None]})
    rows = [tuple(r.values()) for r in table.to_pylist()]
    for fmt in ("csv", "json", "text"):
        assert format_rows(table.column_names, rows, fmt) == format_table(table, fmt), fmt
