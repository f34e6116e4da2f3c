"""JaxModelGenerator on a real (tiny) SSVAE: shapes, ranges, determinism, and the decoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fakes import FakeModel

from ssvae.adapters.model.generation import JaxModelGenerator
from ssvae.adapters.model.likelihoods import mean_of
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec


def tiny(prior: str, k: int) -> JaxSsvaeModel:
    spec = ModelSpec.from_fields(
        input_shape=(6, 6, 1),
        num_classes=3,
        latent_dim=2,
        hidden_sizes=(8,),
        prior=prior,
        num_components=k,
        seed=1,
    )
    return JaxSsvaeModel(spec)


@pytest.fixture(scope="module")
def mixture() -> JaxSsvaeModel:
    return tiny("mixture", 4)


def test_generated_samples_have_one_row_per_class_and_per_component(
    mixture: JaxSsvaeModel,
) -> None:
    generated = JaxModelGenerator().generate(mixture, per_class=5, seed=0)
    assert generated.per_class.shape == (3, 5, 6, 6, 1)
    assert generated.per_component.shape == (4, 3, 6, 6, 1)
    assert generated.mixing_weights.shape == (4,)
    assert generated.mixing_weights.sum() == pytest.approx(1.0, abs=1e-6)
    # Bernoulli decoder means are probabilities.
    assert generated.per_class.min() >= 0.0 and generated.per_class.max() <= 1.0
    again = JaxModelGenerator().generate(mixture, per_class=5, seed=0)
    np.testing.assert_array_equal(generated.per_class, again.per_class)
    other = JaxModelGenerator().generate(mixture, per_class=5, seed=1)
    assert not np.array_equal(generated.per_class, other.per_class)


def test_each_component_row_is_its_mean_decoded_with_each_class(mixture: JaxSsvaeModel) -> None:
    generated = JaxModelGenerator().generate(mixture, per_class=1, seed=0)
    network = mixture.kit.network(mixture.state.params)
    _, means, _ = network.prior_components()
    for k in range(4):
        for y in range(3):
            out = network.decode(means[k][None], jax.nn.one_hot(jnp.array([y]), 3))
            expected = np.asarray(mean_of(mixture.spec, out)).reshape(6, 6, 1)
            np.testing.assert_allclose(generated.per_component[k, y], expected, atol=1e-6)


def test_the_standard_prior_has_one_component_with_weight_one() -> None:
    generated = JaxModelGenerator().generate(tiny("standard", 1), per_class=2, seed=0)
    assert generated.per_component.shape == (1, 3, 6, 6, 1)
    np.testing.assert_allclose(generated.mixing_weights, [1.0])


def test_reconstructions_keep_the_input_shape(mixture: JaxSsvaeModel) -> None:
    x = np.random.default_rng(0).random((7, 6, 6, 1), dtype=np.float32)
    reconstructed = JaxModelGenerator().reconstruct(mixture, x)
    assert reconstructed.shape == x.shape and reconstructed.dtype == np.float32
    assert reconstructed.min() >= 0.0 and reconstructed.max() <= 1.0


def test_other_models_are_refused_with_a_reason() -> None:
    with pytest.raises(SsvaeError, match="cannot look inside a FakeModel"):
        JaxModelGenerator().generate(FakeModel(ModelSpec()), 1, 0)
