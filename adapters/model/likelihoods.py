"""Log-likelihoods log p(x|y,z) of the decoder's outputs, summed over the features of x.

The decoder emits `m` numbers per feature, laid out as (..., features, m):
- `bernoulli` (m=1): logits; x in [0, 1] is allowed (the continuous relaxation used for MNIST).
- `gaussian` (m=1): the mean, with the spec's fixed sigma.
- `heteroscedastic` (m=2): the mean and a raw log-sigma squashed into
  [log_sigma_min, log_sigma_max], so the model reports data noise (sigma) separately from its
  own uncertainty (the spread over z and y).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ssvae.domain.spec import ModelSpec

Array = jax.Array
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def outputs_per_feature(spec: ModelSpec) -> int:
    return 2 if spec.network.likelihood == "heteroscedastic" else 1


def bernoulli_log_likelihood(x: Array, logits: Array) -> Array:
    """sum_i x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i), stable for any logits."""
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def gaussian_log_likelihood(x: Array, mean: Array, log_sigma: Array | float) -> Array:
    """sum_i log N(x_i; mean_i, sigma_i^2)."""
    z = (x - mean) * jnp.exp(-log_sigma)
    return jnp.sum(-0.5 * z * z - log_sigma - _HALF_LOG_2PI, axis=-1)


def bounded_log_sigma(raw: Array, low: float, high: float) -> Array:
    """A raw output squashed smoothly into [low, high]."""
    return low + (high - low) * jax.nn.sigmoid(raw)


def split_outputs(spec: ModelSpec, out: Array) -> tuple[Array, Array | None]:
    """(location, log_sigma or None) from decoder outputs (..., features * m)."""
    m = outputs_per_feature(spec)
    shaped = out.reshape(*out.shape[:-1], -1, m)
    if m == 1:
        return shaped[..., 0], None
    return shaped[..., 0], bounded_log_sigma(
        shaped[..., 1], spec.network.log_sigma_min, spec.network.log_sigma_max
    )


def log_likelihood(spec: ModelSpec, x_flat: Array, out: Array) -> Array:
    """log p(x|y,z) for flat inputs (..., F) and decoder outputs (..., F * m)."""
    loc, log_sigma = split_outputs(spec, out)
    if spec.network.likelihood == "bernoulli":
        return bernoulli_log_likelihood(x_flat, loc)
    if spec.network.likelihood == "gaussian":
        return gaussian_log_likelihood(x_flat, loc, math.log(spec.network.gaussian_sigma))
    assert log_sigma is not None
    return gaussian_log_likelihood(x_flat, loc, log_sigma)


def mean_of(spec: ModelSpec, out: Array) -> Array:
    """The reconstruction E[x|y,z] (flat)."""
    loc, _ = split_outputs(spec, out)
    return jax.nn.sigmoid(loc) if spec.network.likelihood == "bernoulli" else loc


def sigma_of(spec: ModelSpec, out: Array) -> Array:
    """The predicted data-noise standard deviation (flat; 0 for bernoulli)."""
    loc, log_sigma = split_outputs(spec, out)
    if spec.network.likelihood == "bernoulli":
        return jnp.zeros_like(loc)
    if log_sigma is None:
        return jnp.full_like(loc, spec.network.gaussian_sigma)
    return jnp.exp(log_sigma)
