"""The M2 objective (Kingma et al. 2014) and its semi-supervised extras, as pure functions.

Per step, with an unlabelled batch U and a labelled batch L (sampled with replacement):

    loss = mean_U[ sum_y w(y|x) (-ELBO(x, y)) - H(q(y|x)) ]          (unlabelled, marginalised)
         + mean_L[ -ELBO(x, y) ]                                      (labelled, at the known y)
         + alpha_eff * mean_L[ -log q(y|x) ]                          (classification)
         + consistency_weight * mean_U[ KL(q(y|x) || q(y|aug x)) ]    (stop-gradient on q(y|x))
         + entropy_weight * mean_U[ H(q(y|x)) ]
         + prior penalties (Dirichlet MAP on mixing weights, usage sparsity)

-ELBO(x, y) = -log p(x|y,z) + kl_scale * KL(q(z|x,y) || p(z)) - log p(y), with p(y) uniform.
alpha_eff = classification_weight * (N_u + N_l) / N_l when scale_classification_by_ratio: this
is Kingma's alpha = 0.1 N written per sample, where the labelled and unlabelled means carry
equal weight; with 100 labels in 60,000 it makes the classification term dominate as intended.

Enumeration: w(y|x) = q(y|x) over all classes, or, with `enumerate_top_k = k`, q restricted to
its k most probable classes and renormalised (gradient flows through the kept probabilities).
The classes outside the top k carry little mass once q is confident, and skipping them saves
(C - k) / C of the decoder, the dominant cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from ssvae.adapters.model.likelihoods import log_likelihood
from ssvae.adapters.model.modules import SsvaeNetwork
from ssvae.domain.spec import ModelSpec

Array = jax.Array
Metrics = dict[str, Array]
_LOG_2PI = math.log(2.0 * math.pi)


def kl_to_standard_normal(mean: Array, logvar: Array) -> Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) in closed form, summed over the last axis."""
    return 0.5 * jnp.sum(jnp.exp(logvar) + mean * mean - 1.0 - logvar, axis=-1)


def log_normal(z: Array, mean: Array, logvar: Array) -> Array:
    """log N(z; mean, diag exp(logvar)), summed over the last axis."""
    d = z - mean
    return -0.5 * jnp.sum(_LOG_2PI + logvar + d * d * jnp.exp(-logvar), axis=-1)


def component_log_densities(z: Array, components: tuple[Array, Array, Array]) -> Array:
    """log w_c + log N(z; mu_c, var_c) for every component: (..., D) -> (..., K)."""
    log_w, means, logvars = components
    return log_w + log_normal(z[..., None, :], means, logvars)


def log_prior(z: Array, components: tuple[Array, Array, Array]) -> Array:
    """log p(z) of the mixture prior: (..., D) -> (...)."""
    return jax.nn.logsumexp(component_log_densities(z, components), axis=-1)


def responsibilities(z: Array, components: tuple[Array, Array, Array]) -> Array:
    """r_c(z) = p(c | z) under the prior: (..., D) -> (..., K)."""
    return jax.nn.softmax(component_log_densities(z, components), axis=-1)


def kl_divergence(
    spec: ModelSpec, z: Array, mean: Array, logvar: Array, components: tuple[Array, Array, Array]
) -> Array:
    """KL(q(z|x,y) || p(z)): closed form for the standard prior, one-sample estimate otherwise."""
    if spec.network.prior == "standard":
        return kl_to_standard_normal(mean, logvar)
    return log_normal(z, mean, logvar) - log_prior(z, components)


def entropy(probs: Array) -> Array:
    """Entropy of categorical distributions along the last axis (0 log 0 = 0)."""
    return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.maximum(probs, 1e-30)), 0.0), -1)


def negative_elbo(
    network: SsvaeNetwork,
    spec: ModelSpec,
    x_flat: Array,
    embedding: Array,
    y_vec: Array,
    key: Array,
    kl_scale: Array | float,
) -> tuple[Array, dict[str, Array]]:
    """-ELBO(x, y) for each enumerated class: embeddings (B, H), classes (B, k, C) -> (B, k)."""
    mean, logvar = network.encoder.head(embedding[:, None, :], y_vec)
    eps = jax.random.normal(key, mean.shape)
    z = mean + jnp.exp(0.5 * logvar) * eps
    out = network.decode(z, y_vec)
    rec = log_likelihood(spec, x_flat[:, None, :], out)
    components = network.prior_components()
    kl = kl_divergence(spec, z, mean, logvar, components)
    log_py = -math.log(spec.network.num_classes)
    value = (
        -spec.objective.reconstruction_weight * rec
        + spec.objective.kl_weight * kl_scale * kl
        - log_py
    )
    return value, {"rec": -rec, "kl": kl, "z": z}


def enumerated_classes(spec: ModelSpec, probs: Array) -> tuple[Array, Array]:
    """(class indices (B, k), weights (B, k)) to enumerate for unlabelled samples."""
    c = spec.network.num_classes
    k = spec.objective.enumerate_top_k
    if k == 0 or k == c:
        idx = jnp.broadcast_to(jnp.arange(c), probs.shape)
        return idx, probs
    kept, idx = jax.lax.top_k(probs, k)
    return idx, kept / jnp.sum(kept, axis=-1, keepdims=True)


def unlabelled_terms(
    network: SsvaeNetwork,
    spec: ModelSpec,
    x: Array,
    logits: Array,
    key: Array,
    kl_scale: Array | float,
) -> tuple[Array, dict[str, Array]]:
    """Per-sample M2 unlabelled loss: sum_y w(y|x)(-ELBO(x, y)) - H(q(y|x))."""
    probs = jax.nn.softmax(logits)
    idx, weights = enumerated_classes(spec, probs)
    y_vec = jax.nn.one_hot(idx, spec.network.num_classes, dtype=jnp.float32)
    x_flat = x.reshape(x.shape[0], -1)
    nelbo, parts = negative_elbo(
        network, spec, x_flat, network.encoder.embed(x), y_vec, key, kl_scale
    )
    h = entropy(probs)
    per_sample = jnp.sum(weights * nelbo, axis=-1) - spec.objective.component_kl_weight * h
    return per_sample, {
        "rec": jnp.sum(weights * parts["rec"], -1),
        "kl": jnp.sum(weights * parts["kl"], -1),
        "entropy": h,
        "z": parts["z"],
        "weights": weights,
    }


def reference_unlabelled_loss(
    network: SsvaeNetwork, spec: ModelSpec, x: Array, eps: Array, kl_scale: float = 1.0
) -> Array:
    """Slow reference: a Python loop over classes, no shared work (for tests).

    `eps` (B, C, D) are the standard-normal draws per class, so it matches the vectorised path.
    """
    probs = jax.nn.softmax(network.classifier(x))
    x_flat = x.reshape(x.shape[0], -1)
    components = network.prior_components()
    total = jnp.zeros((x.shape[0],))
    for c in range(spec.network.num_classes):
        y = jnp.zeros((x.shape[0], spec.network.num_classes)).at[:, c].set(1.0)
        mean, logvar = network.encoder(x, y)
        z = mean + jnp.exp(0.5 * logvar) * eps[:, c, :]
        rec = log_likelihood(spec, x_flat, network.decode(z, y))
        kl = kl_divergence(spec, z, mean, logvar, components)
        nelbo = (
            -spec.objective.reconstruction_weight * rec
            + spec.objective.kl_weight * kl_scale * kl
            + math.log(spec.network.num_classes)
        )
        total = total + probs[:, c] * nelbo
    return total - spec.objective.component_kl_weight * entropy(probs)


def translate(x: Array, shift: int, key: Array) -> Array:
    """Each image (B, H, W, C) moved by its own random offset in [-shift, shift], zero filled."""
    b, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * shift + 1)

    def crop(image: Array, offset: Array) -> Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def augment(spec: ModelSpec, x: Array, key: Array) -> Array:
    """A randomly translated and/or noised view of `x` for the consistency and labelled terms."""
    shift_key, noise_key = jax.random.split(key)
    if spec.objective.augment_shift > 0:
        x = translate(x, spec.objective.augment_shift, shift_key)
    if spec.objective.augment_noise > 0:
        x = x + spec.objective.augment_noise * jax.random.normal(noise_key, x.shape)
    return x


def uses_augmentation(spec: ModelSpec) -> bool:
    return spec.objective.augment_shift > 0 or spec.objective.augment_noise > 0


def prior_penalty(
    network: SsvaeNetwork, spec: ModelSpec, z: Array, weights: Array
) -> tuple[Array, Array]:
    """(Dirichlet MAP penalty, usage-sparsity penalty) of the mixture weights.

    Dirichlet: -(alpha - 1) sum_c log pi_c, the negative log-density of Dir(alpha) up to a
    constant (alpha < 1 favours few components). Usage sparsity: the entropy of the batch's
    mean responsibilities, low when few components explain the data.
    """
    if spec.network.prior == "standard":
        zero = jnp.zeros(())
        return zero, zero
    components = network.prior_components()
    log_w = components[0]
    dirichlet = -(spec.objective.dirichlet_alpha - 1.0) * jnp.sum(log_w)
    r = responsibilities(z, components)  # (B, k, K)
    usage = jnp.sum(weights[..., None] * r, axis=1).mean(axis=0)
    return dirichlet, entropy(usage)


def total_loss(
    network: SsvaeNetwork,
    spec: ModelSpec,
    batch: Mapping[str, Array],
    key: Array,
    scalars: Mapping[str, Array],
) -> tuple[Array, Metrics]:
    """The training loss of one step and its parts (see the module docstring)."""
    k_unl, k_lab, k_aug, k_aug_l, k_drop, k_drop_l = jax.random.split(key, 6)
    x_u = batch["x_u"]
    logits_u = network.classifier(x_u, k_drop if spec.network.dropout > 0 else None)
    per_u, parts = unlabelled_terms(network, spec, x_u, logits_u, k_unl, scalars["kl_scale"])
    loss_u = per_u.mean()

    x_l, y_l, mask = batch["x_l"], batch["y_l"], batch["mask_l"]
    n_lab = jnp.maximum(mask.sum(), 1.0)
    y_vec = jax.nn.one_hot(y_l, spec.network.num_classes, dtype=jnp.float32)[:, None, :]
    x_l_flat = x_l.reshape(x_l.shape[0], -1)
    nelbo_l, _ = negative_elbo(
        network, spec, x_l_flat, network.encoder.embed(x_l), y_vec, k_lab, scalars["kl_scale"]
    )
    loss_l = jnp.sum(mask * nelbo_l[:, 0]) / n_lab
    x_l_cls = augment(spec, x_l, k_aug_l) if uses_augmentation(spec) else x_l
    logits_l = network.classifier(x_l_cls, k_drop_l if spec.network.dropout > 0 else None)
    ce_each = -jnp.take_along_axis(jax.nn.log_softmax(logits_l), y_l[:, None], axis=-1)[:, 0]
    ce = jnp.sum(mask * ce_each) / n_lab
    accuracy = jnp.sum(mask * (jnp.argmax(logits_l, -1) == y_l)) / n_lab

    loss = loss_u + loss_l + scalars["alpha"] * ce
    probs_u = jax.nn.softmax(logits_u)
    consistency = jnp.zeros(())
    if spec.objective.consistency_weight > 0:
        target = jax.lax.stop_gradient(probs_u)
        log_aug = jax.nn.log_softmax(network.classifier(augment(spec, x_u, k_aug)))
        log_target = jnp.log(jnp.maximum(target, 1e-30))
        consistency = jnp.sum(target * (log_target - log_aug), axis=-1).mean()
        loss = loss + spec.objective.consistency_weight * consistency
    mean_entropy = parts["entropy"].mean()
    if spec.objective.entropy_weight > 0:
        loss = loss + spec.objective.entropy_weight * mean_entropy
    dirichlet, usage = prior_penalty(network, spec, parts["z"], parts["weights"])
    if spec.network.prior != "standard":
        loss = (
            loss
            + spec.objective.dirichlet_weight * dirichlet
            + spec.objective.usage_sparsity_weight * usage
        )

    metrics: Metrics = {
        "loss": loss,
        "unlabelled_loss": loss_u,
        "labelled_loss": loss_l,
        "classification": ce,
        "train_accuracy": accuracy,
        "reconstruction": parts["rec"].mean(),
        "kl": parts["kl"].mean(),
        "entropy": mean_entropy,
        "consistency": consistency,
    }
    return loss, metrics
