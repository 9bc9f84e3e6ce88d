"""The shared schedule (ptycho_dist/models/schedule.py), which both backends step once per epoch:
its rules on hand-made loss sequences, and the "torch" rules against PyTorch's own
``ReduceLROnPlateau`` and Lightning's ``EarlyStopping`` on random sequences. The Keras rules of
"ptychopinn" are checked against Keras' own callbacks in tests/tf/test_tf_train.py (TF process)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptycho_dist.models.schedule import EarlyStop, Plateau, Schedule

torch = pytest.importorskip("torch")
pl = pytest.importorskip("pytorch_lightning")


def loss_sequence(rng: np.random.Generator, length: int = 40) -> list[float]:
    """Losses that fall, stall (exact repeats), creep down by less than 1e-4 and jump back up;
    multiples of 2**-10 plus tiny steps, so no comparison sits at a rounding edge."""
    values, v = [], float(rng.integers(2000, 4000)) / 1024
    for _ in range(length):
        move = rng.choice(["fall", "stall", "creep", "rise"], p=[0.35, 0.3, 0.15, 0.2])
        if move == "fall":
            v -= float(rng.integers(1, 64)) / 1024
        elif move == "creep":
            v -= 3e-5 * v if rng.random() < 0.5 else 3e-5
        elif move == "rise":
            v += float(rng.integers(1, 64)) / 1024
        values.append(max(v, 1 / 1024))
    return values


def test_torch_rule_by_hand() -> None:
    sched = Plateau(lr=1.0, factor=0.5, patience=1, min_lr=0.2, rule="torch")
    # 10 best; 9.9995 is within the 1e-4 relative threshold: not an improvement
    lrs = [sched.step(v) for v in (10.0, 9.9995, 9.9995, 5.0, 5.0, 5.0, 5.0, 5.0, math.nan, 5.0)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_keras_rule_by_hand() -> None:
    # absolute threshold 1e-4: 9.99995 does not improve on 10, and 4.99 improves on 5 by far more;
    # a reduction after `patience` epochs without improvement (torch: after more than `patience`)
    sched = Plateau(lr=1.0, factor=0.5, patience=1, min_lr=0.2, rule="keras")
    lrs = [sched.step(v) for v in (10.0, 9.99995, 9.99995, 5.0, 5.0, 5.0, 5.0)]
    assert lrs == [1.0, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    assert sched.bad == 2     # at the floor no reduction restarts the count
    assert [sched.step(v) for v in (4.99, math.nan)] == [0.2, 0.2] and sched.best == 4.99
    small = Plateau(lr=1.0, factor=0.5, patience=2, min_lr=0.0, rule="keras")
    assert [small.step(v) for v in (1.0, 0.99995, 0.99995, 0.99995, 0.5)] == [1.0, 1.0, 0.5, 0.5, 0.5]


def test_early_stop_by_hand() -> None:
    stop = EarlyStop(patience=2)
    assert [stop.step(v) for v in (3.0, 2.0, 2.0, 1.0, 1.0, math.nan)] == [
        False, False, False, False, False, True]
    zero = EarlyStop(patience=0)
    assert [zero.step(v) for v in (2.0, 1.0, 1.0)] == [False, False, True]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("factor", "patience", "min_lr"), [(0.5, 2, 1e-4), (0.1, 0, 0.0),
                                                            (0.7, 3, 2e-4), (0.5, 1, 1e-3)])
def test_torch_rule_equals_torch_reduce_on_plateau(seed: int, factor: float, patience: int,
                                                   min_lr: float) -> None:
    losses = loss_sequence(np.random.default_rng(seed))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=factor,
                                                     patience=patience, min_lr=min_lr)
    mine = Plateau(1e-3, factor, patience, min_lr, rule="torch")
    for v in losses:
        ref.step(v)
        assert mine.step(v) == opt.param_groups[0]["lr"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stop_equals_lightning_early_stopping(seed: int, patience: int) -> None:
    losses = loss_sequence(np.random.default_rng(100 + seed))
    ref = pl.callbacks.EarlyStopping(monitor="val_loss", patience=patience, mode="min",
                                     check_finite=False)
    mine = EarlyStop(patience)
    for v in losses:
        expected, _ = ref._evaluate_stopping_criteria(torch.tensor(v, dtype=torch.float64))
        assert mine.step(v) is bool(expected)
        if expected:
            break


def _run(schedule: Schedule, rows: list[tuple[float, float]]) -> list[tuple[float, bool]]:
    return [schedule.step(train, val) for train, val in rows]


def test_which_loss_each_schedule_watches() -> None:
    # training loss falls, validation loss stalls
    rows = [(4.0, 2.0), (3.0, 2.0), (2.0, 2.0), (1.0, 2.0)]
    kwargs = {"lr": 1.0, "factor": 0.5, "patience": 0, "min_lr": 0.0, "early_stopping_patience": 1}
    torch_rules = _run(Schedule.create("torch", has_val=True, **kwargs), rows)
    reference = _run(Schedule.create("ptychopinn", has_val=True, **kwargs), rows)
    assert torch_rules == [(1.0, False), (0.5, True), (0.25, True), (0.125, True)]
    assert reference == [(1.0, False), (0.5, False), (0.25, False), (0.125, False)]  # plateau: val
    # without a validation split both watch the training loss
    no_val = [(t, math.nan) for t, _ in rows]
    assert _run(Schedule.create("torch", has_val=False, **kwargs), no_val) == [(1.0, False)] * 4
    assert _run(Schedule.create("ptychopinn", has_val=False, **kwargs), no_val) == [(1.0, False)] * 4
    # validation falls, training stalls: the reference stops on its training loss
    flipped = [(2.0, 4.0 - i) for i in range(4)]
    assert [s for _, s in _run(Schedule.create("ptychopinn", has_val=True, **kwargs), flipped)] == [
        False, True, True, True]
    assert not any(s for _, s in _run(Schedule.create("torch", has_val=True, **kwargs), flipped))


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="training.schedule must be 'torch' or 'ptychopinn', got 'x'"):
        Schedule.create("x", lr=1.0, factor=0.5, patience=1, min_lr=0.0,  # type: ignore[arg-type]
                        early_stopping_patience=None, has_val=True)
