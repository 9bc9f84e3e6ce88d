"""``ptycho-dist bench gpu``: the CPU smoke run writes every section; no GPU is said clearly."""

from __future__ import annotations

import json

import pytest

from ptycho_dist.bench.gpu import SECTIONS, NoGpuError, run_gpu
from ptycho_dist.cli import main

torch = pytest.importorskip("torch")


def test_bench_gpu_cpu_quick_writes_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--device", "cpu", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["device"] == "cpu" and doc["gpu"] is False and doc["quick"] is True
    for section in SECTIONS:
        assert len(doc[section]) >= 1, section
        for r in doc[section]:
            assert r["bench"] == f"gpu.{section}" and r["value"] > 0 and r["baseline_value"] > 0
            assert r["ratio"] == pytest.approx(r["value"] / r["baseline_value"])
    assert doc["seconds"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_gpu_without_gpu_says_so(capsys):
    with pytest.raises(NoGpuError, match="no CUDA device"):
        run_gpu(quick=True)
    assert main(["bench", "gpu", "--quick"]) == 2
    assert "no GPU" in capsys.readouterr().out
