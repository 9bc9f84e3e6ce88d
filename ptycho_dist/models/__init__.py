"""The PINN (PHYSICS.md, "The PINN"): shared numpy parts and one subpackage per framework.

* :mod:`ptycho_dist.models.config`: :class:`PinnConfig` (built from a scenario; its rules are the
  spec's), the architecture helpers (filters per block, central window).
* :mod:`ptycho_dist.models.data`: :class:`TrainData`, :class:`TrainResult`, :class:`InferResult`,
  normalization, the seeded split, the input checks shared by both backends.
* :mod:`ptycho_dist.models.weights`: the canonical weight layout.
* :mod:`ptycho_dist.models.faults`: the model side of the fault switches (the model's probe, the
  overlap constraint, the scales inference uses).
* :mod:`ptycho_dist.models.backend`: the :class:`Backend` protocol and :func:`load_backend`.
* :mod:`ptycho_dist.models.torch`: PyTorch/Lightning backend (``train_pinn``, ``infer_pinn``).
* ``ptycho_dist.models.tf``: TensorFlow/Keras backend (same layers, same weights).

Importing this package never imports torch or TensorFlow. Exact layer definitions and the
weight layout: ``docs/weight_layout.md``.
"""

from __future__ import annotations

from ptycho_dist.models.backend import PINN_BACKENDS, Backend, load_backend
from ptycho_dist.models.config import PinnConfig, central_window, decoder_filters, default_filters
from ptycho_dist.models.data import (
    HISTORY_KEYS,
    InferResult,
    PreparedArrays,
    TrainData,
    TrainResult,
    normalization_factor,
    normalized_inputs,
    object_in_data_units,
    prepare_arrays,
    prepare_inference,
    starting_log_scale,
    train_val_split,
)
from ptycho_dist.models.weights import check_weights, weight_layout

__all__ = [
    "PinnConfig",
    "TrainData",
    "TrainResult",
    "InferResult",
    "Backend",
    "load_backend",
    "PINN_BACKENDS",
    "HISTORY_KEYS",
    "PreparedArrays",
    "prepare_arrays",
    "prepare_inference",
    "normalization_factor",
    "normalized_inputs",
    "starting_log_scale",
    "object_in_data_units",
    "train_val_split",
    "weight_layout",
    "check_weights",
    "default_filters",
    "decoder_filters",
    "central_window",
]
