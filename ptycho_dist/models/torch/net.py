"""The PINN network in PyTorch (PHYSICS.md, "The PINN"; layer definitions in docs/weight_layout.md).

Tensors are channels-first: inputs (B, C, N, N) with C = gridsize**2 group members as channels.
Module names are chosen so that ``state_dict`` keys map one-to-one onto the canonical weight names
of :func:`ptycho_dist.models.weights.weight_layout` (``weight`` -> ``kernel``, OIHW -> HWIO).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptycho_dist.errors import ModelError
from ptycho_dist.models.config import PinnConfig, central_window, choose, decoder_filters
from ptycho_dist.models.weights import check_weights, weight_layout
from ptycho_dist.models.torch.layers import (
    far_field_amplitude,
    overlap_constraint,
    pad_central,
    upsample_nearest,
)

__all__ = ["PinnNet", "export_weights", "import_weights", "amp_activation", "initialize"]


class ConvBlock(nn.Module):
    """Two 3 x 3 'same' convolutions (zero padding 1, with bias), each followed by ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv1(F.relu(self.conv0(x))))


def _decoder(filters: tuple[int, ...], channels: int) -> nn.ModuleDict:
    """Decoder: blocks "0", "1", ... (ConvBlock then 2x upsampling) and a "final" 3 x 3 conv."""
    layers: dict[str, nn.Module] = {}
    cin = filters[-1]
    for j, cout in enumerate(decoder_filters(filters)):
        layers[str(j)] = ConvBlock(cin, cout)
        cin = cout
    layers["final"] = nn.Conv2d(cin, channels, 3, padding=1)
    return nn.ModuleDict(layers)


def _run_decoder(decoder: nn.ModuleDict, z: Tensor) -> Tensor:
    for name, layer in decoder.items():
        z = layer(z) if name == "final" else upsample_nearest(layer(z))
    return z


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def amp_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The amplitude activation named ``name`` ("sigmoid", "softplus" or "swish").

    Resolved when the network is built; another name is a :class:`ModelError` (as in TF).
    """
    activations: dict[str, Callable[[Tensor], Tensor]] = {
        "sigmoid": torch.sigmoid, "softplus": F.softplus, "swish": _swish}
    return choose("amp_activation", name, activations)


class PinnNet(nn.Module):
    """Encoder, two decoders (amplitude, phase), overlap constraint and physics layer.

    Parameters
    ----------
    config : PinnConfig
    probe : ndarray, complex, shape (N, N)
        The probe P (a buffer, not a weight).
    log_scale : float
        Initial log intensity scale; a parameter trained when ``config.trainable_scale``.
    """

    probe: Tensor
    window: Tensor

    def __init__(self, config: PinnConfig, probe: np.ndarray, *, log_scale: float) -> None:
        super().__init__()
        self.config = config
        self.amp_fn = amp_activation(config.amp_activation)
        c, f = config.channels, config.resolved_filters
        self.encoder = nn.ModuleList(
            [ConvBlock(cin, cout) for cin, cout in zip((c, *f[:-1]), f, strict=True)])
        self.decoder_amp = _decoder(f, c)
        self.decoder_phase = _decoder(f, c)
        initialize(self, config.init)
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale), dtype=torch.float32),
                                      requires_grad=config.trainable_scale)
        self.register_buffer("probe", torch.from_numpy(np.array(probe, dtype=np.complex64)))
        self.register_buffer("window", torch.as_tensor(central_window(config.n)))

    def patches(self, x: Tensor) -> Tensor:
        """Per-member object patches before the overlap constraint.

        Parameters
        ----------
        x : Tensor, float32, shape (B, C, N, N)
            Normalized amplitudes.

        Returns
        -------
        Tensor, complex64, shape (B, C, N, N)
            ``amp * (cos(phase) + i sin(phase))``, zero outside the central N/2 window.
        """
        z = x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x
        for block in self.encoder:
            z = F.max_pool2d(block(z), 2)
        # float32 from here on: under bf16 autocast the convolutions return bfloat16, and the
        # complex object and its FFT are float32/complex64 (a no-op without autocast)
        amp = self.amp_fn(_run_decoder(self.decoder_amp, z).float())
        phase = math.pi * torch.tanh(_run_decoder(self.decoder_phase, z).float())
        amp, phase = pad_central(amp), pad_central(phase)
        return torch.complex(amp * torch.cos(phase), amp * torch.sin(phase)).contiguous()

    def forward(self, x: Tensor, relative: Tensor) -> tuple[Tensor, Tensor]:
        """Object patches and predicted amplitude.

        Parameters
        ----------
        x : Tensor, float32, shape (B, C, N, N)
            Normalized amplitudes (``normalized_inputs``).
        relative : Tensor, float32, shape (B, C, 2)
            Member - group centre, pixels, (x, y).

        Returns
        -------
        obj : Tensor, complex64, shape (B, C, N, N)
            Object patches (after the overlap constraint when gridsize > 1 and object_big).
        amplitude : Tensor, float32, shape (B, C, N, N)
            Predicted far-field amplitude in count units.
        """
        obj = self.patches(x)
        if self.config.channels > 1 and self.config.object_big:
            obj = overlap_constraint(obj, relative, self.window)
        return obj, far_field_amplitude(obj, self.probe, self.log_scale)


def initialize(net: nn.Module, init: str) -> None:
    """Draw the initial weights of every convolution of ``net`` in place (torch's global RNG).

    ``"keras"``: ``nn.init.xavier_uniform_`` on the kernel (glorot-uniform, fan_in = 9 * c_in,
    fan_out = 9 * c_out, as Keras computes them) and ``nn.init.zeros_`` on the bias. ``"torch"``:
    the modules keep ``nn.Conv2d``'s own initialization (kaiming-uniform with a = sqrt(5), i.e.
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the bias from the same bound).

    Raises
    ------
    ModelError
        For another name (resolved when the network is built, as in TF).
    """
    if choose("init", init, {"keras": True, "torch": False}):
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


def _canonical_modules(net: PinnNet) -> dict[str, nn.Conv2d]:
    """Canonical prefix (e.g. ``encoder.0.conv1``) -> the Conv2d module."""
    return {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}


def export_weights(net: PinnNet) -> dict[str, np.ndarray]:
    """Canonical named arrays (float32): kernels HWIO ``(3, 3, in, out)``, biases ``(out,)``.

    The intensity scale is not included: read ``float(net.log_scale)``.
    """
    out: dict[str, np.ndarray] = {}
    for prefix, conv in _canonical_modules(net).items():
        kernel = conv.weight.detach().cpu().permute(2, 3, 1, 0).contiguous()
        out[f"{prefix}.kernel"] = kernel.numpy().astype(np.float32)
        out[f"{prefix}.bias"] = _bias(conv, prefix).detach().cpu().numpy().astype(np.float32)
    order = list(weight_layout(net.config))
    return {k: out[k] for k in order}


def import_weights(net: PinnNet, weights: dict[str, np.ndarray]) -> None:
    """Load canonical named arrays into ``net`` in place (HWIO -> OIHW); the inputs are not modified.

    Raises
    ------
    ModelError
        If the names or shapes differ from :func:`ptycho_dist.models.weights.weight_layout`.
    """
    check_weights(weights, net.config)
    with torch.no_grad():
        for prefix, conv in _canonical_modules(net).items():
            kernel = torch.as_tensor(np.asarray(weights[f"{prefix}.kernel"], dtype=np.float32))
            conv.weight.copy_(kernel.permute(3, 2, 0, 1))
            bias = torch.as_tensor(np.asarray(weights[f"{prefix}.bias"], dtype=np.float32))
            _bias(conv, prefix).copy_(bias)


def _bias(conv: nn.Conv2d, prefix: str) -> Tensor:
    """The bias of a canonical convolution (every one has a bias)."""
    if conv.bias is None:
        raise ModelError(f"convolution {prefix!r} has no bias; the canonical layout needs one")
    return conv.bias
