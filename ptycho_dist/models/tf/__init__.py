"""TensorFlow/Keras 3 backend of the PINN (requires the ``tf`` extra).

Import the submodules directly (``ptycho_dist.models.tf.train``); this package only checks that
TensorFlow and Keras 3 are installed, with the TensorFlow backend selected, and says how to fix it
if not. The layers, the weight layout and the training semantics are those of the PyTorch backend
(``docs/weight_layout.md``); never import torch in the same process.
"""

from __future__ import annotations

import importlib.util
import os

__all__: list[str] = []

_MISSING = [name for name in ("tensorflow", "keras") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the TensorFlow backend needs {', '.join(_MISSING)}: install with "
        "`pip install 'ptycho-dist[tf]'` (or tensorflow[and-cuda] on GPU nodes, see cluster/README.md)")

if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise ImportError(
        f"the TensorFlow backend needs Keras 3 on TensorFlow, but KERAS_BACKEND="
        f"{os.environ['KERAS_BACKEND']!r}: unset it or set KERAS_BACKEND=tensorflow")
