"""The Keras PINN against the independent numpy/scipy forward pass (tests/reference_pinn.py),
layer by layer and whole, plus the canonical weight layout (export / import)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_pinn as ref

tf = pytest.importorskip("tensorflow")

from ptycho_dist.models import PinnConfig, central_window, weight_layout  # noqa: E402
from ptycho_dist.models.tf.net import PinnModel, export_weights, import_weights  # noqa: E402

pytestmark = pytest.mark.tf

N = 32
TOL = 1e-5  # max |tf - reference| / max |reference|, for object patches and amplitudes


def _config(gridsize: int, **over: object) -> PinnConfig:
    base: dict[str, object] = {"n": N, "gridsize": gridsize, "filters": (4, 8),
                               "log_scale_init": "dose"}
    base.update(over)
    return PinnConfig(**base)  # type: ignore[arg-type]


def _probe() -> np.ndarray:
    yy, xx = np.mgrid[:N, :N] - N // 2
    return ((np.hypot(xx, yy) < 9) * np.exp(0.01j * (xx**2 + yy**2))).astype(np.complex64)


def _inputs(cfg: PinnConfig, rng: np.random.Generator, b: int = 2) -> tuple[np.ndarray, np.ndarray]:
    c = cfg.channels
    x = rng.uniform(0, 2, size=(b, c, N, N)).astype(np.float32)
    rel = rng.uniform(-3.5, 3.5, size=(b, c, 2))
    return x, (rel - rel.mean(axis=1, keepdims=True)).astype(np.float32)


def _model(cfg: PinnConfig, weights: dict[str, np.ndarray], log_scale: float = 0.4) -> PinnModel:
    model = PinnModel(cfg, _probe(), log_scale=log_scale, seed=0)
    import_weights(model, weights)
    return model


def _rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def assert_matches_reference(obj: np.ndarray, amp: np.ndarray, obj_ref: np.ndarray,
                             amp_ref: np.ndarray) -> None:
    """The parity check: object patches and amplitudes within TOL (relative to the max)."""
    assert _rel_err(obj, obj_ref) <= TOL, f"object patches differ: rel err {_rel_err(obj, obj_ref):.3g}"
    assert _rel_err(amp, amp_ref) <= TOL, f"amplitudes differ: rel err {_rel_err(amp, amp_ref):.3g}"


def _forward(model: PinnModel, x: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obj, amp = model(tf.constant(x), tf.constant(rel))
    return obj.numpy(), amp.numpy()


@pytest.mark.parametrize(("gridsize", "activation"),
                         [(1, "sigmoid"), (2, "sigmoid"), (2, "softplus"), (3, "swish")])
def test_forward_matches_reference(rng: np.random.Generator, gridsize: int, activation: str) -> None:
    cfg = _config(gridsize, amp_activation=activation)
    w = ref.random_weights(cfg, rng)
    x, rel = _inputs(cfg, rng)
    obj, amp = _forward(_model(cfg, w), x, rel)
    assert obj.dtype == np.complex64 and amp.dtype == np.float32
    assert obj.shape == amp.shape == (2, cfg.channels, N, N)
    obj_ref, amp_ref = ref.forward(w, cfg, x, rel, _probe(), 0.4)
    inner = obj_ref[..., N // 4: 3 * N // 4, N // 4: 3 * N // 4]   # a non-trivial object:
    assert np.ptp(np.abs(inner)) > 0.2 and np.ptp(np.angle(inner)) > 0.2  # not a constant
    assert_matches_reference(obj, amp, obj_ref, amp_ref)


def test_flipped_relative_sign_fails_loudly(rng: np.random.Generator) -> None:
    cfg = _config(2)
    w = ref.random_weights(cfg, rng)
    x, rel = _inputs(cfg, rng)
    obj_ref, amp_ref = ref.forward(w, cfg, x, rel, _probe(), 0.4)
    obj, amp = _forward(_model(cfg, w), x, -rel)     # the classic bug: relative = centre - member
    with pytest.raises(AssertionError, match="object patches differ"):
        assert_matches_reference(obj, amp, obj_ref, amp_ref)
    assert _rel_err(obj, obj_ref) > 1e3 * TOL and _rel_err(amp, amp_ref) > 1e3 * TOL


def test_layer_by_layer(rng: np.random.Generator) -> None:
    cfg = _config(2)
    w = ref.random_weights(cfg, rng)
    model = _model(cfg, w)
    x, rel = _inputs(cfg, rng)
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    block = model.encoder[0](tf.constant(np.transpose(x, (0, 2, 3, 1)))).numpy()
    block_ref = ref.block(x.astype(np.float64), w64, "encoder.0")
    assert _rel_err(np.transpose(block, (0, 3, 1, 2)), block_ref) <= TOL
    patches = model.patches(tf.constant(x)).numpy()
    patches_ref = ref.patches(w64, cfg, x)
    assert _rel_err(patches, patches_ref) <= TOL
    assert np.count_nonzero(patches[..., : N // 4, :]) == 0    # zero outside the central window
    from ptycho_dist.models.tf.layers import far_field_amplitude, overlap_constraint

    merged = overlap_constraint(tf.constant(patches), tf.constant(rel), tf.constant(central_window(N)))
    merged_ref = ref.overlap(patches.astype(complex), rel.astype(np.float64),
                             central_window(N).astype(np.float64))
    assert _rel_err(merged.numpy(), merged_ref) <= TOL
    amp = far_field_amplitude(merged, tf.constant(_probe()), tf.constant(0.4)).numpy()
    assert _rel_err(amp, ref.far_field(merged_ref, _probe().astype(complex), 0.4)) <= TOL


def test_object_big_false_skips_overlap(rng: np.random.Generator) -> None:
    cfg = _config(2, object_big=False)
    w = ref.random_weights(cfg, rng)
    x, rel = _inputs(cfg, rng)
    obj, amp = _forward(_model(cfg, w), x, rel)
    obj_ref, amp_ref = ref.forward(w, cfg, x, rel, _probe(), 0.4)
    assert_matches_reference(obj, amp, obj_ref, amp_ref)
    np.testing.assert_array_equal(obj, _forward(_model(cfg, w), x, 5 * rel)[0])


def test_export_import_round_trip(rng: np.random.Generator) -> None:
    cfg = _config(2)
    source = PinnModel(cfg, _probe(), log_scale=0.4, seed=1)
    exported = export_weights(source)
    assert list(exported) == list(weight_layout(cfg))
    assert all(v.dtype == np.float32 and v.shape == weight_layout(cfg)[k] for k, v in exported.items())
    copy = {k: v.copy() for k, v in exported.items()}
    target = PinnModel(cfg, _probe(), log_scale=0.4, seed=2)
    assert not np.array_equal(export_weights(target)["encoder.0.conv0.kernel"],
                              exported["encoder.0.conv0.kernel"])
    import_weights(target, exported)
    for k, v in export_weights(target).items():
        np.testing.assert_array_equal(v, exported[k])
        np.testing.assert_array_equal(exported[k], copy[k])            # input not modified
    x, rel = _inputs(cfg, rng)
    for a, b in zip(_forward(source, x, rel), _forward(target, x, rel), strict=True):
        np.testing.assert_array_equal(a, b)


def test_initializers_seeded_with_torch_distribution() -> None:
    cfg = _config(2, filters=(16, 32), init="torch")   # the default is "keras" (next test)
    a = export_weights(PinnModel(cfg, _probe(), log_scale=0.0, seed=3))
    b = export_weights(PinnModel(cfg, _probe(), log_scale=0.0, seed=3))
    c = export_weights(PinnModel(cfg, _probe(), log_scale=0.0, seed=4))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["decoder_phase.final.kernel"], c["decoder_phase.final.kernel"])
    kernel = a["encoder.1.conv1.kernel"]                             # fan_in = 9 * 32
    bound = 1 / math.sqrt(9 * 32)
    assert np.abs(kernel).max() <= bound
    assert kernel.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)   # U(-b, b)
    bias = a["encoder.1.conv1.bias"]
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0


def test_keras_initializers_are_glorot_uniform_and_zero_bias() -> None:
    cfg = _config(2, filters=(16, 32))
    assert cfg.init == "keras"
    a = export_weights(PinnModel(cfg, _probe(), log_scale=0.0, seed=3))
    b = export_weights(PinnModel(cfg, _probe(), log_scale=0.0, seed=3))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    kernel = a["encoder.1.conv1.kernel"]                             # fan_in = fan_out = 9 * 32
    limit = math.sqrt(6 / (9 * 32 + 9 * 32))
    assert limit * 0.95 <= np.abs(kernel).max() <= limit
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.03)
    assert all(np.all(v == 0) for k, v in a.items() if k.endswith(".bias"))


@pytest.mark.parametrize("trainable", [True, False])
def test_log_scale_variable(trainable: bool) -> None:
    model = PinnModel(_config(1, trainable_scale=trainable), _probe(), log_scale=1.25, seed=0)
    assert float(model.log_scale.numpy()) == 1.25
    names = [v.name for v in model.trainable_variables]
    assert ("log_scale" in names) is trainable
    assert len(names) == len(weight_layout(_config(1))) + int(trainable)
