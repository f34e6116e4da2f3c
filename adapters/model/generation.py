"""What a trained SSVAE thinks each class and each prior component looks like.

Per class: z drawn from the prior p(z) (a component by its mixing weight, then z from that
Gaussian), decoded with the class's one-hot y. Per component: the component's mean decoded
with every class, so a row shows the "style" a component stands for, written in each class.
Images are decoder means E[x|y,z] (probabilities for the Bernoulli likelihood).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssvae.adapters.model.likelihoods import mean_of
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.comparison import FloatArray, GeneratedSamples
from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import SsvaeModel
from ssvae.domain.spec import ModelSpec


def _jax_model(model: SsvaeModel) -> JaxSsvaeModel:
    if not isinstance(model, JaxSsvaeModel):
        raise SsvaeError(
            f"cannot look inside a {type(model).__name__}: the generator reads JAX SSVAE "
            "models only; use the model repository's models"
        )
    return model


class JaxModelGenerator:
    """Generated samples and reconstructions of `JaxSsvaeModel`s (a ModelGenerator)."""

    def generate(self, model: SsvaeModel, per_class: int, seed: int) -> GeneratedSamples:
        """`per_class` prior samples of every class, and each component's mean per class."""
        jax_model = _jax_model(model)
        spec = jax_model.spec
        # One compiled program: op-by-op dispatch compiles every small op on its own, which
        # costs seconds per model on a CPU.
        per_class_images, per_component, weights = jax.jit(_generate, static_argnums=(0, 1, 2))(
            jax_model.kit, spec, per_class, jax_model.state.params, jax.random.key(seed)
        )
        return GeneratedSamples(
            per_class=np.asarray(per_class_images, np.float32),
            per_component=np.asarray(per_component, np.float32),
            mixing_weights=np.asarray(weights, np.float32),
        )

    def reconstruct(self, model: SsvaeModel, x: FloatArray) -> FloatArray:
        """Reconstructions of `x` through the predicted class and the latent mean."""
        predictions = _jax_model(model).predict(x, reconstructions=True)
        assert predictions.reconstructions is not None
        return np.asarray(predictions.reconstructions, np.float32).reshape(x.shape)


def _generate(
    kit: Any, spec: ModelSpec, per_class: int, params: Any, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(per-class images, per-component images, mixing weights) of the network `params`."""
    network = kit.network(params)
    log_w, means, logvars = network.prior_components()
    c, shape = spec.network.num_classes, tuple(spec.network.input_shape)
    component_key, noise_key = jax.random.split(key)
    picked = jax.random.categorical(component_key, log_w, shape=(c, per_class))
    noise = jax.random.normal(noise_key, (c, per_class, spec.network.latent_dim))
    z = means[picked] + jnp.exp(0.5 * logvars[picked]) * noise
    y = jnp.broadcast_to(jnp.eye(c)[:, None, :], (c, per_class, c))
    per_class_images = mean_of(spec, network.decode(z, y)).reshape(c, per_class, *shape)
    k = means.shape[0]
    z_k = jnp.broadcast_to(means[:, None, :], (k, c, spec.network.latent_dim))
    y_k = jnp.broadcast_to(jnp.eye(c)[None], (k, c, c))
    per_component = mean_of(spec, network.decode(z_k, y_k)).reshape(k, c, *shape)
    return per_class_images, per_component, jnp.exp(log_w)
