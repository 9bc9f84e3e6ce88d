"""The canonical weight layout (docs/weight_layout.md)."""

from __future__ import annotations

import numpy as np
import pytest

from ptycho_dist.errors import ModelError
from ptycho_dist.models import PinnConfig, check_weights, weight_layout


def test_weight_layout_default_n64() -> None:
    layout = weight_layout(PinnConfig(n=64, gridsize=2))
    assert layout["encoder.0.conv0.kernel"] == (3, 3, 4, 64)
    assert layout["encoder.2.conv1.kernel"] == (3, 3, 256, 256)
    assert layout["decoder_amp.0.conv0.kernel"] == (3, 3, 256, 128)
    assert layout["decoder_phase.1.conv1.bias"] == (64,)
    assert layout["decoder_phase.final.kernel"] == (3, 3, 64, 4)
    assert len(layout) == 3 * 4 + 2 * (2 * 4 + 2)  # 3 encoder blocks, 2 decoders of 2 blocks + final
    n_params = sum(int(np.prod(s)) for s in layout.values())
    assert n_params == 2_257_288  # counted by hand from the layer list


def test_check_weights_messages() -> None:
    cfg = PinnConfig(n=32, filters=(4, 8))
    weights = {k: np.zeros(s, np.float32) for k, s in weight_layout(cfg).items()}
    check_weights(weights, cfg)
    bad = dict(weights, **{"encoder.0.conv0.kernel": np.zeros((3, 3, 4, 1), np.float32)})
    with pytest.raises(ModelError, match=r"'encoder.0.conv0.kernel': expected shape \(3, 3, 1, 4\), got \(3, 3, 4, 1\)"):
        check_weights(bad, cfg)
    with pytest.raises(ModelError, match=r"missing \['encoder.0.conv0.bias'\], unexpected \[\]"):
        check_weights({k: v for k, v in weights.items() if k != "encoder.0.conv0.bias"}, cfg)
    with pytest.raises(ModelError, match=r"missing \[\], unexpected \['extra'\]"):
        check_weights({**weights, "extra": np.zeros(1)}, cfg)
