"""Typed stage outputs: every output kind of the registry round-trips through the run's store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptycho_dist.errors import StorageError
from ptycho_dist.storage.outputs import (
    OUTPUT_TYPES,
    Bundle,
    Comparison,
    Evaluation,
    Groups,
    Outcome,
    Prediction,
    Reconstruction,
    SimulatedData,
    StageOutput,
)
from ptycho_dist.storage.run import RunLayout
from ptycho_dist.study import parse_study
from ptycho_dist.study.registry import OUTPUT_KINDS, REGISTRY


def _layout(tmp_path: Path) -> RunLayout:
    layout = RunLayout(tmp_path / "run")
    layout.initialize(parse_study("", source="<t>"), scenario_ids=[])
    return layout


def _examples(rng: np.random.Generator) -> dict[str, StageOutput]:
    c = (rng.normal(size=(3, 1, 8, 8)) + 1j * rng.normal(size=(3, 1, 8, 8))).astype(np.complex64)
    return {
        "simulated": SimulatedData(object=c[0, 0], probe=c[1, 0], positions=rng.normal(size=(3, 2)),
                                   counts=rng.poisson(4.0, size=(3, 8, 8)).astype(np.float32),
                                   truth_patches=c[:, 0], scale=2.5, nphotons=1e6, probe_factor=0.3,
                                   has_truth=True),
        "groups": Groups(indices=np.arange(3)[:, None], centers=rng.normal(size=(3, 2)),
                         relative=np.zeros((3, 1, 2)), gridsize=1),
        "bundle": Bundle(weights={"w": rng.normal(size=(2, 3)).astype(np.float32)},
                         meta={"backend": "torch", "config": {"n": 8}, "norm_factor": 0.5, "log_scale": 1.25}),
        "prediction": Prediction(patches=c, backend="tf", amplitude=np.abs(c).astype(np.float32)),
        "reconstruction": Reconstruction(canvas=c[0, 0], coverage=np.ones((8, 8)), origin=[1.5, -2.0], crop=4,
                                         frame="object"),
        "evaluation": Evaluation(metrics=[{"target": "stitched", "channel": "amplitude", "ssim": 0.75}],
                                 bias=[{"ls_scale": 1.1}]),
        "comparison": Comparison(row={"pair_id": "p", "delta_amp_ssim": -0.01}),
    }


def test_every_output_kind_has_one_type() -> None:
    assert set(OUTPUT_TYPES) == set(OUTPUT_KINDS)
    assert {d.output for d in REGISTRY} <= set(OUTPUT_KINDS)


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_round_trip(tmp_path: Path, rng: np.random.Generator, kind: str) -> None:
    layout, out = _layout(tmp_path), _examples(rng)[kind]
    stage = next(d.name for d in REGISTRY if d.output == kind)
    assert not layout.outputs.is_complete(stage, "k")
    layout.outputs.write(stage, "k", out, Outcome("ok", 1.5, {"metrics": [{"x": 1}]}, {"note": "n"}))
    back = layout.outputs.read(stage, "k", type(out))
    for name, value in vars(out).items():
        got = getattr(back, name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
            assert got.dtype == value.dtype
        elif kind == "bundle" and name == "weights":
            np.testing.assert_array_equal(got["w"], value["w"])
        elif kind == "bundle" and name == "meta":
            assert got == {"format": 1, **value}  # bundle.json records its format
        else:
            assert got == value, name
    oc = layout.outputs.outcome(stage, "k")
    assert oc is not None and oc.status == "ok" and oc.seconds == 1.5 and oc.rows == {"metrics": [{"x": 1}]}


def test_oracle_prediction_has_no_amplitude(tmp_path: Path, rng: np.random.Generator) -> None:
    layout = _layout(tmp_path)
    layout.outputs.write("oracle", "k", Prediction(patches=np.ones((2, 1, 4, 4), np.complex64), backend="oracle", amplitude=None),
                         Outcome("ok", 0.0, {}, {}))
    assert layout.outputs.read("oracle", "k", Prediction).amplitude is None


def test_wrong_kind_is_refused_both_ways(tmp_path: Path, rng: np.random.Generator) -> None:
    layout, ex = _layout(tmp_path), _examples(rng)
    with pytest.raises(StorageError, match="stage 'stitch' stores 'reconstruction' outputs, got a 'groups' one"):
        layout.outputs.write("stitch", "k", ex["groups"], Outcome("ok", 0.0, {}, {}))
    assert not layout.outputs.is_complete("stitch", "k")  # nothing half-written
    layout.outputs.write("stitch", "k", ex["reconstruction"], Outcome("ok", 0.0, {}, {}))
    with pytest.raises(StorageError, match="stores 'reconstruction' outputs, not 'simulated'"):
        layout.outputs.read("stitch", "k", SimulatedData)


def test_a_stage_without_output_is_complete_but_has_nothing_to_read(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.outputs.write("evaluate", "k", None, Outcome("ok", 0.0, {}, {}))
    assert layout.outputs.is_complete("evaluate", "k")
    with pytest.raises(StorageError, match="stored no output"):
        layout.outputs.read("evaluate", "k", Evaluation)
