"""Priors on z, each seen as a Gaussian mixture (log_weights, means, logvars).

- `standard`: N(0, I), one component; its KL is taken in closed form.
- `mixture`: K learned components (mixing logits, means and log-variances on z). We chose
  learned Gaussian components over a component-conditional decoder because the decoder is
  already evaluated once per enumerated class; a component-conditional decoder would multiply
  that, the dominant cost, by K again. Mixing weights may carry a Dirichlet MAP penalty and a
  usage-sparsity penalty (see `losses.prior_penalty`).
- `vamp`: VampPrior, p(z) = 1/K sum_k q(z | u_k, q(y|u_k)) with K learned pseudo-inputs u_k
  passed through the encoder (with the classifier's soft class vector, since q(z|x,y) is
  conditioned on y in M2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

from ssvae.domain.spec import ModelSpec

if TYPE_CHECKING:
    from ssvae.adapters.model.modules import SsvaeNetwork

Array = jax.Array
Components = tuple[Array, Array, Array]


class Prior(nnx.Module):
    """Base: a prior exposing its mixture components."""

    kind: str = "standard"

    def components(self, network: SsvaeNetwork) -> Components:
        raise NotImplementedError


class StandardPrior(Prior):
    """N(0, I) on z."""

    kind = "standard"

    def __init__(self, latent_dim: int) -> None:
        self.latent_dim = latent_dim

    def components(self, network: Any) -> Components:
        zeros = jnp.zeros((1, self.latent_dim), jnp.float32)
        return jnp.zeros((1,), jnp.float32), zeros, zeros


class MixturePrior(Prior):
    """K Gaussian components with learned mixing weights, means and log-variances."""

    kind = "mixture"

    def __init__(self, num_components: int, latent_dim: int, rngs: nnx.Rngs) -> None:
        self.logits = nnx.Param(jnp.zeros((num_components,), jnp.float32))
        # Spread the initial means so that components start distinguishable.
        self.means = nnx.Param(jax.random.normal(rngs.params(), (num_components, latent_dim)))
        self.logvars = nnx.Param(jnp.zeros((num_components, latent_dim), jnp.float32))

    def components(self, network: Any) -> Components:
        log_w = jax.nn.log_softmax(self.logits[...])
        return log_w, self.means[...], jnp.clip(self.logvars[...], -8.0, 4.0)


class VampPrior(Prior):
    """VampPrior: a uniform mixture of the posterior at K learned pseudo-inputs."""

    kind = "vamp"

    def __init__(self, num_components: int, input_shape: tuple[int, ...], rngs: nnx.Rngs) -> None:
        init = 0.5 + 0.05 * jax.random.normal(rngs.params(), (num_components, *input_shape))
        self.pseudo_inputs = nnx.Param(init)

    def components(self, network: Any) -> Components:
        u = self.pseudo_inputs[...]
        y_soft = jax.nn.softmax(network.classifier(u))
        means, logvars = network.encoder(u, y_soft)
        k = u.shape[0]
        return jnp.full((k,), -jnp.log(k), jnp.float32), means, logvars


def build_prior(spec: ModelSpec, rngs: nnx.Rngs) -> Prior:
    """The prior named by `spec.network.prior`."""
    if spec.network.prior == "mixture":
        return MixturePrior(spec.network.num_components, spec.network.latent_dim, rngs)
    if spec.network.prior == "vamp":
        return VampPrior(spec.network.num_components, tuple(spec.network.input_shape), rngs)
    return StandardPrior(spec.network.latent_dim)
