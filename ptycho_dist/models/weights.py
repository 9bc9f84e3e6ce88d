"""The canonical named-array weight layout shared by both backends (docs/weight_layout.md).

Conv kernels are HWIO ``(3, 3, in, out)`` float32, biases ``(out,)``; the names are in network
order. A bundle written by either backend is read by the other through this layout.
"""

from __future__ import annotations

import numpy as np

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig, decoder_filters

__all__ = ["weight_layout", "check_weights", "init_limits"]


def weight_layout(config: PinnConfig) -> dict[str, tuple[int, ...]]:
    """Canonical weight names and shapes (conv kernels HWIO = (3, 3, in, out), biases (out,)).

    Names, in network order::

        encoder.{i}.conv{0,1}.{kernel,bias}             i = 0 .. E-1
        decoder_{amp,phase}.{j}.conv{0,1}.{kernel,bias} j = 0 .. E-2
        decoder_{amp,phase}.final.{kernel,bias}         (3, 3, filters[0], C), (C,)

    The intensity scale ``log_scale`` is not in this dict; it is a separate scalar.
    """
    c, f = config.channels, config.resolved_filters
    layout: dict[str, tuple[int, ...]] = {}
    cin = c
    for i, cout in enumerate(f):
        _add_block(layout, f"encoder.{i}", cin, cout)
        cin = cout
    for head in ("decoder_amp", "decoder_phase"):
        cin = f[-1]
        for j, cout in enumerate(decoder_filters(f)):
            _add_block(layout, f"{head}.{j}", cin, cout)
            cin = cout
        layout[f"{head}.final.kernel"] = (3, 3, cin, c)
        layout[f"{head}.final.bias"] = (c,)
    return layout


def _add_block(layout: dict[str, tuple[int, ...]], prefix: str, cin: int, cout: int) -> None:
    layout[f"{prefix}.conv0.kernel"] = (3, 3, cin, cout)
    layout[f"{prefix}.conv0.bias"] = (cout,)
    layout[f"{prefix}.conv1.kernel"] = (3, 3, cout, cout)
    layout[f"{prefix}.conv1.bias"] = (cout,)


def check_weights(weights: dict[str, np.ndarray], config: PinnConfig) -> None:
    """Check that ``weights`` has exactly the names and shapes of :func:`weight_layout`.

    Values are not checked: the weights of a run that diverged may hold NaN and still load (their
    predictions are NaN, which the evaluation reports).

    Raises
    ------
    ModelError
        Naming missing or unexpected keys, or the first shape mismatch.
    """
    layout = weight_layout(config)
    missing = sorted(set(layout) - set(weights))
    extra = sorted(set(weights) - set(layout))
    if missing or extra:
        raise ModelError(f"weights do not match the config: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, shape in layout.items():
        got = tuple(np.shape(weights[name]))
        if got != shape:
            raise ModelError(f"weight {name!r}: expected shape {shape}, got {got}")


def init_limits(kernel_shape: tuple[int, ...], init: str) -> tuple[float, float]:
    """Half-widths ``(kernel, bias)`` of the uniform initial distributions of one convolution.

    ``kernel_shape`` is HWIO ``(kh, kw, c_in, c_out)``; ``fan_in = kh * kw * c_in`` and
    ``fan_out = kh * kw * c_out`` (as Keras and ``torch.nn.init`` compute them for a conv).

    * ``"keras"`` (glorot-uniform, zero bias): ``(sqrt(6 / (fan_in + fan_out)), 0)``;
    * ``"torch"`` (``nn.Conv2d``'s default): ``(1 / sqrt(fan_in), 1 / sqrt(fan_in))``.

    Raises
    ------
    ModelError
        For another ``init``.
    """
    kh, kw, cin, cout = kernel_shape
    fan_in, fan_out = kh * kw * cin, kh * kw * cout
    if init == "keras":
        return float(np.sqrt(6.0 / (fan_in + fan_out))), 0.0
    if init == "torch":
        bound = float(1.0 / np.sqrt(fan_in))
        return bound, bound
    raise ModelError(f"init must be one of ['keras', 'torch'], got {init!r}")
