"""training.precision = "bf16-mixed" and model.channels_last (torch), and that defaults keep keys."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.study.keys import scenario_id, stage_key
from ptycho_dist.study.spec import Scenario

# scenario ids of default arms, pinned before the fields were added (commit 2460c43)
_PINNED = {"oracle": "bbf155216f8f81bd", "torch": "7b7a3de1b944c2aa", "tf": "4b80c7f3361ef172"}


@pytest.mark.parametrize("backend", sorted(_PINNED))
def test_default_specs_keep_their_keys(backend):
    s = Scenario.from_dict({"model": {"backend": backend}})
    assert scenario_id(s) == _PINNED[backend]
    assert "channels_last" not in s.to_dict()["model"] and "precision" not in s.to_dict()["training"]
    explicit = Scenario.from_dict({"model": {"backend": backend, "channels_last": False},
                                   "training": {"precision": "32"}})
    assert scenario_id(explicit) == _PINNED[backend]
    assert stage_key("train", {"model": explicit.model.to_dict(), "training": explicit.training.to_dict()}) \
        == stage_key("train", {"model": s.model.to_dict(), "training": s.training.to_dict()})


def test_non_default_fields_enter_keys_and_round_trip():
    s = Scenario.from_dict({"model": {"backend": "torch", "channels_last": True},
                            "training": {"precision": "bf16-mixed"}})
    d = s.to_dict()
    assert d["model"]["channels_last"] is True and d["training"]["precision"] == "bf16-mixed"
    assert Scenario.from_dict(d) == s
    assert scenario_id(s) != _PINNED["torch"]
    with pytest.raises(Exception, match="precision"):
        Scenario.from_dict({"model": {"backend": "torch"}, "training": {"precision": "16"}})


def test_bf16_channels_last_smoke_on_cpu():
    torch = pytest.importorskip("torch")
    from ptycho_dist.bench.train import bench_data
    from ptycho_dist.models import PinnConfig
    from ptycho_dist.models.torch.train import infer_pinn, train_pinn

    data = bench_data(32, 24, rng=0)
    base = PinnConfig(n=32, filters=(8, 16), epochs=1, batch_size=8, val_fraction=0.0)
    fast = PinnConfig(n=32, filters=(8, 16), epochs=1, batch_size=8, val_fraction=0.0,
                      precision="bf16-mixed", channels_last=True)
    results = [train_pinn(data, cfg, seed=0, accelerator="cpu") for cfg in (base, fast)]
    for r in results:
        assert np.isfinite(r.history[-1]["train_loss"]) and r.diverged_epoch is None
    preds = [infer_pinn(r.weights, cfg, counts=data.counts, scale=data.scale, probe=data.probe,
                        relative=data.relative, norm_factor=r.norm_factor, log_scale=r.log_scale,
                        device="cpu") for r, cfg in zip(results, (base, fast), strict=True)]
    assert preds[1].object_patches.dtype == np.complex64 and preds[1].pred_amplitude.dtype == np.float32
    # the same weights in bf16 autocast: close to the float32 prediction (bf16 has 8 mantissa bits)
    again = infer_pinn(results[0].weights, fast, counts=data.counts, scale=data.scale, probe=data.probe,
                       relative=data.relative, norm_factor=results[0].norm_factor,
                       log_scale=results[0].log_scale, device="cpu")
    ref = preds[0].pred_amplitude
    err = np.abs(again.pred_amplitude - ref).max() / np.abs(ref).max()
    assert 0 < err < 0.1
    assert torch.get_autocast_dtype("cpu") == torch.bfloat16  # nothing global left changed


@pytest.mark.parametrize("section", [{"model": {"channels_last": True}}, {"training": {"precision": "bf16-mixed"}}])
@pytest.mark.parametrize("backend", ["tf", "oracle"])
def test_torch_only_fields_are_refused_elsewhere(backend, section):
    spec = {"model": {"backend": backend}, **section}
    if "model" in section:
        spec["model"] = {"backend": backend, **section["model"]}
    with pytest.raises(Exception, match="applies to model.backend = 'torch' only"):
        Scenario.from_dict(spec)
