"""PinnConfig: built from a scenario, its rules are the spec's (one message format), round trips."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptycho_dist.errors import SpecError
from ptycho_dist.models import PinnConfig, central_window, decoder_filters, default_filters
from ptycho_dist.models.config import SPEC_FIELDS
from ptycho_dist.study import ModelSpec, Scenario, TrainingSpec, parse_study


@pytest.mark.parametrize(("n", "filters", "dec"), [
    (32, (64, 128), (64,)),
    (64, (64, 128, 256), (128, 64)),
    (128, (64, 128, 256, 512), (256, 128, 64)),
])
def test_default_filters_scale_with_n(n: int, filters: tuple[int, ...], dec: tuple[int, ...]) -> None:
    assert default_filters(n) == filters
    assert PinnConfig(n=n).filters == filters
    assert decoder_filters(filters) == dec


def test_width_scale_is_the_reference_n_filters_scale() -> None:
    # PtychoPINN at N = 64: encoder n_filters_scale * (32, 64, 128), decoder n_filters_scale * (64, 32)
    for scale in (1, 2, 3):
        cfg = PinnConfig(n=64, n_filters_scale=scale)
        assert cfg.filters == tuple(scale * f for f in (32, 64, 128))
        assert decoder_filters(cfg.resolved_filters) == tuple(scale * f for f in (64, 32))
    assert PinnConfig(n=64).filters == PinnConfig(n=64, n_filters_scale=2).filters == (64, 128, 256)
    assert PinnConfig(n=32, n_filters_scale=1).filters == default_filters(32, 1) == (32, 64)
    # explicit filters win when no scale is given; a scale that agrees is accepted
    assert PinnConfig(n=32, filters=(8, 16)).filters == (8, 16)
    assert PinnConfig(n=32, filters=(32, 64), n_filters_scale=1).filters == (32, 64)
    with pytest.raises(SpecError, match=r"model config: model.n_filters_scale: contradicts "
                                        r"model.filters = \[8, 16\]: n_filters_scale = 1 means "
                                        r"filters \[32, 64\] at probe.n = 32"):
        PinnConfig(n=32, filters=(8, 16), n_filters_scale=1)


def test_defaults_are_the_spec_defaults() -> None:
    s = Scenario(model=ModelSpec(backend="torch"))
    assert PinnConfig.from_scenario(s) == PinnConfig()
    assert set(SPEC_FIELDS) == {f.name for f in dataclasses.fields(PinnConfig)}


def test_from_scenario_maps_every_field() -> None:
    text = """
[base.probe]
n = 32
[base.grouping]
gridsize = 2
[base.model]
backend = "tf"
filters = [32, 64]
n_filters_scale = 1
init = "torch"
loss = "mae"
amp_activation = "swish"
object_big = false
trainable_scale = false
log_scale_init = "nphotons"
[base.training]
lr = 0.02
batch_size = 7
epochs = 3
plateau_factor = 0.25
plateau_patience = 5
min_lr = 0.001
early_stopping_patience = 4
schedule = "ptychopinn"
val_fraction = 0.3
"""
    cfg = PinnConfig.from_scenario(parse_study(text, source="x.toml").scenarios[0])
    assert cfg == PinnConfig(n=32, gridsize=2, filters=(32, 64), n_filters_scale=1, init="torch",
                             loss="mae", amp_activation="swish",
                             object_big=False, trainable_scale=False, log_scale_init="nphotons",
                             lr=0.02, batch_size=7, epochs=3, plateau_factor=0.25,
                             plateau_patience=5, min_lr=0.001, early_stopping_patience=4,
                             schedule="ptychopinn", val_fraction=0.3)
    assert cfg.channels == 4


def test_from_scenario_refuses_the_oracle_arm() -> None:
    with pytest.raises(SpecError, match="model.backend: a PINN configuration needs one of "
                                        r"\['torch', 'tf'\], got 'oracle'"):
        PinnConfig.from_scenario(Scenario())


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([32, 64, 128]), gridsize=st.integers(1, 3),
       loss=st.sampled_from(["poisson", "mae"]), lr=st.floats(1e-4, 1.0),
       esp=st.none() | st.integers(0, 10), val=st.floats(0.0, 0.9),
       init=st.sampled_from(["nphotons", "dose"]), weights=st.sampled_from(["keras", "torch"]),
       scale=st.none() | st.integers(1, 4), schedule=st.sampled_from(["torch", "ptychopinn"]))
def test_config_dict_round_trip(n: int, gridsize: int, loss: str, lr: float, esp: int | None,
                                val: float, init: str, weights: str, scale: int | None,
                                schedule: str) -> None:
    cfg = PinnConfig(n=n, gridsize=gridsize, loss=loss, lr=lr, early_stopping_patience=esp,  # type: ignore[arg-type]
                     val_fraction=val, log_scale_init=init, min_lr=min(1e-4, lr),  # type: ignore[arg-type]
                     init=weights, n_filters_scale=scale, schedule=schedule)  # type: ignore[arg-type]
    d = cfg.to_dict()
    assert isinstance(d["filters"], list)
    assert PinnConfig.from_dict(d) == cfg


def test_config_unknown_key_suggests() -> None:
    with pytest.raises(SpecError, match="unknown key 'gridsise'; did you mean 'gridsize'"):
        PinnConfig.from_dict({"gridsise": 2})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 48}, r"probe.n: Input should be 16, 32, 64, 128 or 256, got 48"),
    ({"n": 16}, r"probe.n: must be one of \[32, 64, 128\] for a PINN arm .*, got 16$"),
    ({"gridsize": 4}, r"grouping.gridsize: Input should be 1, 2 or 3, got 4"),
    ({"loss": "mse"}, r"model.loss: Input should be 'poisson' or 'mae', got 'mse'"),
    ({"n": 32, "filters": (8, 16, 32)}, r"model.filters: must have 2 entries for probe.n = 32 "
                                        r"\(one per encoder block, log2\(N\) - 3\), got \[8, 16, 32\]$"),
    ({"n": 32, "filters": (8, 0)}, r"model.filters\[1\]: must be >= 1 \(filters of an encoder block\), got 0$"),
    ({"lr": 0.0}, r"training.lr: Input should be greater than 0, got 0.0"),
    ({"val_fraction": 0.95}, r"training.val_fraction: Input should be less than or equal to 0.9"),
    ({"min_lr": 0.1}, r"training.min_lr: must be at most training.lr = 0.001 .*, got 0.1$"),
    ({"early_stopping_patience": -1}, r"training.early_stopping_patience: Input should be greater "
                                      r"than or equal to 0"),
    ({"log_scale_init": "data"}, r"model.log_scale_init: Input should be 'dose' or 'nphotons'"),
    ({"batch_size": True}, r"training.batch_size: Input should be a valid integer"),
])
def test_config_rejects_with_the_spec_message(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=f"^model config: {message}"):
        PinnConfig(**kwargs)  # type: ignore[arg-type]


def test_spec_and_config_share_one_message() -> None:
    """The same rule, the same words: at validate time and when a config is built by hand."""
    with pytest.raises(SpecError) as by_hand:
        PinnConfig(lr=5e-5)
    with pytest.raises(SpecError) as by_spec:
        parse_study('[base.model]\nbackend = "torch"\n[base.training]\nlr = 5e-5\n', source="x.toml")
    rule = "training.min_lr: must be at most training.lr = 5e-05 (the reduce-on-plateau floor), got 0.0001"
    assert str(by_hand.value) == f"model config: {rule}"
    assert str(by_spec.value) == f"x.toml: base.{rule}"


def test_filters_list_is_a_tuple() -> None:
    assert PinnConfig(n=32, filters=[4, 8]).filters == (4, 8)  # type: ignore[arg-type]


def test_training_spec_fields_are_all_mapped_or_documented() -> None:
    mapped = {field for section, field in SPEC_FIELDS.values() if section == "training"}
    # n_train and seed choose the data and the seed of the run, not the model
    assert set(TrainingSpec.model_fields) - mapped == {"n_train", "seed"}
    mapped_model = {field for section, field in SPEC_FIELDS.values() if section == "model"}
    # backend chooses the module
    assert set(ModelSpec.model_fields) - mapped_model == {"backend"}


def test_channels() -> None:
    assert [PinnConfig(gridsize=g).channels for g in (1, 2, 3)] == [1, 4, 9]


def test_central_window() -> None:
    m = central_window(32)
    assert m.shape == (32, 32) and m.dtype == "float32"
    assert m.sum() == 16 * 16
    assert m[8, 8] == 1 and m[23, 23] == 1 and m[7, 8] == 0 and m[24, 23] == 0
