"""One model configuration: what ``validate`` accepts, the train stage accepts, and back.

Every model, training and grouping field is walked over and just inside its limits, alone and in
the combinations whose rules cross fields, for the oracle arm and both PINN arms, written in
``[base]`` and as an axis. Two verdicts are compared:

* the spec's: :func:`ptycho_dist.study.parse_study` (what ``ptycho-dist validate`` runs);
* the train stage's, on the *raw* values (no spec model involved): grouping the scan positions
  (:func:`ptycho_dist.grouping.group_positions`), building the backends' configuration
  (:class:`ptycho_dist.models.PinnConfig`) and preparing the training arrays
  (:class:`~ptycho_dist.models.TrainData`, :func:`~ptycho_dist.models.prepare_arrays`: the seeded
  split), as the train stage does before it fits.

Checked both ways: whatever the spec accepts, the train stage accepts (and
``PinnConfig.from_scenario`` gives the same configuration); whatever the train stage rejects, the
spec rejects with ``<file>: <dotted.path>: <message>`` naming a field of the case. The table also
pins the expected verdicts, so that a rule that disappears from both sides is caught.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from ptycho_dist import grouping
from ptycho_dist.errors import GroupingError, ModelError, SpecError
from ptycho_dist.models import PinnConfig, TrainData, prepare_arrays
from ptycho_dist.models.config import SPEC_FIELDS
from ptycho_dist.study import Scenario, parse_study

SRC = "studies/limits.toml"
ARMS = ("oracle", "torch", "tf")
T, F = True, False

# (values set on the scenario, accepted for a torch/tf arm, accepted for the oracle arm)
CASES: list[tuple[dict[str, Any], bool, bool]] = [
    # patch size: the PINN takes 32, 64, 128 (the oracle arm any power of two)
    ({"probe.n": 16, "stitch.crop": 16}, F, T),
    ({"probe.n": 32}, T, T),
    ({"probe.n": 128}, T, T),
    ({"probe.n": 256}, F, T),
    # encoder filters: positive, one per encoder block (log2(N) - 3)
    ({"probe.n": 32, "model.filters": [8]}, F, T),
    ({"probe.n": 32, "model.filters": [8, 16]}, T, T),
    ({"probe.n": 32, "model.filters": [8, 16, 32]}, F, T),
    ({"model.filters": [1, 1, 1]}, T, T),
    ({"model.filters": [1, 1]}, F, T),
    ({"probe.n": 128, "model.filters": [1, 1, 1, 1]}, T, T),
    ({"probe.n": 128, "model.filters": [1, 1, 1]}, F, T),
    ({"model.filters": [1, 0, 1]}, F, F),
    ({"model.filters": []}, F, F),
    # width scale (PtychoPINN's n_filters_scale): filters n_filters_scale * 32 * 2**i; with
    # explicit filters the two must agree
    ({"model.n_filters_scale": 0}, F, F),
    ({"model.n_filters_scale": 1}, T, T),
    ({"model.n_filters_scale": 1.5}, F, F),
    ({"probe.n": 128, "model.n_filters_scale": 3}, T, T),
    ({"model.n_filters_scale": 1, "model.filters": [32, 64, 128]}, T, T),
    ({"model.n_filters_scale": 1, "model.filters": [64, 128, 256]}, F, T),
    ({"probe.n": 32, "model.n_filters_scale": 2, "model.filters": [64, 128]}, T, T),
    ({"probe.n": 32, "model.n_filters_scale": 2, "model.filters": [64, 128, 256]}, F, T),
    # initial weights
    ({"model.init": "torch"}, T, T),
    ({"model.init": "keras"}, T, T),
    ({"model.init": "xavier"}, F, F),
    ({"model.loss": "mae"}, T, T),
    ({"model.loss": "mse"}, F, F),
    ({"model.amp_activation": "swish"}, T, T),
    ({"model.log_scale_init": "nphotons"}, T, T),
    # learning rate and its reduce-on-plateau floor (default min_lr 1e-4)
    ({"training.lr": 5e-5}, F, T),
    ({"training.lr": 1e-4}, T, T),
    ({"training.lr": 5e-5, "training.min_lr": 5e-5}, T, T),
    ({"training.lr": 5e-5, "training.min_lr": 0.0}, T, T),
    ({"training.lr": 0.0, "training.min_lr": 0.0}, F, F),
    ({"training.lr": 1e6, "training.min_lr": 0.0}, T, T),
    ({"training.min_lr": -1e-9}, F, F),
    ({"training.min_lr": 1e-3}, T, T),
    ({"training.min_lr": 1.1e-3}, F, T),
    # schedule
    ({"training.batch_size": 0}, F, F),
    ({"training.batch_size": 1}, T, T),
    ({"training.epochs": -1}, F, F),
    ({"training.epochs": 0}, T, T),
    ({"training.plateau_factor": 0.0}, F, F),
    ({"training.plateau_factor": 1e-9}, T, T),
    ({"training.plateau_factor": 0.999}, T, T),
    ({"training.plateau_factor": 1.0}, F, F),
    ({"training.plateau_patience": -1}, F, F),
    ({"training.plateau_patience": 0}, T, T),
    ({"training.early_stopping_patience": -1}, F, F),
    ({"training.early_stopping_patience": 0}, T, T),
    ({"training.schedule": "ptychopinn"}, T, T),
    ({"training.schedule": "keras"}, F, F),
    ({"training.schedule": "ptychopinn", "training.early_stopping_patience": 3,
      "training.val_fraction": 0.05, "model.loss": "mae", "model.n_filters_scale": 2}, T, T),
    # the split: n_val = round(val_fraction * B), at least 1; the training split keeps a group
    ({"training.val_fraction": -0.01}, F, F),
    ({"training.val_fraction": 0.0}, T, T),
    ({"training.val_fraction": 0.9}, T, T),
    ({"training.val_fraction": 0.91}, F, F),
    ({"training.n_train": 0}, F, F),
    ({"training.n_train": 1}, F, T),
    ({"training.n_train": 2}, T, T),
    ({"training.n_train": 1, "training.val_fraction": 0.0}, T, T),
    ({"training.n_train": 2, "training.val_fraction": 0.75}, F, T),   # round(1.5) = 2: none left
    ({"training.n_train": 2, "training.val_fraction": 0.7}, T, T),    # round(1.4) = 1
    ({"training.n_train": 4, "training.val_fraction": 0.9}, F, T),    # round(3.6) = 4
    ({"training.n_train": 5, "training.val_fraction": 0.9}, T, T),    # round(4.5) = 4
    ({"grouping.n_groups": 0}, F, F),
    ({"grouping.n_groups": 1}, F, T),
    ({"grouping.n_groups": 2}, T, T),
    ({"grouping.n_groups": 1, "training.val_fraction": 0.0}, T, T),
    ({"scan.kind": "random", "scan.n_positions": 1}, F, T),
    ({"scan.kind": "random", "scan.n_positions": 2}, T, T),
    # grouping: K >= C - 1 neighbours, at least C positions
    ({"grouping.gridsize": 0}, F, F),
    ({"grouping.gridsize": 3}, T, T),
    ({"grouping.gridsize": 4}, F, F),
    ({"grouping.k_neighbors": 0}, F, F),
    ({"grouping.k_neighbors": 1}, T, T),
    ({"grouping.gridsize": 2, "grouping.k_neighbors": 2}, F, F),
    ({"grouping.gridsize": 2, "grouping.k_neighbors": 3}, T, T),
    ({"grouping.gridsize": 3, "grouping.k_neighbors": 7}, F, F),
    ({"grouping.gridsize": 3, "grouping.k_neighbors": 8}, T, T),
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 3}, F, F),
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 4}, F, T),  # 1 group only
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 5}, T, T),  # C(5, 4) = 5
    # explicit group counts against the distinct groups the positions allow
    ({"scan.kind": "random", "scan.n_positions": 5, "grouping.n_groups": 5}, T, T),
    ({"scan.kind": "random", "scan.n_positions": 5, "grouping.n_groups": 6}, F, F),
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 5, "grouping.n_groups": 5}, T, T),
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 5, "grouping.n_groups": 6}, F, F),
]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def study_text(arm: str, values: Mapping[str, Any], *, as_axes: bool) -> str:
    """The study file: ``values`` in ``[base.<section>]`` tables, or as one ``[[axes.zip]]``."""
    base: dict[str, dict[str, Any]] = {"model": {"backend": arm}}
    if not as_axes:
        for path, value in values.items():
            section, field = path.split(".")
            base.setdefault(section, {})[field] = value
    lines = [f"[base.{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items())
             for section, fields in base.items()]
    if as_axes:
        lines.append("[[axes.zip]]\n" + "".join(f'"{p}" = [{_toml(v)}]\n' for p, v in values.items()))
    return "\n".join(lines)


def raw_scenario(arm: str, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with ``values``, never validated by a spec model."""
    raw: dict[str, dict[str, Any]] = Scenario().to_dict()
    raw["model"]["backend"] = arm
    for path, value in values.items():
        section, field = path.split(".")
        raw[section][field] = value
    return raw


def train_stage_verdict(raw: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The first error the train stage's preparation raises for a spec reason, or None.

    Grouping (every arm) on enough raster positions (``scan.n_positions`` when set), then for a
    PINN arm the configuration and the training arrays of the groups (first ``n_train``).
    """
    g, sc, t = raw["grouping"], raw["scan"], raw["training"]
    count = sc["n_positions"] if sc["n_positions"] is not None else 100
    positions = np.stack(np.meshgrid(np.arange(10) * 8.0, np.arange(10) * 8.0), -1).reshape(-1, 2)
    gridsize = g["gridsize"]
    k = g["k_neighbors"] if g["k_neighbors"] is not None else max(6, gridsize**2 - 1)
    try:
        groups = grouping.group_positions(positions[:count], gridsize=gridsize, k_neighbors=k,
                                          n_groups=g["n_groups"], rng=0)
    except GroupingError as exc:
        return f"grouping: {exc}"
    if raw["model"]["backend"] == "oracle":
        return None
    try:
        # fields added later (spec late_fields) are absent from the dict while at their default
        config = PinnConfig(**{name: raw[section][field] for name, (section, field) in SPEC_FIELDS.items()
                               if field in raw[section]})
    except SpecError as exc:
        return f"config: {exc}"
    n, relative = raw["probe"]["n"], groups.relative[: t["n_train"]]
    data = TrainData(counts=np.ones(relative.shape[:2] + (n, n), np.float32), scale=1.0,
                     probe=np.ones((n, n), np.complex64), relative=relative, nphotons=1e5)
    try:
        prepare_arrays(data, config, seed=0)
    except ModelError as exc:
        return f"data: {exc}"
    return None


def spec_verdict(arm: str, values: Mapping[str, Any], *, as_axes: bool) -> tuple[Scenario | None, str | None]:
    try:
        study = parse_study(study_text(arm, values, as_axes=as_axes), source=SRC)
    except SpecError as exc:
        return None, str(exc)
    assert len(study.scenarios) == 1
    return study.scenarios[0], None


@pytest.mark.parametrize("as_axes", [False, True], ids=["base", "axes"])
@pytest.mark.parametrize("arm", ARMS)
@pytest.mark.parametrize(("values", "pinn_ok", "oracle_ok"), CASES,
                         ids=[",".join(f"{p}={v}" for p, v in c[0].items()) for c in CASES])
def test_validate_and_train_stage_agree(values: dict[str, Any], pinn_ok: bool, oracle_ok: bool,
                                        arm: str, as_axes: bool) -> None:
    scenario, spec_error = spec_verdict(arm, values, as_axes=as_axes)
    model_error = train_stage_verdict(raw_scenario(arm, values))
    # what validate accepts, the train stage accepts ...
    if spec_error is None:
        assert scenario is not None
        assert model_error is None, f"validate accepts but the train stage rejects: {model_error}"
        if arm != "oracle":
            raw = raw_scenario(arm, values)
            by_hand = PinnConfig(**{name: raw[s][f] for name, (s, f) in SPEC_FIELDS.items() if f in raw[s]})
            assert PinnConfig.from_scenario(scenario) == by_hand
    # ... and what the train stage rejects, validate rejects, naming the field path
    if model_error is not None:
        assert spec_error is not None, f"the train stage rejects but validate accepts: {model_error}"
    if spec_error is not None:
        assert spec_error.startswith(f"{SRC}: ") and "\n" not in spec_error
        assert any(path in spec_error for path in values), spec_error
    assert (spec_error is None) is (pinn_ok if arm != "oracle" else oracle_ok), spec_error


@pytest.mark.parametrize(("values", "message"), [
    ({"training.lr": 5e-5}, "base.training.min_lr: must be at most training.lr = 5e-05 (the "
                            "reduce-on-plateau floor), got 0.0001"),
    ({"probe.n": 16, "stitch.crop": 16}, "base.probe.n: must be one of [32, 64, 128] for a PINN arm "
                                         "(model.backend = 'torch': log2(N) - 3 encoder blocks down "
                                         "to an 8 x 8 bottleneck), got 16"),
    ({"probe.n": 32, "model.filters": [8, 16, 32]},
     "base.model.filters: must have 2 entries for probe.n = 32 (one per encoder block, "
     "log2(N) - 3), got [8, 16, 32]"),
    ({"model.n_filters_scale": 1, "model.filters": [64, 128, 256]},
     "base.model.n_filters_scale: contradicts model.filters = [64, 128, 256]: n_filters_scale = 1 "
     "means filters [32, 64, 128] at probe.n = 64 (give one of the two, or values that agree), got 1"),
    ({"grouping.gridsize": 3, "grouping.k_neighbors": 7},
     "base.grouping.k_neighbors: must be at least gridsize**2 - 1 = 8 for gridsize 3 (each group "
     "draws 8 neighbours of its seed position), got 7"),
    ({"training.n_train": 4, "training.val_fraction": 0.9},
     "base.training.n_train: must allow at least 5 groups with training.val_fraction = 0.9 (the "
     "validation split takes 4 of 4 and leaves none for training), got 4"),
    ({"grouping.n_groups": 1}, "base.grouping.n_groups: must allow at least 2 groups with "
                               "training.val_fraction = 0.1 (the validation split takes 1 of 1 and "
                               "leaves none for training), got 1"),
    ({"grouping.gridsize": 2, "scan.kind": "random", "scan.n_positions": 4},
     "base.scan.n_positions: must allow at least 2 groups with training.val_fraction = 0.1 (4 "
     "positions make at most 1 group(s) of 4; the validation split takes 1 of 1 and leaves none "
     "for training), got 4"),
    ({"scan.kind": "random", "scan.n_positions": 5, "grouping.n_groups": 6},
     "base.grouping.n_groups: must be at most C(5, 1) = 5, the distinct groups of 1 among "
     "scan.n_positions = 5 positions, got 6"),
])
def test_messages_say_what_was_expected_and_what_was_got(values: dict[str, Any], message: str) -> None:
    _, error = spec_verdict("torch", values, as_axes=False)
    assert error == f"{SRC}: {message}"


def test_axis_message_points_at_the_axis_value() -> None:
    text = '[base.model]\nbackend = "tf"\n[axes]\n"training.lr" = [1e-3, 5e-5]\n'
    with pytest.raises(SpecError) as info:
        parse_study(text, source=SRC)
    assert str(info.value) == (f"{SRC}: training.min_lr: must be at most training.lr = 5e-05 (the "
                               "reduce-on-plateau floor), got 0.0001 (with training.lr = [5e-05])")


def test_oracle_and_pinn_arms_in_one_study() -> None:
    """A sweep over arms: the PINN rules stop the study only through the PINN arm."""
    text = ('[base.probe]\nn = 16\n[base.stitch]\ncrop = 16\n'
            '[axes]\n"model.backend" = ["oracle", "torch"]\n')
    with pytest.raises(SpecError, match=r"probe.n: must be one of \[32, 64, 128\] .*'torch'"):
        parse_study(text, source=SRC)
    only_oracle = parse_study(text.replace('["oracle", "torch"]', '["oracle"]'), source=SRC)
    assert only_oracle.scenarios[0].probe.n == 16
