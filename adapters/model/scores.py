"""Per-sample acquisition scores that need the network: BALD over z and the negative ELBO.

BALD (Houlsby et al. 2011) asks how much observing the label would tell about an uncertain
quantity of the model. Here that quantity is the latent z: the score is the mutual
information between the label y and z under the model,

    I(y; z | x) = H( E_z[p(y|z)] ) - E_z[ H(p(y|z)) ],   z ~ q(z|x) = sum_c q(c|x) q(z|x,c),

with p(y|z) = sum_k r_k(z) tau[k, y] the component-to-label map read through the prior's
responsibilities r_k(z). It is high where the plausible latents of x fall into components
that mean different labels, and 0 where they all agree (or where tau's rows are equal, as
with the standard prior's single component). The expectations are stratified over the
classifier's classes: S draws z_{c,s} ~ q(z|x,c) for every class c, weighted by q(c|x). That
is exact over the discrete part of q(z|x) and sampled only over the Gaussian part, the same
expectation as drawing c too, with less variance; it costs no decoder pass.

The negative ELBO is the unlabelled term of the training loss (`losses.unlabelled_terms` at
kl_scale 1, without augmentation or dropout): sum_y w(y|x)[-log p(x|y,z) + KL(q(z|x,y)||p(z))
- log p(y)] - H(q(y|x)), with w = q(y|x) (restricted to its top k classes when the spec's
enumerate_top_k says so, as in training). z is sampled, not the mean: the average over S draws
is an unbiased estimate of the objective the model was trained on, where a mean z would bias
both the reconstruction and (for mixture and vamp priors) the one-sample KL.

Every draw of row i comes from fold_in(fold_in(key, stream), i), so a row's score does not
depend on the batch size, the padding or the device count.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ssvae.adapters.model.losses import entropy, responsibilities, unlabelled_terms
from ssvae.adapters.model.modules import SsvaeNetwork
from ssvae.domain.spec import ModelSpec

Array = jax.Array
Components = tuple[Array, Array, Array]
BALD_STREAM, ELBO_STREAM = 0, 1  # separate random streams per score


def row_keys(key: Array, rows: Array, stream: int) -> Array:
    """One typed PRNG key per row index of `rows` (B,), from the root key and a stream."""
    base = jax.random.fold_in(key, stream)
    return jax.vmap(lambda row: jax.random.fold_in(base, row))(rows)


def label_probs(z: Array, components: Components, tau: Array) -> Array:
    """p(y|z) = sum_k r_k(z) tau[k, y]: latents (..., D) -> label probabilities (..., Y)."""
    return responsibilities(z, components) @ tau


def mutual_information(probs: Array, weights: Array) -> Array:
    """H(mean p) - mean H(p) for label probabilities (B, C, S, Y) with class weights (B, C).

    The mean over (c, s) weighs each class c by weights[:, c] and its S draws equally.
    Clipped at 0: the difference is >= 0 in exact arithmetic.
    """
    count = probs.shape[2]
    mean = jnp.einsum("bc,bcsy->by", weights, probs) / count
    expected = jnp.einsum("bc,bcs->b", weights, entropy(probs)) / count
    return jnp.maximum(entropy(mean) - expected, 0.0)


def bald_from_noise(
    means: Array,
    logvars: Array,
    eps: Array,
    weights: Array,
    components: Components,
    tau: Array,
) -> Array:
    """BALD for fixed standard-normal draws `eps` (B, C, S, D) of q(z|x,c) = N(means, logvars).

    `means` and `logvars` are (B, C, D), `weights` q(c|x) (B, C), tau (K, Y).
    """
    z = means[:, :, None, :] + jnp.exp(0.5 * logvars)[:, :, None, :] * eps
    return mutual_information(label_probs(z, components, tau), weights)


def bald_scores(
    network: SsvaeNetwork, spec: ModelSpec, x: Array, tau: Array, keys: Array, samples: int
) -> Array:
    """BALD I(y; z | x) per row of `x`, with `samples` draws per class from each row's key."""
    c = spec.network.num_classes
    weights = jax.nn.softmax(network.classifier(x))
    y_all = jnp.broadcast_to(jnp.eye(c), (x.shape[0], c, c))
    means, logvars = network.encoder.head(network.encoder.embed(x)[:, None, :], y_all)
    eps = jax.vmap(lambda k: jax.random.normal(k, (c, samples, spec.network.latent_dim)))(keys)
    return bald_from_noise(means, logvars, eps, weights, network.prior_components(), tau)


def negative_elbo_scores(
    network: SsvaeNetwork, spec: ModelSpec, x: Array, keys: Array, samples: int
) -> Array:
    """The training loss's unlabelled term per row, averaged over `samples` draws of z.

    Draw s of row i uses fold_in(keys[i], s) as `unlabelled_terms`' key for that row alone.
    """
    logits = network.classifier(x)

    def one_row(x_row: Array, logits_row: Array, key: Array) -> Array:
        def add_draw(s: Array, total: Array) -> Array:
            value, _ = unlabelled_terms(
                network, spec, x_row[None], logits_row[None], jax.random.fold_in(key, s), 1.0
            )
            return total + value[0]

        total: Array = jax.lax.fori_loop(0, samples, add_draw, jnp.zeros((), jnp.float32))
        return total / samples

    scores: Array = jax.vmap(one_row)(x, logits, keys)
    return scores


def score_batch(
    network: SsvaeNetwork,
    spec: ModelSpec,
    x: Array,
    rows: Array,
    key: Array,
    tau: Array | None,
    names: Sequence[str],
    samples: int,
) -> dict[str, Array]:
    """The named scores ("bald", "negative_elbo") of one batch; `rows` index the draws."""
    out: dict[str, Array] = {}
    if "bald" in names:
        assert tau is not None, "bald needs tau; the caller checks"
        keys = row_keys(key, rows, BALD_STREAM)
        out["bald"] = bald_scores(network, spec, x, tau, keys, samples)
    if "negative_elbo" in names:
        keys = row_keys(key, rows, ELBO_STREAM)
        out["negative_elbo"] = negative_elbo_scores(network, spec, x, keys, samples)
    return out
