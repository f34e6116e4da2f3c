"""BALD and the per-sample negative ELBO of the JAX model: closed forms and slow references."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssvae.adapters.model import losses, scores
from ssvae.adapters.model.modules import build_network
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.ports import ModelScorer
from ssvae.domain.spec import ModelSpec

# ---------------------------------------------------------------------------------------------
# A slow numpy reference of BALD for given standard-normal draws.


def numpy_log_normal(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> float:
    d = z - mean
    return float(-0.5 * np.sum(np.log(2 * np.pi) + logvar + d * d * np.exp(-logvar)))


def numpy_entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def numpy_bald(
    means: np.ndarray,
    logvars: np.ndarray,
    eps: np.ndarray,
    weights: np.ndarray,
    components: tuple[np.ndarray, np.ndarray, np.ndarray],
    tau: np.ndarray,
) -> np.ndarray:
    """H(mean p) - mean H(p), one row, class and draw at a time, in float64."""
    log_w, comp_means, comp_logvars = (np.asarray(a, np.float64) for a in components)
    rows, classes, draws, _ = eps.shape
    out = np.zeros(rows)
    for b in range(rows):
        mean_p = np.zeros(tau.shape[1])
        expected_h = 0.0
        for c in range(classes):
            for s in range(draws):
                z = means[b, c] + np.exp(0.5 * logvars[b, c]) * eps[b, c, s]
                logs = np.array(
                    [
                        log_w[k] + numpy_log_normal(z, comp_means[k], comp_logvars[k])
                        for k in range(len(log_w))
                    ]
                )
                r = np.exp(logs - logs.max())
                p = (r / r.sum()) @ tau
                mean_p += weights[b, c] * p / draws
                expected_h += weights[b, c] * numpy_entropy(p) / draws
        out[b] = numpy_entropy(mean_p) - expected_h
    return out


def _random_case(seed: int, k: int = 3, classes: int = 3, d: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "means": rng.normal(size=(4, classes, d)),
        "logvars": rng.normal(scale=0.3, size=(4, classes, d)),
        "eps": rng.normal(size=(4, classes, 5, d)),
        "weights": rng.dirichlet(np.ones(classes), size=4),
        "log_w": np.log(rng.dirichlet(np.ones(k))),
        "comp_means": rng.normal(size=(k, d)),
        "comp_logvars": rng.normal(scale=0.3, size=(k, d)),
        "tau": rng.dirichlet(np.ones(classes) * 0.5, size=k),
    }


def _jax_bald(case: dict[str, np.ndarray]) -> np.ndarray:
    f32 = {name: jnp.asarray(value, jnp.float32) for name, value in case.items()}
    components = (f32["log_w"], f32["comp_means"], f32["comp_logvars"])
    value = scores.bald_from_noise(
        f32["means"], f32["logvars"], f32["eps"], f32["weights"], components, f32["tau"]
    )
    return np.asarray(value)


def _numpy_bald(case: dict[str, np.ndarray]) -> np.ndarray:
    components = (case["log_w"], case["comp_means"], case["comp_logvars"])
    return numpy_bald(
        case["means"], case["logvars"], case["eps"], case["weights"], components, case["tau"]
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_bald_matches_the_numpy_reference_on_fixed_draws(seed: int) -> None:
    case = _random_case(seed)
    expected = _numpy_bald(case)
    assert np.all(expected > 1e-3)  # a case where BALD is not trivially 0
    np.testing.assert_allclose(_jax_bald(case), expected, rtol=1e-4, atol=1e-6)


def test_bald_is_zero_when_every_component_means_the_same_label() -> None:
    case = _random_case(2)
    case["tau"] = np.tile([[0.2, 0.5, 0.3]], (3, 1))
    np.testing.assert_allclose(_jax_bald(case), 0.0, atol=1e-6)
    case = _random_case(3, k=1)  # the standard prior's single component
    np.testing.assert_allclose(_jax_bald(case), 0.0, atol=1e-6)


def test_bald_is_log_2_when_the_latent_decides_between_two_labels() -> None:
    """Two far apart components meaning one label each; q(z|x) puts half its mass near each."""
    d = 2
    case = {
        "means": np.array([[[-10.0, 0.0], [10.0, 0.0]]]),  # class c's latent sits at component c
        "logvars": np.full((1, 2, d), -6.0),
        "eps": np.random.default_rng(0).normal(size=(1, 2, 8, d)),
        "weights": np.array([[0.5, 0.5]]),
        "log_w": np.log([0.5, 0.5]),
        "comp_means": np.array([[-10.0, 0.0], [10.0, 0.0]]),
        "comp_logvars": np.zeros((2, d)),
        "tau": np.eye(2),
    }
    np.testing.assert_allclose(_jax_bald(case), math.log(2.0), rtol=1e-5)
    case["weights"] = np.array([[1.0, 0.0]])  # the classifier is sure: z is near one component
    np.testing.assert_allclose(_jax_bald(case), 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The per-sample negative ELBO against the training loss's slow reference.


def tiny_spec(**overrides: object) -> ModelSpec:
    base: dict[str, object] = dict(
        input_shape=(6, 6, 1),
        num_classes=3,
        latent_dim=2,
        hidden_sizes=(16,),
        prior="mixture",
        num_components=4,
        batch_size=16,
        labeled_batch_size=8,
        validation_split=0.0,
        patience=0,
        seed=3,
    )
    base.update(overrides)
    return ModelSpec.from_fields(**base)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 6, 6, 1), dtype=np.float32)


def test_negative_elbo_equals_the_unlabelled_loss_reference_draw_by_draw() -> None:
    spec = tiny_spec(enumerate_top_k=0)  # the reference enumerates every class
    net = build_network(spec)
    x = jnp.asarray(_images(5))
    root = jax.random.key(11)
    keys = scores.row_keys(root, jnp.arange(5), scores.ELBO_STREAM)
    draws = 3
    got = np.asarray(scores.negative_elbo_scores(net, spec, x, keys, draws))
    c, d = spec.network.num_classes, spec.network.latent_dim
    reference = jax.jit(lambda row, eps: losses.reference_unlabelled_loss(net, spec, row, eps))
    for row in range(5):
        slow = [
            float(reference(x[row : row + 1], jax.random.normal(draw, (1, c, d)))[0])
            for draw in (jax.random.fold_in(keys[row], s) for s in range(draws))
        ]
        assert got[row] == pytest.approx(np.mean(slow), rel=1e-5)

    # One draw is the training loss's own unlabelled term of that row, with the draw's key.
    def loss_term(row: jax.Array, key: jax.Array) -> jax.Array:
        return losses.unlabelled_terms(net, spec, row, net.classifier(row), key, 1.0)[0][0]

    term = jax.jit(loss_term)
    one_draw = np.asarray(scores.negative_elbo_scores(net, spec, x, keys, 1))
    for row in range(5):
        expected = float(term(x[row : row + 1], jax.random.fold_in(keys[row], 0)))
        assert one_draw[row] == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# JaxSsvaeModel.model_scores: the port, determinism, batching, errors.


def _model(spec: ModelSpec, batch: int = 1024) -> JaxSsvaeModel:
    model = JaxSsvaeModel(spec, predict_batch_size=batch)
    k = spec.network.num_components
    model.tau = np.random.default_rng(0).dirichlet(np.full(3, 0.3), size=k).astype(np.float32)
    return model


def test_model_scores_match_the_references_and_repeat_for_a_seed() -> None:
    spec = tiny_spec()
    model = _model(spec)
    assert isinstance(model, ModelScorer)
    x = _images(10, seed=1)
    out = model.model_scores(x, ["negative_elbo", "bald"], samples=4, seed=5)
    assert set(out) == {"bald", "negative_elbo"}
    assert out["bald"].shape == (10,) and out["negative_elbo"].shape == (10,)
    assert np.all(out["bald"] >= 0) and np.all(np.isfinite(out["negative_elbo"]))

    # BALD: the numpy reference on the same draws of the model's own q(z|x, c).
    net = model.kit.network(model.state.params)
    xj = jnp.asarray(x)
    c = spec.network.num_classes
    means, logvars = net.encoder.head(
        net.encoder.embed(xj)[:, None, :], jnp.broadcast_to(jnp.eye(c), (10, c, c))
    )
    keys = scores.row_keys(jax.random.key(5), jnp.arange(10), scores.BALD_STREAM)
    eps = np.stack(
        [np.asarray(jax.random.normal(k, (c, 4, spec.network.latent_dim))) for k in keys]
    )
    weights = np.asarray(jax.nn.softmax(net.classifier(xj)))
    components = tuple(np.asarray(a) for a in net.prior_components())
    expected = numpy_bald(
        np.asarray(means),
        np.asarray(logvars),
        eps,
        weights,
        components,
        model.tau,  # type: ignore[arg-type]
    )
    assert np.any(expected > 1e-4)
    np.testing.assert_allclose(out["bald"], expected, rtol=2e-3, atol=1e-6)

    # negative ELBO: the pure function on the same keys.
    elbo_keys = scores.row_keys(jax.random.key(5), jnp.arange(10), scores.ELBO_STREAM)
    direct = scores.negative_elbo_scores(net, spec, xj, elbo_keys, 4)
    np.testing.assert_allclose(out["negative_elbo"], np.asarray(direct), rtol=1e-5)

    again = model.model_scores(x, ["bald", "negative_elbo"], samples=4, seed=5)
    for name in out:
        np.testing.assert_array_equal(again[name], out[name])
    other = model.model_scores(x, ["bald", "negative_elbo"], samples=4, seed=6)
    assert not np.array_equal(other["negative_elbo"], out["negative_elbo"])
    # A row's draws do not depend on the batch size or its padding.
    small = _model(spec, batch=4).model_scores(x, ["bald", "negative_elbo"], samples=4, seed=5)
    for name in out:
        np.testing.assert_allclose(small[name], out[name], rtol=1e-5, atol=1e-7)


def test_model_scores_refuse_what_cannot_be_computed() -> None:
    x = _images(3)
    untrained = JaxSsvaeModel(tiny_spec())
    with pytest.raises(AcquisitionError, match=r"component-to-label map.*ssvae train"):
        untrained.model_scores(x, ["bald"])
    elbo = untrained.model_scores(x, ["negative_elbo"], samples=1)["negative_elbo"]
    assert elbo.shape == (3,)  # the negative ELBO needs no labels
    standard = _model(tiny_spec(prior="standard", num_components=1))
    with pytest.raises(AcquisitionError, match="mixture or vamp"):
        standard.model_scores(x, ["bald"])
    with pytest.raises(AcquisitionError, match=r"unknown model score\(s\) \['elbo'\]"):
        untrained.model_scores(x, ["elbo"])
    with pytest.raises(AcquisitionError, match="at least 1"):
        untrained.model_scores(x, ["negative_elbo"], samples=0)


SHARDED = """
import json, numpy as np, jax
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.spec import ModelSpec
spec = ModelSpec.from_fields(**json.loads({spec!r}))
model = JaxSsvaeModel(spec, predict_batch_size=4)
model.tau = np.asarray({tau!r}, np.float32)
x = np.random.default_rng(0).random((7, 6, 6, 1), dtype=np.float32)
out = model.model_scores(x, ["bald", "negative_elbo"], samples=2, seed=1)
print(json.dumps({{"mesh": model.mesh.size, **{{k: v.tolist() for k, v in out.items()}}}}))
"""


def test_three_devices_give_the_scores_of_one() -> None:
    """7 rows in batches padded to a multiple of 3 devices: the same scores as here."""
    fields = {"input_shape": [6, 6, 1], "num_classes": 3, "latent_dim": 2, "hidden_sizes": [16],
              "prior": "mixture", "num_components": 4, "seed": 3}  # fmt: skip
    spec = ModelSpec.from_fields(**{**fields, "input_shape": (6, 6, 1), "hidden_sizes": (16,)})
    tau = np.random.default_rng(0).dirichlet(np.full(3, 0.3), size=4).astype(np.float32)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    env["JAX_PLATFORMS"] = "cpu"
    script = SHARDED.format(spec=json.dumps(fields), tau=tau.tolist())
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = json.loads(done.stdout.strip().splitlines()[-1])
    assert sharded["mesh"] == 3
    model = JaxSsvaeModel(spec, predict_batch_size=4)
    model.tau = tau
    x = np.random.default_rng(0).random((7, 6, 6, 1), dtype=np.float32)
    here = model.model_scores(x, ["bald", "negative_elbo"], samples=2, seed=1)
    for name in here:
        np.testing.assert_allclose(sharded[name], here[name], rtol=1e-4, atol=1e-6)
