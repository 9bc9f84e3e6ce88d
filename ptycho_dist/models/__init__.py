"""The PINN (PHYSICS.md, "The PINN"): shared numpy parts and one subpackage per framework.

* :mod:`ptycho_dist.models.common`: config, data/result containers, normalization, split, the
  canonical weight layout (numpy only; importing it never imports torch or TensorFlow).
* :mod:`ptycho_dist.models.torch`: PyTorch/Lightning backend (``train_pinn``, ``infer_pinn``).
* ``ptycho_dist.models.tf``: TensorFlow/Keras backend (same layers, same weights).

Exact layer definitions and the weight layout: ``docs/weight_layout.md``.
"""

from __future__ import annotations

from ptycho_dist.models.common import (
    InferResult,
    PinnConfig,
    TrainData,
    TrainResult,
    weight_layout,
)

__all__ = ["PinnConfig", "TrainData", "TrainResult", "InferResult", "weight_layout"]
