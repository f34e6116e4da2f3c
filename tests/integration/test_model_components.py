"""SSVAE components, priors, likelihoods and losses: shapes and closed forms."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssvae.adapters.model import likelihoods, losses
from ssvae.adapters.model.modules import build_network
from ssvae.domain.spec import ModelSpec


def tiny_spec(**overrides: object) -> ModelSpec:
    base: dict[str, object] = dict(
        input_shape=(6, 5, 2),
        num_classes=3,
        latent_dim=2,
        hidden_sizes=(8,),
        conv_channels=(3, 4),
        seed=1,
    )
    base.update(overrides)
    return ModelSpec.from_fields(**base)


PRIORS = {"standard": 1, "mixture": 3, "vamp": 4}


def _batch(spec: ModelSpec, b: int = 4, l_: int = 3) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    return {
        "x_u": jnp.asarray(rng.random((b, *spec.network.input_shape), dtype=np.float32)),
        "x_l": jnp.asarray(rng.random((l_, *spec.network.input_shape), dtype=np.float32)),
        "y_l": jnp.asarray(rng.integers(0, spec.network.num_classes, l_).astype(np.int32)),
        "mask_l": jnp.ones(l_, jnp.float32),
    }


@pytest.mark.parametrize(
    ("component", "prior", "likelihood"),
    list(
        itertools.product(("dense", "conv"), PRIORS, ("bernoulli", "gaussian", "heteroscedastic"))
    ),
)
def test_every_combination_has_the_right_shapes_and_a_finite_loss(
    component: str, prior: str, likelihood: str
) -> None:
    spec = tiny_spec(
        encoder_type=component,
        decoder_type=component,
        classifier_type=component,
        prior=prior,
        num_components=PRIORS[prior],
        likelihood=likelihood,
        consistency_weight=1.0,
        augment_shift=1,
        dirichlet_weight=0.5,
        usage_sparsity_weight=0.5,
        dirichlet_alpha=0.5,
    )
    net = build_network(spec)
    x = _batch(spec)["x_u"]
    y = jax.nn.one_hot(jnp.arange(4) % 3, 3)
    assert net.classifier(x).shape == (4, 3)
    mean, logvar = net.encoder(x, y)
    assert mean.shape == logvar.shape == (4, 2)
    out = net.decode(mean, y)
    per_feature = 2 if likelihood == "heteroscedastic" else 1
    assert out.shape == (4, 6 * 5 * 2 * per_feature)
    assert likelihoods.mean_of(spec, out).shape == (4, 60)
    log_w, means, logvars = net.prior_components()
    assert log_w.shape == (PRIORS[prior],) and means.shape == logvars.shape == (PRIORS[prior], 2)
    np.testing.assert_allclose(float(jax.nn.logsumexp(log_w)), 0.0, atol=1e-5)
    scalars = {"kl_scale": jnp.float32(1.0), "alpha": jnp.float32(2.0)}
    loss, metrics = losses.total_loss(net, spec, _batch(spec), jax.random.key(0), scalars)
    assert loss.shape == () and bool(jnp.isfinite(loss))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())


def test_mixed_components_and_vector_inputs() -> None:
    spec = tiny_spec(encoder_type="conv", decoder_type="dense", classifier_type="conv")
    net = build_network(spec)
    y = jax.nn.one_hot(jnp.arange(4) % 3, 3)
    assert net.decode(net.encoder(_batch(spec)["x_u"], y)[0], y).shape == (4, 60)
    vec = tiny_spec(input_shape=(7,), num_classes=5, hidden_sizes=(6, 4))
    vnet = build_network(vec)
    yv = jax.nn.one_hot(jnp.arange(2), 5)
    mean, _ = vnet.encoder(jnp.ones((2, 7)), yv)
    assert vnet.classifier(jnp.ones((2, 7))).shape == (2, 5)
    assert vnet.decode(mean, yv).shape == (2, 7)


def test_kl_to_standard_normal_closed_form() -> None:
    mean = jnp.array([[0.0, 0.0], [1.0, -2.0]])
    logvar = jnp.array([[0.0, 0.0], [math.log(4.0), math.log(0.25)]])
    # 0.5 * sum(var + mu^2 - 1 - log var)
    expected = [0.0, 0.5 * ((4 + 1 - 1 - math.log(4)) + (0.25 + 4 - 1 - math.log(0.25)))]
    np.testing.assert_allclose(losses.kl_to_standard_normal(mean, logvar), expected, rtol=1e-6)


def test_monte_carlo_kl_against_a_one_component_prior_matches_the_closed_form() -> None:
    mean, logvar = jnp.array([0.7, -0.3]), jnp.array([-0.5, 0.4])
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(3), (200_000, 2))
    standard = (jnp.zeros(1), jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    spec = tiny_spec(prior="mixture", num_components=2)
    mc = losses.kl_divergence(spec, z, mean, logvar, standard).mean()
    exact = losses.kl_to_standard_normal(mean, logvar)
    np.testing.assert_allclose(float(mc), float(exact), atol=0.01)


def test_log_normal_and_mixture_log_prior_against_numpy() -> None:
    z = np.array([0.3, -1.2])
    means = np.array([[0.0, 0.0], [1.0, -1.0]])
    logvars = np.array([[0.0, 0.0], [np.log(0.5), np.log(2.0)]])
    weights = np.array([0.3, 0.7])

    def density(mu: np.ndarray, var: np.ndarray) -> float:
        return float(np.prod(np.exp(-((z - mu) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)))

    dens = [density(means[c], np.exp(logvars[c])) for c in range(2)]
    np.testing.assert_allclose(
        float(losses.log_normal(jnp.asarray(z), jnp.asarray(means[1]), jnp.asarray(logvars[1]))),
        np.log(dens[1]),
        rtol=1e-6,
    )
    comps = (jnp.log(jnp.asarray(weights)), jnp.asarray(means), jnp.asarray(logvars))
    np.testing.assert_allclose(
        float(losses.log_prior(jnp.asarray(z), comps)), np.log(weights @ dens), rtol=1e-6
    )
    r = np.asarray(losses.responsibilities(jnp.asarray(z), comps))
    np.testing.assert_allclose(r, weights * dens / (weights @ dens), rtol=1e-5)


def test_log_likelihoods_against_numpy() -> None:
    x = np.array([[0.0, 1.0, 0.25]])
    logits = np.array([[-2.0, 3.0, 0.5]])
    p = 1 / (1 + np.exp(-logits))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    got = likelihoods.bernoulli_log_likelihood(jnp.asarray(x), jnp.asarray(logits))
    np.testing.assert_allclose(float(got[0]), expected, rtol=1e-6)
    mean, sigma = np.array([[0.5, 0.5, 0.0]]), np.array([[0.1, 1.0, 2.0]])
    expected_g = np.sum(-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi))
    got_g = likelihoods.gaussian_log_likelihood(
        jnp.asarray(x), jnp.asarray(mean), jnp.log(jnp.asarray(sigma))
    )
    np.testing.assert_allclose(float(got_g[0]), expected_g, rtol=1e-6)


def test_heteroscedastic_sigma_is_bounded_and_used() -> None:
    spec = tiny_spec(likelihood="heteroscedastic", log_sigma_min=-2.0, log_sigma_max=1.0)
    raw = jnp.array([-1e4, 0.0, 1e4])
    bounded = likelihoods.bounded_log_sigma(raw, -2.0, 1.0)
    np.testing.assert_allclose(np.asarray(bounded), [-2.0, -0.5, 1.0], atol=1e-6)
    out = jnp.stack([jnp.array([0.2, 0.4, 0.6]), raw], axis=-1).reshape(1, -1)
    x = jnp.array([[0.0, 0.5, 1.0]])
    expected = likelihoods.gaussian_log_likelihood(x, jnp.array([[0.2, 0.4, 0.6]]), bounded)
    np.testing.assert_allclose(
        np.asarray(likelihoods.log_likelihood(spec, x, out)), np.asarray(expected), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(likelihoods.sigma_of(spec, out))[0], np.exp(np.asarray(bounded)), rtol=1e-6
    )


@pytest.mark.parametrize("prior", list(PRIORS))
def test_enumerated_elbo_matches_a_slow_loop_over_classes(prior: str) -> None:
    spec = tiny_spec(prior=prior, num_components=PRIORS[prior], likelihood="gaussian")
    net = build_network(spec)
    x = _batch(spec)["x_u"]
    key = jax.random.key(7)
    logits = net.classifier(x)
    fast, _ = losses.unlabelled_terms(net, spec, x, logits, key, 0.5)
    eps = jax.random.normal(key, (4, spec.network.num_classes, spec.network.latent_dim))
    slow = losses.reference_unlabelled_loss(net, spec, x, eps, kl_scale=0.5)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(slow), rtol=1e-5, atol=1e-4)


def test_top_k_enumeration_keeps_the_most_probable_classes_renormalised() -> None:
    spec = tiny_spec(num_classes=4, enumerate_top_k=2)
    probs = jnp.array([[0.1, 0.5, 0.3, 0.1]])
    idx, w = losses.enumerated_classes(spec, probs)
    assert set(np.asarray(idx)[0].tolist()) == {1, 2}
    np.testing.assert_allclose(np.sort(np.asarray(w)[0]), [0.375, 0.625], rtol=1e-6)
    full, wf = losses.enumerated_classes(tiny_spec(num_classes=4), probs)
    np.testing.assert_array_equal(np.asarray(full)[0], [0, 1, 2, 3])
    np.testing.assert_allclose(np.asarray(wf), np.asarray(probs))


def test_translate_moves_each_image_by_its_own_offset() -> None:
    image = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    moved = losses.translate(jnp.repeat(image, 50, 0), 1, jax.random.key(0))
    peaks = {tuple(np.argwhere(np.asarray(m)[..., 0])[0]) for m in moved}
    assert peaks <= {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)} and len(peaks) > 3
    np.testing.assert_allclose(np.asarray(moved.sum((1, 2, 3))), 1.0)
