"""The parity table from a real run: torch and tf arms on the same data, and a sign-flipped tf arm.

Torch and TF run in separate Ray worker pools; this test process imports neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.report.summary import metrics_overview, training_parity
from ptycho_dist.results import open as open_run
from ptycho_dist.study import parse_study
from runner_specs import SMALL_BASE

pytestmark = pytest.mark.ray

SPEC = '[study]\nname = "parity"\nseed = 5\n' + SMALL_BASE + """
[base.grouping]
gridsize = 2
[base.model]
filters = [8, 16]
[base.training]
epochs = 1
batch_size = 8
[axes]
"training.seed" = [0, 1]
exclude = [{ "faults.relative_sign" = -1, "training.seed" = 1 }]
[[axes.zip]]
"model.backend" = ["torch", "tf", "tf"]
"faults.relative_sign" = [1, 1, -1]
"""


def test_parity_rows_and_a_flipped_sign_fails_loudly(ray_session: object, tmp_path: Path) -> None:
    summary = run_study(parse_study(SPEC, source="<parity>"), RunOptions(out=tmp_path, progress=False))
    assert summary.status["ok"] == 5, summary.failures
    assert summary.stages_run["transplant"] == 6 and summary.stages_run["parity"] == 3
    run = open_run(summary.run_dir)
    rows = {(r["relative_sign_b"], r["training_seed"]): r for r in run.table("parity").to_pylist()}
    assert set(rows) == {(1, 0), (1, 1), (-1, 0)}
    for r in rows.values():
        assert (r["backend_a"], r["backend_b"]) == ("torch", "tf")
    for seed in (0, 1):
        same = rows[1, seed]
        # same weights, same conventions: the two backends compute the same function (float32)
        assert same["forward_parity_ok"] is True
        assert max(same[f"fwd_{w}_max_rel_{d}"] for w in ("obj", "amp") for d in ("ab", "ba")) < 1e-5
    # the older code's negated offsets in one backend: the figure fails loudly, not by a rounding error
    flipped = rows[-1, 0]
    assert flipped["forward_parity_ok"] is False
    assert flipped["fwd_obj_max_rel_ab"] > 0.1 and flipped["fwd_obj_max_rel_ba"] > 0.1
    # the two training seeds share the data (one cell per backend pair) but train different weights
    assert rows[1, 0]["seed_cell"] == rows[1, 1]["seed_cell"] == rows[-1, 0]["seed_cell"]
    assert rows[1, 0]["amp_ssim_a"] != rows[1, 1]["amp_ssim_a"]
    # training parity: one line per backend pair, the tolerance recomputed from the per-seed SSIMs
    table = {r["pair"]: r for r in training_parity(run).to_pylist()}
    assert set(table) == {"torch vs tf"}  # the flipped arm has one seed: no spread, no line
    line = table["torch vs tf"]
    a = [rows[1, s]["amp_ssim_a"] for s in (0, 1)]
    b = [rows[1, s]["amp_ssim_b"] for s in (0, 1)]
    assert line["seeds"] == 2
    assert line["tolerance"] == pytest.approx(3 * float(np.hypot(np.std(a, ddof=1), np.std(b, ddof=1))))
    assert line["max_abs_delta"] == pytest.approx(max(abs(x - y) for x, y in zip(a, b)))
    assert line["within_tolerance"] == (line["max_abs_delta"] <= line["tolerance"])
    # the terminal overview keeps swept axes apart: one row per (arm, seed), never seeds averaged
    overview = metrics_overview(run).to_pylist()
    assert sorted((r["arm"], r["training_seed"]) for r in overview) == [
        ("tf", 0), ("tf", 1), ("tf relative_sign=-1", 0), ("torch", 0), ("torch", 1)]
    assert all(r["replicates"] == 1 for r in overview)
