"""task_device: a stage task's compute path from what Ray gave it (pure; no Ray started)."""

from __future__ import annotations

import pytest

from ptycho_dist.orchestration.tasks import task_device


def _never() -> bool:
    raise AssertionError("CUDA must not be probed without a GPU id (or in a TF worker)")


@pytest.mark.parametrize(("gpus", "backend", "cuda", "expected"), [
    ([], None, _never, "numpy"),
    ([], "torch", _never, "numpy"),
    ([0], "tf", _never, "numpy"),          # a TF worker never imports torch
    ([0], "torch", lambda: True, "cuda"),
    ([0], None, lambda: True, "cuda"),
    ([1], "torch", lambda: False, "numpy"),  # an id but torch sees no CUDA
])
def test_task_device(gpus, backend, cuda, expected):
    assert task_device(gpus, backend=backend, cuda_available=cuda) == expected


def test_stitch_stage_context_defaults_to_numpy(tmp_path):
    from ptycho_dist.pipeline.base import StageContext

    assert StageContext(tmp_path).device == "numpy"
