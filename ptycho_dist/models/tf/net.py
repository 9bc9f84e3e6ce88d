"""The PINN network in TensorFlow / Keras 3 (PHYSICS.md, "The PINN"; docs/weight_layout.md).

The public interface is channels-first like the torch backend: :class:`PinnModel` takes inputs
``(B, C, N, N)`` and relative coordinates ``(B, C, 2)`` and returns object patches and predicted
amplitudes ``(B, C, N, N)``. The convolution stack runs channels-last ``(B, H, W, C)`` internally
(Keras' native layout, in which ``Conv2D.kernel`` is already the canonical HWIO array); the
object-side layers (padding, overlap constraint, physics) run channels-first.

Initializers (``config.init``, drawn with TensorFlow's RNG: the same *distributions* as the torch
backend, not the same numbers): ``"keras"`` (default) ``GlorotUniform`` kernels (fan_in = 9 * c_in,
fan_out = 9 * c_out) and ``Zeros`` biases, Keras' own defaults and PtychoPINN's; ``"torch"``
PyTorch's ``Conv2d`` default, kernel ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` =
``VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")`` and bias
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. Every convolution draws two integer seeds from
``np.random.default_rng(seed)`` (whichever init), so the initial weights depend on ``seed`` only
(not on global RNG state or construction order).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ptycho_dist.models.config import PinnConfig, central_window, choose, decoder_filters
from ptycho_dist.models.weights import check_weights, weight_layout
from ptycho_dist.models.tf.layers import (
    far_field_amplitude,
    overlap_constraint,
    pad_central,
    upsample_nearest,
)

__all__ = ["PinnModel", "export_weights", "import_weights", "canonical_convs", "amp_activation"]


def _initializers(init: str, cin: int, seeds: list[int]
                  ) -> tuple[keras.initializers.Initializer, keras.initializers.Initializer]:
    """Kernel and bias initializers of one convolution with ``cin`` input channels."""
    if choose("init", init, {"keras": True, "torch": False}):
        return keras.initializers.GlorotUniform(seed=seeds[0]), keras.initializers.Zeros()
    bound = 1.0 / math.sqrt(9 * cin)
    return (keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in",
                                               distribution="uniform", seed=seeds[0]),
            keras.initializers.RandomUniform(-bound, bound, seed=seeds[1]))


def _conv(cin: int, cout: int, gen: np.random.Generator, name: str,
          init: str = "keras") -> keras.layers.Conv2D:
    """A built 3 x 3 'same' Conv2D (stride 1, with bias) with the initializers of ``init``."""
    seeds = [int(s) for s in gen.integers(0, 2**31 - 1, size=2)]
    kernel_init, bias_init = _initializers(init, cin, seeds)
    conv = keras.layers.Conv2D(cout, 3, padding="same", name=name, kernel_initializer=kernel_init,
                               bias_initializer=bias_init)
    conv.build((None, None, None, cin))
    return conv


class ConvBlock(keras.layers.Layer):
    """Two 3 x 3 'same' convolutions (zero padding 1, with bias), each followed by ReLU."""

    def __init__(self, cin: int, cout: int, gen: np.random.Generator, name: str,
                 init: str = "keras") -> None:
        super().__init__(name=name)
        self.conv0 = _conv(cin, cout, gen, "conv0", init)
        self.conv1 = _conv(cout, cout, gen, "conv1", init)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(self.conv1(tf.nn.relu(self.conv0(x))))


class Decoder(keras.layers.Layer):
    """Blocks (ConvBlock then 2x nearest upsampling), then a final 3 x 3 conv to C channels."""

    def __init__(self, filters: tuple[int, ...], channels: int, gen: np.random.Generator,
                 name: str, init: str = "keras") -> None:
        super().__init__(name=name)
        blocks, cin = [], filters[-1]
        for j, cout in enumerate(decoder_filters(filters)):
            blocks.append(ConvBlock(cin, cout, gen, name=str(j), init=init))
            cin = cout
        self.blocks = blocks
        self.final = _conv(cin, channels, gen, "final", init)

    def call(self, z: tf.Tensor) -> tf.Tensor:
        for block in self.blocks:
            z = upsample_nearest(block(z))
        return self.final(z)


def _swish(x: tf.Tensor) -> tf.Tensor:
    return x * tf.sigmoid(x)


def amp_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The amplitude activation named ``name`` ("sigmoid", "softplus" or "swish").

    Resolved when the model is built (eagerly, never inside a traced graph); another name is a
    :class:`ModelError` (as in torch).
    """
    activations: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
        "sigmoid": tf.sigmoid, "softplus": tf.nn.softplus, "swish": _swish}
    return choose("amp_activation", name, activations)


class PinnModel(keras.Model):
    """Encoder, two decoders (amplitude, phase), overlap constraint and physics layer.

    Parameters
    ----------
    config : PinnConfig
    probe : ndarray, complex, shape (N, N)
        The probe P (a constant, not a weight).
    log_scale : float
        Initial log intensity scale; a variable trained when ``config.trainable_scale``.
    seed : int or None
        Seeds the weight initializers (see the module docstring).
    """

    def __init__(self, config: PinnConfig, probe: np.ndarray, *, log_scale: float,
                 seed: int | None = None) -> None:
        super().__init__(name="pinn")
        self.config = config
        self.amp_fn = amp_activation(config.amp_activation)
        c, f = config.channels, config.resolved_filters
        gen = np.random.default_rng(seed)
        init = config.init
        self.encoder = [ConvBlock(cin, cout, gen, name=f"encoder_{i}", init=init)
                        for i, (cin, cout) in enumerate(zip((c, *f[:-1]), f, strict=True))]
        self.decoder_amp = Decoder(f, c, gen, name="decoder_amp", init=init)
        self.decoder_phase = Decoder(f, c, gen, name="decoder_phase", init=init)
        self.log_scale = self.add_weight(
            shape=(), dtype="float32", name="log_scale", trainable=config.trainable_scale,
            initializer=keras.initializers.Constant(float(log_scale)))
        self.probe = tf.constant(np.asarray(probe, dtype=np.complex64))
        self.window = tf.constant(central_window(config.n))

    def patches(self, x: tf.Tensor) -> tf.Tensor:
        """Per-member object patches before the overlap constraint.

        Parameters
        ----------
        x : tf.Tensor, float32, shape (B, C, N, N)
            Normalized amplitudes (channels-first).

        Returns
        -------
        tf.Tensor, complex64, shape (B, C, N, N)
            ``amp * (cos(phase) + i sin(phase))``, zero outside the central N/2 window.
        """
        z = tf.transpose(tf.cast(x, tf.float32), [0, 2, 3, 1])
        for block in self.encoder:
            z = tf.nn.max_pool2d(block(z), ksize=2, strides=2, padding="VALID")
        amp = self.amp_fn(self.decoder_amp(z))
        phase = math.pi * tf.tanh(self.decoder_phase(z))
        amp = pad_central(tf.transpose(amp, [0, 3, 1, 2]))
        phase = pad_central(tf.transpose(phase, [0, 3, 1, 2]))
        return tf.complex(amp * tf.cos(phase), amp * tf.sin(phase))

    def call(self, x: tf.Tensor, relative: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Object patches and predicted amplitude.

        Parameters
        ----------
        x : tf.Tensor, float32, shape (B, C, N, N)
            Normalized amplitudes (``normalized_inputs``).
        relative : tf.Tensor, float32, shape (B, C, 2)
            Member - group centre, pixels, (x, y).

        Returns
        -------
        obj : tf.Tensor, complex64, shape (B, C, N, N)
            Object patches (after the overlap constraint when gridsize > 1 and object_big).
        amplitude : tf.Tensor, float32, shape (B, C, N, N)
            Predicted far-field amplitude in count units.
        """
        obj = self.patches(x)
        if self.config.channels > 1 and self.config.object_big:
            obj = overlap_constraint(obj, relative, self.window)
        return obj, far_field_amplitude(obj, self.probe, self.log_scale)


def canonical_convs(model: PinnModel) -> dict[str, keras.layers.Conv2D]:
    """Canonical prefix (e.g. ``encoder.0.conv1``, ``decoder_amp.final``) -> the Conv2D layer."""
    out: dict[str, keras.layers.Conv2D] = {}
    for i, block in enumerate(model.encoder):
        out[f"encoder.{i}.conv0"], out[f"encoder.{i}.conv1"] = block.conv0, block.conv1
    for head, decoder in (("decoder_amp", model.decoder_amp), ("decoder_phase", model.decoder_phase)):
        for j, block in enumerate(decoder.blocks):
            out[f"{head}.{j}.conv0"], out[f"{head}.{j}.conv1"] = block.conv0, block.conv1
        out[f"{head}.final"] = decoder.final
    return out


def export_weights(model: PinnModel) -> dict[str, np.ndarray]:
    """Canonical named arrays (float32 copies): kernels HWIO ``(3, 3, in, out)``, biases ``(out,)``.

    Keras' ``Conv2D.kernel`` is HWIO already, so no transposition. The intensity scale is not
    included: read ``float(model.log_scale.numpy())``.
    """
    out: dict[str, np.ndarray] = {}
    for prefix, conv in canonical_convs(model).items():
        out[f"{prefix}.kernel"] = np.array(conv.kernel.numpy(), dtype=np.float32)
        out[f"{prefix}.bias"] = np.array(conv.bias.numpy(), dtype=np.float32)
    return {k: out[k] for k in weight_layout(model.config)}


def import_weights(model: PinnModel, weights: dict[str, np.ndarray]) -> None:
    """Load canonical named arrays into ``model`` in place; the inputs are not modified.

    Raises
    ------
    ModelError
        If the names or shapes differ from :func:`ptycho_dist.models.weights.weight_layout`.
    """
    check_weights(weights, model.config)
    for prefix, conv in canonical_convs(model).items():
        conv.kernel.assign(np.asarray(weights[f"{prefix}.kernel"], dtype=np.float32))
        conv.bias.assign(np.asarray(weights[f"{prefix}.bias"], dtype=np.float32))
