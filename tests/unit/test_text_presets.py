"""Text presets: dense components, a Gaussian-family likelihood, any embedding width."""

from __future__ import annotations

import pytest

from ssvae.domain.spec import PRESETS, TEXT_PRESET_VALUES, preset

TEXT_PRESETS = list(TEXT_PRESET_VALUES)


def test_the_text_presets_are_presets() -> None:
    assert {"text_standard", "text_mixture_k20", "text_vamp_k20"} <= set(TEXT_PRESETS)
    assert set(TEXT_PRESETS) <= set(PRESETS)


@pytest.mark.parametrize("name", TEXT_PRESETS)
@pytest.mark.parametrize("width", [64, 384, 1536])
def test_text_presets_fit_embeddings_of_any_width(name: str, width: int) -> None:
    spec = preset(name, input_shape=(width,), num_classes=99)
    assert spec.network.input_shape == (width,) and spec.network.num_classes == 99
    assert (spec.network.encoder_type, spec.network.decoder_type, spec.network.classifier_type) == (
        "dense",
    ) * 3
    assert spec.network.likelihood in ("gaussian", "heteroscedastic")
    assert (
        spec.objective.augment_shift == 0
        and spec.objective.augment_noise > 0 < spec.objective.consistency_weight
    )
    assert spec.objective.enumerate_top_k == 3
    assert preset(name, input_shape=(width,), num_classes=2).objective.enumerate_top_k == 0


@pytest.mark.parametrize("name", TEXT_PRESETS)
def test_text_presets_move_onto_data_by_evolve(name: str) -> None:
    spec = preset(name).evolve(input_shape=(1536,), num_classes=10)
    assert spec == preset(name, input_shape=(1536,), num_classes=10)


def test_text_presets_differ_in_prior_and_likelihood() -> None:
    assert preset("text_standard").network.prior == "standard"
    assert preset("text_standard").network.likelihood == "gaussian"
    assert preset("text_standard_hetero").network.likelihood == "heteroscedastic"
    assert (
        preset("text_mixture_k20").network.prior,
        preset("text_mixture_k20").network.num_components,
    ) == (
        "mixture",
        20,
    )
    assert (
        preset("text_vamp_k20").network.prior,
        preset("text_vamp_k20").network.num_components,
    ) == ("vamp", 20)
