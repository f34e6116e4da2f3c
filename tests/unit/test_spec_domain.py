"""ModelSpec: every field rejects bad values by name, cross-field rules, presets and evolve."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import (
    FIELD_GROUPS,
    IMAGE_PRESET_VALUES,
    PRESETS,
    SEMI_SUPERVISED_BASE,
    SPEC_GROUPS,
    ModelSpec,
    fit_to_data,
    preset,
)

# Every field of every group, in the spec's order: the flat fields users name.
FIELDS = tuple(a for group in SPEC_GROUPS.values() for a in attrs.fields(group))

# Values every field of that annotated type must reject: wrong types, non-finite numbers and
# magnitudes beyond any range a field of the spec allows. A new field whose type is not listed
# fails `test_every_field_type_has_bad_values`, so it cannot slip through untested.
BAD_VALUES_BY_TYPE: dict[str, list[Any]] = {
    "int": ["3", 2.5, True, None, -(10**9)],
    "float": ["0.5", None, True, float("nan"), float("inf"), float("-inf"), -1e12, 1e12],
    "str": ["no-such-option", "", 3, None],
    "bool": [1, 0, "true", None],
    "tuple[int, ...]": [(), (0,), (2.5,), (True,), "28", 28, tuple(range(1, 40)), None],
}

# Boundaries of particular ranges: the open end of an interval must be rejected too.
BOUNDARY_VALUES: dict[str, list[Any]] = {
    "num_classes": [1],
    "latent_dim": [0],
    "dropout": [1.0, -0.1],
    "learning_rate": [0.0],
    "dirichlet_alpha": [0.0],
    "tau_alpha0": [0.0],
    "validation_split": [0.95],
    "batch_size": [0],
    "max_epochs": [0],
    "gaussian_sigma": [0.0],
    "lr_min_fraction": [1.5, -0.1],
}


def _field_type(attribute: attrs.Attribute[Any]) -> str:
    """The annotation as written ('int', 'tuple[int, ...]'), a string or a resolved type."""
    kind = attribute.type
    if isinstance(kind, str):
        return kind
    return kind.__name__ if isinstance(kind, type) else repr(kind)


def _bad_cases() -> list[Any]:
    cases = []
    for attribute in FIELDS:
        values = BAD_VALUES_BY_TYPE.get(_field_type(attribute), [])
        values = values + BOUNDARY_VALUES.get(attribute.name, [])
        for value in values:
            cases.append(pytest.param(attribute.name, value, id=f"{attribute.name}={value!r}"))
    return cases


def _shown(name: str, value: Any) -> str:
    """The value as the spec's message shows it: after the field's converter, cut short."""
    converter = {a.name: a for a in FIELDS}[name].converter
    return short_repr(converter(value) if callable(converter) else value)


def test_the_spec_has_at_least_25_fields() -> None:
    assert len(FIELDS) >= 25
    assert ModelSpec.field_names() == tuple(a.name for a in FIELDS)


def test_every_field_type_has_bad_values() -> None:
    missing = {a.name: _field_type(a) for a in FIELDS if _field_type(a) not in BAD_VALUES_BY_TYPE}
    assert not missing, f"add bad values to BAD_VALUES_BY_TYPE for these field types: {missing}"


def test_boundary_table_names_only_real_fields() -> None:
    assert set(BOUNDARY_VALUES) <= set(ModelSpec.field_names())


def test_every_field_has_a_doc_and_a_valid_default() -> None:
    docs = ModelSpec.field_docs()
    assert all(docs[name].strip() for name in ModelSpec.field_names())
    assert ModelSpec() == ModelSpec.from_fields(**{a.name: a.default for a in FIELDS})


@pytest.mark.parametrize(("name", "value"), _bad_cases())
def test_each_field_rejects_a_bad_value_naming_field_and_value(name: str, value: Any) -> None:
    with pytest.raises(SpecError) as caught:
        ModelSpec.from_fields(**{name: value})
    message = str(caught.value)
    assert f"'{name}'" in message
    assert _shown(name, value) in message
    assert "\n" not in message


def test_lists_become_tuples_and_integers_become_floats() -> None:
    spec = ModelSpec.from_fields(hidden_sizes=[64, 32], dropout=0, input_shape=[784])
    assert spec.network.hidden_sizes == (64, 32)
    assert spec.network.input_shape == (784,)
    assert spec.network.dropout == 0.0 and isinstance(spec.network.dropout, float)
    assert hash(spec) == hash(ModelSpec.from_fields(hidden_sizes=(64, 32), input_shape=(784,)))


def test_the_spec_is_immutable() -> None:
    spec = ModelSpec()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.training.seed = 3  # type: ignore[misc]


# Cross-field rules.


def test_log_sigma_min_must_be_below_max() -> None:
    with pytest.raises(SpecError, match=r"'log_sigma_min' = 2\.0 and 'log_sigma_max' = 2\.0"):
        ModelSpec.from_fields(log_sigma_min=2.0, log_sigma_max=2.0)
    assert ModelSpec.from_fields(log_sigma_min=1.0, log_sigma_max=2.0).network.log_sigma_min == 1.0


def test_enumerate_top_k_is_at_most_the_number_of_classes() -> None:
    with pytest.raises(SpecError, match=r"'enumerate_top_k' = 4 .* num_classes = 3"):
        ModelSpec.from_fields(num_classes=3, enumerate_top_k=4)
    assert ModelSpec.from_fields(num_classes=3, enumerate_top_k=3).objective.enumerate_top_k == 3


def test_the_standard_prior_has_exactly_one_component() -> None:
    with pytest.raises(SpecError, match=r"'num_components' = 3 .*standard prior"):
        ModelSpec.from_fields(prior="standard", num_components=3)


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_mixture_and_vamp_priors_need_two_components(prior: str) -> None:
    with pytest.raises(SpecError, match=f"'num_components' = 1 .*'{prior}'"):
        ModelSpec.from_fields(prior=prior, num_components=1)
    assert ModelSpec.from_fields(prior=prior, num_components=2).network.num_components == 2


@pytest.mark.parametrize("component", ["encoder_type", "decoder_type", "classifier_type"])
def test_conv_components_need_image_shaped_inputs(component: str) -> None:
    with pytest.raises(SpecError, match=r"'input_shape' = \(784,\) .*conv"):
        ModelSpec.from_fields(input_shape=(784,), **{component: "conv"})
    spec = ModelSpec.from_fields(input_shape=(8, 8, 3), **{component: "conv"})
    assert spec.to_fields()[component] == "conv"


# Presets.


def _expected_components(name: str) -> int:
    match = re.search(r"_k(\d+)$", name)
    return int(match.group(1)) if match else 1


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_has_the_prior_and_components_its_name_says(name: str) -> None:
    spec = preset(name)
    assert spec.network.num_components == _expected_components(name)
    assert spec.network.prior == name.removeprefix("text_").split("_")[0]


def test_presets_differ_from_each_other() -> None:
    specs = [preset(name) for name in PRESETS]
    assert len(set(specs)) == len(specs)
    assert {"standard", "mixture_k10"} <= set(PRESETS)


def test_preset_overrides_apply_and_unknown_presets_fail_by_name() -> None:
    spec = preset("mixture_k10", latent_dim=4)
    assert (spec.network.latent_dim, spec.network.num_components) == (4, 10)
    with pytest.raises(SpecError, match=r"unknown model preset 'mixture_k11'.*mixture_k10"):
        preset("mixture_k11")


def test_every_preset_carries_the_documented_semi_supervised_values() -> None:
    for name in IMAGE_PRESET_VALUES:
        spec = preset(name)
        for field, value in SEMI_SUPERVISED_BASE.items():
            assert spec.to_fields()[field] == value, (name, field)
    assert preset("mixture_k10").objective.dirichlet_weight == 1.0
    assert preset("vamp_k10").optimiser.learning_rate == 3e-3


@pytest.mark.parametrize("name", list(IMAGE_PRESET_VALUES))
def test_presets_fit_vectors_and_few_classes(name: str) -> None:
    assert preset(name).network.classifier_type == "conv"
    spec = preset(name, input_shape=(384,), num_classes=2)
    assert (spec.objective.augment_shift, spec.objective.enumerate_top_k) == (0, 0)
    assert spec.network.classifier_type == "dense"
    assert spec.objective.consistency_weight == SEMI_SUPERVISED_BASE["consistency_weight"]
    # Overrides are fitted too; a top-k within the class count stays.
    assert preset(name, num_classes=2, enumerate_top_k=5).objective.enumerate_top_k == 0
    assert preset(name, num_classes=4).objective.enumerate_top_k == 3
    assert preset(name, input_shape=(8, 8, 3)).objective.augment_shift == 2


def test_evolving_a_preset_onto_other_data_fits_it_but_explicit_values_are_validated() -> None:
    moved = preset("standard").evolve(input_shape=(12,), num_classes=2)
    assert (
        moved.objective.augment_shift,
        moved.objective.enumerate_top_k,
        moved.network.classifier_type,
    ) == (0, 0, "dense")
    assert moved == preset("standard", input_shape=(12,), num_classes=2)
    with pytest.raises(SpecError, match="'augment_shift' = 2"):
        preset("standard").evolve(input_shape=(12,), augment_shift=2)
    with pytest.raises(SpecError, match="'augment_shift' = 2"):
        ModelSpec.from_fields(input_shape=(12,), augment_shift=2)
    with pytest.raises(SpecError, match="conv components need"):
        preset("standard").evolve(input_shape=(12,), augment_shift=0, classifier_type="conv")
    with pytest.raises(SpecError, match="'enumerate_top_k' = 3"):
        ModelSpec.from_fields(num_classes=2, enumerate_top_k=3)
    # Values of the wrong type are left for validation to report.
    assert fit_to_data({"num_classes": "ten", "enumerate_top_k": 3})["enumerate_top_k"] == 3
    with pytest.raises(SpecError, match="unknown model spec field"):
        preset("standard", latnt_dim=3)


# Evolve.


def test_evolve_changes_only_the_named_fields() -> None:
    spec = ModelSpec().evolve(latent_dim=3, seed=7)
    assert (spec.network.latent_dim, spec.training.seed) == (3, 7)
    assert spec.evolve(latent_dim=16, seed=0) == ModelSpec()


def test_evolve_with_an_unknown_name_fails_by_name() -> None:
    with pytest.raises(SpecError, match=r"unknown model spec field\(s\): latnt_dim;"):
        ModelSpec().evolve(latnt_dim=3)


def test_evolve_validates_the_new_values() -> None:
    with pytest.raises(SpecError, match="'seed' = -1"):
        ModelSpec().evolve(seed=-1)


# Groups and flat names.


def test_every_field_lives_in_exactly_one_group_under_its_flat_name() -> None:
    names = [a.name for a in FIELDS]
    assert len(names) == len(set(names)) == len(FIELD_GROUPS)
    for group, cls in SPEC_GROUPS.items():
        assert all(FIELD_GROUPS[a.name] == group for a in attrs.fields(cls))
    spec = preset("mixture_k10", seed=5)
    for name, value in spec.to_fields().items():
        assert getattr(getattr(spec, FIELD_GROUPS[name]), name) == value


def test_flat_fields_round_trip_and_fix_equality_and_hash() -> None:
    spec = preset("vamp_k10", input_shape=(12,), num_classes=3, learning_rate=0.02, seed=9)
    again = ModelSpec.from_fields(**spec.to_fields())
    assert again == spec and hash(again) == hash(spec)
    assert spec.evolve(seed=10) != spec
    assert ModelSpec.from_fields().to_fields() == ModelSpec().to_fields()


def test_evolve_across_groups_keeps_the_other_groups_and_checks_across_them() -> None:
    spec = ModelSpec().evolve(learning_rate=0.02, latent_dim=3, ood_signal="classifier")
    assert spec.optimiser.learning_rate == 0.02 and spec.network.latent_dim == 3
    assert spec.scoring.ood_signal == "classifier"
    assert (spec.objective, spec.training) == (ModelSpec().objective, ModelSpec().training)
    with pytest.raises(SpecError, match=r"'num_components' = 1 .*'mixture'"):
        spec.evolve(prior="mixture")


def test_from_fields_names_unknown_fields_and_groups_are_not_fields() -> None:
    with pytest.raises(SpecError, match=r"unknown model spec field\(s\): network, optimizr;"):
        ModelSpec.from_fields(optimizr="adam", network={})
    with pytest.raises(SpecError, match="model spec group 'training' = 3 is invalid"):
        ModelSpec(training=3)  # type: ignore[arg-type]
