"""Flax NNX components of the SSVAE, built from a `ModelSpec` by `build_network`.

Shapes come from the spec only (input shape, class count, latent size): nothing here assumes
28x28 images or ten classes. Inputs are float arrays of shape (batch, *input_shape).

The encoder q(z|x,y) is split in two so that enumerating classes is cheap: `embed(x)` is the
y-independent first-layer work (W_x x, or the conv features) done once per sample, and
`head(e, y)` adds the class's contribution (W_y y, a per-class bias for one-hot y) and runs the
small rest. Only the decoder p(x|y,z) pays the full price of each enumerated class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ssvae.adapters.model.priors import Prior, build_prior
from ssvae.domain.spec import ModelSpec

Array = jax.Array
ActivationFn = Callable[[Array], Array]

ACTIVATION_FUNCTIONS: dict[str, ActivationFn] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
}


def _dtype(spec: ModelSpec) -> Any:
    return jnp.bfloat16 if spec.network.compute_dtype == "bfloat16" else jnp.float32


def _linear(n_in: int, n_out: int, spec: ModelSpec, rngs: nnx.Rngs) -> nnx.Linear:
    """A dense layer whose products run in the spec's compute dtype; parameters stay float32."""
    return nnx.Linear(n_in, n_out, dtype=_dtype(spec), param_dtype=jnp.float32, rngs=rngs)


def _f32(x: Array) -> Array:
    return x.astype(jnp.float32)


def dropout(x: Array, rate: float, key: Array | None) -> Array:
    """Inverted dropout with an explicit key; the identity when `key` is None or rate is 0."""
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class ConvStack(nnx.Module):
    """Stride-2 3x3 convolutions with activation, then flatten: (B, H, W, C) -> (B, F)."""

    def __init__(self, input_shape: tuple[int, ...], spec: ModelSpec, rngs: nnx.Rngs) -> None:
        height, width, channels = input_shape
        self.act = ACTIVATION_FUNCTIONS[spec.network.activation]
        layers = []
        for out in spec.network.conv_channels:
            layers.append(
                nnx.Conv(
                    channels, out, (3, 3), (2, 2), dtype=_dtype(spec), padding="SAME", rngs=rngs
                )
            )
            channels = out
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        self.layers = nnx.List(layers)
        self.out_features = height * width * channels

    def __call__(self, x: Array) -> Array:
        for layer in self.layers:
            x = self.act(layer(x))
        return _f32(x.reshape(x.shape[0], -1))


class Classifier(nnx.Module):
    """q(y|x): dense hidden layers (optionally after a conv stack) to class logits."""

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs) -> None:
        self.act = ACTIVATION_FUNCTIONS[spec.network.activation]
        self.rate = spec.network.dropout
        self.conv = (
            ConvStack(spec.network.input_shape, spec, rngs)
            if spec.network.classifier_type == "conv"
            else None
        )
        width = (
            self.conv.out_features if self.conv is not None else math.prod(spec.network.input_shape)
        )
        layers = []
        for size in spec.network.hidden_sizes:
            layers.append(_linear(width, size, spec, rngs))
            width = size
        self.hidden = nnx.List(layers)
        self.out = _linear(width, spec.network.num_classes, spec, rngs)

    def __call__(self, x: Array, key: Array | None = None) -> Array:
        h = self.conv(x) if self.conv is not None else x.reshape(x.shape[0], -1)
        for i, layer in enumerate(self.hidden):
            h = self.act(layer(h))
            h = dropout(h, self.rate, None if key is None else jax.random.fold_in(key, i))
        return _f32(self.out(h))


class Encoder(nnx.Module):
    """q(z|x,y) = N(mu, diag exp(logvar)), with the y-independent work factored out."""

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs) -> None:
        self.act = ACTIVATION_FUNCTIONS[spec.network.activation]
        self.conv = (
            ConvStack(spec.network.input_shape, spec, rngs)
            if spec.network.encoder_type == "conv"
            else None
        )
        width = (
            self.conv.out_features if self.conv is not None else math.prod(spec.network.input_shape)
        )
        first = spec.network.hidden_sizes[0]
        self.embed_x = _linear(width, first, spec, rngs)
        # W_y has no bias: the one in embed_x is shared, so W_y's row for class c acts as
        # a per-class bias on one-hot inputs.
        self.embed_y = nnx.Linear(spec.network.num_classes, first, use_bias=False, rngs=rngs)
        layers = []
        width = first
        for size in spec.network.hidden_sizes[1:]:
            layers.append(_linear(width, size, spec, rngs))
            width = size
        self.hidden = nnx.List(layers)
        self.mean = _linear(width, spec.network.latent_dim, spec, rngs)
        self.logvar = _linear(width, spec.network.latent_dim, spec, rngs)

    def embed(self, x: Array) -> Array:
        """The y-independent pre-activation of the first layer: (B, *input) -> (B, H)."""
        h = self.conv(x) if self.conv is not None else x.reshape(x.shape[0], -1)
        return _f32(self.embed_x(h))

    def head(self, e: Array, y: Array) -> Tuple2:
        """(mean, logvar) of z for embeddings `e` (..., H) and class vectors `y` (..., C)."""
        h = self.act(e + self.embed_y(y))
        for layer in self.hidden:
            h = self.act(layer(h))
        # Clip log-variance: exp() of a runaway value would turn the loss into Inf.
        return _f32(self.mean(h)), jnp.clip(_f32(self.logvar(h)), -12.0, 8.0)

    def __call__(self, x: Array, y: Array) -> Tuple2:
        return self.head(self.embed(x), y)


Tuple2 = tuple[Array, Array]


class DenseDecoder(nnx.Module):
    """p(x|y,z) through dense layers: (..., D) x (..., C) -> (..., prod(input_shape) * m)."""

    def __init__(self, spec: ModelSpec, out_per_pixel: int, rngs: nnx.Rngs) -> None:
        self.act = ACTIVATION_FUNCTIONS[spec.network.activation]
        sizes = tuple(reversed(spec.network.hidden_sizes))
        self.from_z = _linear(spec.network.latent_dim, sizes[0], spec, rngs)
        self.from_y = nnx.Linear(spec.network.num_classes, sizes[0], use_bias=False, rngs=rngs)
        layers = []
        width = sizes[0]
        for size in sizes[1:]:
            layers.append(_linear(width, size, spec, rngs))
            width = size
        self.hidden = nnx.List(layers)
        self.out = _linear(width, math.prod(spec.network.input_shape) * out_per_pixel, spec, rngs)

    def __call__(self, z: Array, y: Array) -> Array:
        h = self.act(self.from_z(z) + self.from_y(y))
        for layer in self.hidden:
            h = self.act(layer(h))
        return _f32(self.out(h))


class ConvDecoder(nnx.Module):
    """p(x|y,z) through a dense map to a small grid, stride-2 transposed convs and a crop."""

    def __init__(self, spec: ModelSpec, out_per_pixel: int, rngs: nnx.Rngs) -> None:
        self.act = ACTIVATION_FUNCTIONS[spec.network.activation]
        height, width, channels = spec.network.input_shape
        steps = len(spec.network.conv_channels)
        self.grid = (math.ceil(height / 2**steps), math.ceil(width / 2**steps))
        self.target = (height, width)
        chans = tuple(reversed(spec.network.conv_channels))
        hidden = spec.network.hidden_sizes[-1]
        self.from_z = _linear(spec.network.latent_dim, hidden, spec, rngs)
        self.from_y = nnx.Linear(spec.network.num_classes, hidden, use_bias=False, rngs=rngs)
        self.to_grid = _linear(hidden, self.grid[0] * self.grid[1] * chans[0], spec, rngs)
        layers = []
        for i, c_in in enumerate(chans):
            c_out = chans[i + 1] if i + 1 < len(chans) else chans[-1]
            layers.append(
                nnx.ConvTranspose(
                    c_in, c_out, (3, 3), (2, 2), padding="SAME", dtype=_dtype(spec), rngs=rngs
                )
            )
        self.up = nnx.List(layers)
        self.channels0 = chans[0]
        self.out = nnx.Conv(
            chans[-1],
            channels * out_per_pixel,
            (3, 3),
            padding="SAME",
            dtype=_dtype(spec),
            rngs=rngs,
        )

    def __call__(self, z: Array, y: Array) -> Array:
        lead = z.shape[:-1]
        h = self.act(self.from_z(z) + self.from_y(y))
        g = self.act(self.to_grid(h)).reshape(-1, *self.grid, self.channels0)
        for layer in self.up:
            g = self.act(layer(g))
        g = g[:, : self.target[0], : self.target[1], :]
        return _f32(self.out(g)).reshape(*lead, -1)


class SsvaeNetwork(nnx.Module):
    """The M2 model's parameters: classifier, encoder, decoder and prior."""

    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs) -> None:
        self.num_classes = spec.network.num_classes
        self.input_shape = tuple(spec.network.input_shape)
        out_per_pixel = 2 if spec.network.likelihood == "heteroscedastic" else 1
        self.classifier = Classifier(spec, rngs)
        self.encoder = Encoder(spec, rngs)
        self.decoder: nnx.Module = (
            ConvDecoder(spec, out_per_pixel, rngs)
            if spec.network.decoder_type == "conv"
            else DenseDecoder(spec, out_per_pixel, rngs)
        )
        self.prior: Prior = build_prior(spec, rngs)

    def decode(self, z: Array, y: Array) -> Array:
        """Decoder outputs (..., prod(input_shape) * m) for z (..., D) and y (..., C)."""
        lead = z.shape[:-1]
        out: Array = self.decoder(z.reshape(-1, z.shape[-1]), y.reshape(-1, y.shape[-1]))
        return out.reshape(*lead, -1)

    def prior_components(self) -> tuple[Array, Array, Array]:
        """(log_weights (K,), means (K, D), logvars (K, D)) of the prior on z."""
        return self.prior.components(self)


def build_network(spec: ModelSpec, seed: int | None = None) -> SsvaeNetwork:
    """A freshly initialised network for `spec`, seeded by `seed` (default spec.training.seed)."""
    return SsvaeNetwork(spec, nnx.Rngs(spec.training.seed if seed is None else seed))
