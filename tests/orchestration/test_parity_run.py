"""The parity table from a real run: torch and tf arms on the same data, and a sign-flipped tf arm.

Torch and TF run in separate Ray worker pools; this test process imports neither.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.results import open as open_run
from ptycho_dist.study import parse_study

pytestmark = pytest.mark.ray

SPEC = """
[study]
name = "parity"
seed = 5
[base.object]
size = 80
[base.probe]
n = 32
[base.scan]
step = 8.0
n_positions = 25
[base.stitch]
crop = 16
[base.grouping]
gridsize = 2
[base.model]
filters = [8, 16]
[base.training]
epochs = 1
batch_size = 8
[[axes.zip]]
"model.backend" = ["torch", "tf", "tf"]
"model.relative_sign" = [1, 1, -1]
"""


def test_parity_rows_and_a_flipped_sign_fails_loudly(ray_session: object, tmp_path: Path) -> None:
    summary = run_study(parse_study(SPEC, source="<parity>"), RunOptions(out=tmp_path, progress=False))
    assert summary.status["ok"] == 3, summary.failures
    assert summary.stages_run["transplant"] == 4 and summary.stages_run["parity"] == 2
    rows = {r["relative_sign_b"]: r for r in open_run(summary.run_dir).table("parity").to_pylist()}
    same, flipped = rows[1], rows[-1]
    for r in (same, flipped):
        assert (r["backend_a"], r["backend_b"]) == ("torch", "tf")
    # same weights, same conventions: the two backends compute the same function (float32)
    assert same["forward_parity_ok"] is True
    assert max(same[f"fwd_{w}_max_rel_{d}"] for w in ("obj", "amp") for d in ("ab", "ba")) < 1e-5
    # the older code's negated offsets in one backend: the figure fails loudly, not by a rounding error
    assert flipped["forward_parity_ok"] is False
    assert flipped["fwd_obj_max_rel_ab"] > 0.1 and flipped["fwd_obj_max_rel_ba"] > 0.1
