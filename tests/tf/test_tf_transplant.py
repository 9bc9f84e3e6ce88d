"""Cross-backend parity: canonical bundles move between TF and torch both ways and give the same
object patches and amplitudes (<= 1e-5 relative). The torch side runs in a child process
(``torch_peer.py``); this process never imports torch."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference_pinn as ref

tf = pytest.importorskip("tensorflow")

from pinn_data import simulated_train_data  # noqa: E402

from ptycho_dist.models import (  # noqa: E402
    InferResult,
    PinnConfig,
    TrainData,
    TrainResult,
    normalization_factor,
    prepare_arrays,
)
from ptycho_dist.models.tf.net import PinnModel, import_weights  # noqa: E402
from ptycho_dist.models.tf.net import export_weights as tf_export  # noqa: E402
from ptycho_dist.models.tf.train import infer_pinn, make_fit  # noqa: E402

pytestmark = pytest.mark.tf

TOL = 1e-5
REPO = Path(__file__).resolve().parents[2]


def _rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def _data_fields(name: str, data: TrainData, cfg: PinnConfig) -> dict[str, np.ndarray]:
    return {f"{name}/config": np.array(json.dumps(cfg.to_dict())), f"{name}/counts": data.counts,
            f"{name}/probe": data.probe, f"{name}/relative": data.relative,
            f"{name}/scale": np.float64(data.scale), f"{name}/nphotons": np.float64(data.nphotons)}


def _infer_case(name: str, data: TrainData, cfg: PinnConfig, weights: dict[str, np.ndarray],
                norm_factor: float, log_scale: float) -> dict[str, np.ndarray]:
    fields = _data_fields(name, data, cfg)
    fields.update({f"{name}/mode": np.array("infer"), f"{name}/norm_factor": np.float64(norm_factor),
                   f"{name}/log_scale": np.float64(log_scale)})
    fields.update({f"{name}/w/{k}": v for k, v in weights.items()})
    return fields


def _run_torch(tmp_path: Path, request: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    req, rep = tmp_path / "request.npz", tmp_path / "reply.npz"
    np.savez(req, **request)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("torch_peer.py")), str(req),
                           str(rep)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torch peer failed:\n{proc.stderr[-4000:]}"
    with np.load(rep, allow_pickle=False) as f:
        return dict(f)


def _tf_infer(data: TrainData, cfg: PinnConfig, weights: dict[str, np.ndarray], norm: float,
              log_scale: float) -> InferResult:
    return infer_pinn(weights, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                      relative=data.relative, norm_factor=norm, log_scale=log_scale, device="cpu")


def _steps_case(data: TrainData, cfg: PinnConfig, weights: dict[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    """Three Adam steps on fixed batches of 7 groups, from the same weights in both backends."""
    arrays = prepare_arrays(data, cfg, seed=0)
    idx = arrays.train_idx[:21].reshape(3, 7)
    fields = _data_fields("steps_g2", data, cfg)
    fields.update({"steps_g2/mode": np.array("steps"), "steps_g2/log_scale": np.float64(math.log(data.scale)),
                   "steps_g2/x": arrays.inputs[idx], "steps_g2/rel": arrays.relative[idx],
                   "steps_g2/batch_counts": arrays.counts[idx]})
    fields.update({f"steps_g2/w/{k}": v for k, v in weights.items()})
    return fields


def _check_steps(steps: dict[str, np.ndarray], reply: dict[str, np.ndarray]) -> None:
    """Same losses step after step (gradients through the overlap constraint, Adam updates)."""
    cfg = PinnConfig.from_dict(json.loads(str(steps["steps_g2/config"])))
    model = PinnModel(cfg, steps["steps_g2/probe"], log_scale=float(steps["steps_g2/log_scale"]))
    import_weights(model, {k.removeprefix("steps_g2/w/"): v for k, v in steps.items()
                           if k.startswith("steps_g2/w/")})
    fit = make_fit(model, cfg)
    batches = zip(steps["steps_g2/x"], steps["steps_g2/rel"], steps["steps_g2/batch_counts"], strict=True)
    losses = np.array([float(fit.train_step(*(tf.constant(a) for a in batch))) for batch in batches])
    np.testing.assert_allclose(losses, reply["steps_g2/losses"], rtol=2e-5)
    assert losses[-1] < losses[0]
    assert float(model.log_scale.numpy()) == pytest.approx(float(reply["steps_g2/log_scale"]), abs=1e-5)
    assert float(model.log_scale.numpy()) != float(steps["steps_g2/log_scale"])


@pytest.mark.slow  # ~15 s: starts a torch process (imports, two fits, 6 inferences, 3 steps)
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_bundles_transplant_both_ways(tmp_path: Path, trained_g1: TrainResult, config_g1: PinnConfig,
                                      data_g1: TrainData, data_g2: TrainData,
                                      rng: np.random.Generator) -> None:
    cfg2 = PinnConfig(n=32, gridsize=2, filters=(8, 16), batch_size=8, epochs=1,
                      log_scale_init="dose")
    data3 = simulated_train_data(n=32, gridsize=3, n_groups=4, nphotons=1e5, rng=13)
    cfg3 = PinnConfig(n=32, gridsize=3, filters=(4, 8), log_scale_init="dose")
    bundles = {   # name -> (data, config, weights, norm_factor, log_scale), run by both backends
        "tf_trained_g1": (data_g1, config_g1, trained_g1.weights, trained_g1.norm_factor,
                          trained_g1.log_scale),
        "random_g2": (data_g2, cfg2, ref.random_weights(cfg2, rng),
                      normalization_factor(np.sqrt(data_g2.counts) / data_g2.scale), 0.3),
        "random_g3": (data3, cfg3, ref.random_weights(cfg3, rng), 2.0, math.log(data3.scale)),
    }
    request: dict[str, np.ndarray] = {}
    for name, (data, cfg, w, norm, log_scale) in bundles.items():
        request.update(_infer_case(name, data, cfg, w, norm, log_scale))
    request.update(_data_fields("torch_trained_g2", data_g2, cfg2))
    request.update({"torch_trained_g2/mode": np.array("train"), "torch_trained_g2/seed": np.int64(3)})
    # the untrained network of the other init and a width scale: torch-drawn weights, run by TF
    cfg_scale = PinnConfig(n=32, gridsize=2, n_filters_scale=1, init="torch", epochs=0,
                           log_scale_init="dose")
    request.update(_data_fields("torch_init_scale1", data_g2, cfg_scale))
    request.update({"torch_init_scale1/mode": np.array("train"), "torch_init_scale1/seed": np.int64(4)})
    # and a TF-drawn Keras-init network at width scale 1, run by torch
    cfg_keras = PinnConfig(n=32, gridsize=2, n_filters_scale=1, init="keras", log_scale_init="dose")
    bundles["tf_keras_init_scale1"] = (
        data_g2, cfg_keras, tf_export(PinnModel(cfg_keras, data_g2.probe, log_scale=0.0, seed=5)),
        normalization_factor(np.sqrt(data_g2.counts) / data_g2.scale), math.log(data_g2.scale))
    assert cfg_keras.filters == (32, 64)
    assert np.all(bundles["tf_keras_init_scale1"][2]["encoder.0.conv0.bias"] == 0)
    for name, (data, cfg, w, norm, log_scale) in list(bundles.items())[-1:]:
        request.update(_infer_case(name, data, cfg, w, norm, log_scale))
    steps = _steps_case(data_g2, cfg2, ref.random_weights(cfg2, rng))
    request.update(steps)
    request["cases"] = np.array(json.dumps([*bundles, "torch_trained_g2", "torch_init_scale1",
                                            "steps_g2"]))
    reply = _run_torch(tmp_path, request)
    _check_steps(steps, reply)

    torch_w = {k.removeprefix("torch_trained_g2/w/"): v for k, v in reply.items()
               if k.startswith("torch_trained_g2/w/")}
    bundles["torch_trained_g2"] = (data_g2, cfg2, torch_w, float(reply["torch_trained_g2/norm_factor"]),
                                   float(reply["torch_trained_g2/log_scale"]))
    init_w = {k.removeprefix("torch_init_scale1/w/"): v for k, v in reply.items()
              if k.startswith("torch_init_scale1/w/")}
    assert init_w["encoder.0.conv0.kernel"].shape == (3, 3, 4, 32)
    assert np.abs(init_w["encoder.0.conv0.bias"]).max() > 0            # torch's init: biases drawn
    bundles["torch_init_scale1"] = (data_g2, cfg_scale, init_w,
                                    float(reply["torch_init_scale1/norm_factor"]),
                                    float(reply["torch_init_scale1/log_scale"]))
    for name, (data, cfg, w, norm, log_scale) in bundles.items():
        mine = _tf_infer(data, cfg, w, norm, log_scale)
        theirs_obj, theirs_amp = reply[f"{name}/object_patches"], reply[f"{name}/pred_amplitude"]
        assert _rel_err(mine.object_patches, theirs_obj) <= TOL, name
        assert _rel_err(mine.pred_amplitude, theirs_amp) <= TOL, name
        if cfg.gridsize > 1:   # the check is sensitive to the relative-coordinate sign
            flipped = infer_pinn(w, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                                 relative=-data.relative, norm_factor=norm, log_scale=log_scale,
                                 device="cpu")
            assert _rel_err(flipped.object_patches, theirs_obj) > 1e3 * TOL, name
