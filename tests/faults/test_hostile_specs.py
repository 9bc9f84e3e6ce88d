"""Every malformed or hostile study file is exit 2 at validate with its field path and no traceback;
the valid ones are accepted (issue #16, item 1). The cases: tests/faults/hostile_specs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.hostile_specs import FILE_CASES, TABLE, all_cases, classify, generated_cases, make_file_case

CASES = [*generated_cases(), *TABLE]


def test_enough_cases_from_the_schema() -> None:
    generated = list(generated_cases())
    assert len(generated) >= 300            # every leaf field of the schema x its bad values
    assert len({name for name, _, _ in generated}) == len(generated)
    assert sum(1 for _, _, field in TABLE if field is not None) >= 20


@pytest.mark.parametrize(("name", "text", "field"), CASES, ids=[c[0] for c in CASES])
def test_case(name: str, text: str, field: str | None, tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    outcome = classify(name, path, field)
    assert outcome.kind != "traceback", outcome.message
    if field is None:
        assert outcome.kind == "accepted", outcome.message
    else:
        assert outcome.kind == "rejected", f"{name} was accepted"
        assert outcome.message.count("\n") == 0, outcome.message
        assert field in outcome.message or field == "<file>", outcome.message
        assert "Traceback" not in outcome.message


@pytest.mark.parametrize("name", FILE_CASES)
def test_file_case(name: str, tmp_path: Path) -> None:
    outcome = classify(name, make_file_case(name, tmp_path), "<file>")
    assert outcome.kind == "rejected", outcome
    assert outcome.message.count("\n") == 0


def test_all_cases_counted(tmp_path: Path) -> None:
    """The module's own counting (python -m tests.faults.hostile_specs) sees every case."""
    assert len(list(all_cases(tmp_path))) == len(CASES) + len(FILE_CASES)


def test_memory_estimate_names_the_size(tmp_path: Path) -> None:
    text = dict((n, t) for n, t, _ in TABLE)["n_positions_1e9"]
    path = tmp_path / "s.toml"
    path.write_text(text)
    outcome = classify("n_positions_1e9", path, "base.scan.n_positions")
    assert "1000000000 patterns of 32 x 32" in outcome.message and "TiB" in outcome.message
    assert "resources.memory_gb" in outcome.message
    # the budget is a field: raising it accepts the same scenario
    assert "[base.resources]" not in text
    path.write_text(text + "[base.resources]\nmemory_gb = 20000.0\n")
    assert classify("raised", path, None).kind == "accepted"
