"""YAML model specs: round trips, and errors that name the file, the line and the key.

Pure in-memory text apart from the tmp_path file round trip, so it lives with the unit tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ssvae.domain.spec as spec_module
from ssvae.adapters.yaml.spec import (
    PRESET_KEY,
    known_keys,
    load_spec,
    parse_spec_yaml,
    save_spec,
    spec_from_mapping,
    spec_from_yaml,
    spec_to_yaml,
)
from ssvae.domain.errors import SpecError
from ssvae.domain.spec import FIELD_GROUPS, PRESETS, SPEC_GROUPS, ModelSpec, preset

FIELDS = tuple(a for group in SPEC_GROUPS.values() for a in attrs.fields(group))
DATA = Path(__file__).parent.parent / "data"

# Every option the spec module declares (tuples of strings such as ACTIVATIONS): a string field
# draws from those its validator accepts, so a new option list needs no change here.
ALL_OPTIONS = sorted(
    {
        option
        for value in vars(spec_module).values()
        if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)
        for option in value
    }
)

# Candidate ranges for numbers: a field draws from those its validator accepts throughout (its
# ends and middle probed), so new fields need no entry unless their range fits none of these.
FLOAT_RANGES = [(0.0, 1.0), (0.0, 0.9), (-20.0, 10.0), (0.0, 10.0), (1e-4, 1e4), (0.0, 1e6)]
CANDIDATES_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.booleans(),
    "tuple[int, ...]": st.lists(st.integers(1, 64), min_size=1, max_size=3).map(tuple),
}


def _accepts(attribute: attrs.Attribute[Any], value: Any) -> bool:
    """Whether the field's own converter and validator accept `value` (cross-field rules aside)."""
    converted = attribute.converter(value) if callable(attribute.converter) else value
    try:
        if attribute.validator is not None:
            attribute.validator(None, attribute, converted)
    except SpecError:
        return False
    return True


def _field_type(attribute: attrs.Attribute[Any]) -> str:
    """The annotation as written ('int', 'tuple[int, ...]'), a string or a resolved type."""
    kind = attribute.type
    if isinstance(kind, str):
        return kind
    return kind.__name__ if isinstance(kind, type) else repr(kind)


def _valid_values(attribute: attrs.Attribute[Any]) -> st.SearchStrategy[Any]:
    if _field_type(attribute) == "str":
        options = [o for o in ALL_OPTIONS if _accepts(attribute, o)]
        assert options, f"no known option is valid for field {attribute.name}"
        return st.sampled_from(options)
    if _field_type(attribute) == "float":
        return _valid_floats(attribute)
    if _field_type(attribute) == "int":
        return _valid_ints(attribute)
    candidates = CANDIDATES_BY_TYPE[_field_type(attribute)]
    return candidates.filter(lambda value: _accepts(attribute, value))


def _valid_ints(attribute: attrs.Attribute[Any]) -> st.SearchStrategy[int]:
    lowest = next((v for v in range(-5, 50) if _accepts(attribute, v)), None)
    assert lowest is not None, f"no small integer is valid for field {attribute.name}"
    return st.integers(lowest, lowest + 40).filter(lambda value: _accepts(attribute, value))


def _valid_floats(attribute: attrs.Attribute[Any]) -> st.SearchStrategy[float]:
    ranges = []
    for low, high in FLOAT_RANGES:
        open_low = not _accepts(attribute, low)  # (0, 1] for a learning rate
        ends_valid = _accepts(attribute, high) and _accepts(attribute, (low + high) / 2)
        if ends_valid and (not open_low or _accepts(attribute, low + 1e-12)):
            ranges.append(st.floats(low, high, exclude_min=open_low))
    assert ranges, f"no candidate range is valid for field {attribute.name}: add one"
    return st.one_of(ranges).filter(lambda value: _accepts(attribute, value))


FIELD_VALUES = {a.name: _valid_values(a) for a in FIELDS}
_QUOTED = re.compile(r"'([^']*)'")


def _named_fields(message: str, values: dict[str, Any]) -> set[str]:
    """Fields a spec error quotes by name, or by their current value ('mixture' is the prior)."""
    quoted = set(_QUOTED.findall(message))
    return {name for name, value in values.items() if name in quoted or value in quoted}


@st.composite
def valid_specs(draw: st.DrawFn) -> ModelSpec:
    """Any valid spec: each field drawn from its valid values; cross-field clashes repaired.

    A clash resets the fields its message quotes to their defaults (defaults always agree), so
    no rule has to be restated here; a clash that no reset removes is discarded.
    """
    values = {name: draw(strategy) for name, strategy in FIELD_VALUES.items()}
    defaults = ModelSpec().to_fields()
    while True:
        try:
            return ModelSpec.from_fields(**values)
        except SpecError as error:
            clashing = _named_fields(str(error), values)
            repaired = {name: defaults[name] for name in clashing}
            assume(any(values[name] != repaired[name] for name in repaired))
            values.update(repaired)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_any_valid_spec_survives_a_yaml_round_trip(spec: ModelSpec) -> None:
    text = spec_to_yaml(spec)
    assert spec_from_yaml(text) == spec
    assert yaml.safe_load(text) == {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in spec.to_fields().items()
    }


def test_the_yaml_lists_the_flat_fields_in_order_under_a_comment_per_group() -> None:
    text = spec_to_yaml(ModelSpec())
    assert text.startswith("# ")
    lines = [line for line in text.splitlines() if line.strip()]
    keys = [line.split(":")[0] for line in lines if not line.startswith("#")]
    assert keys == list(ModelSpec.field_names())
    assert "hidden_sizes: [500]  # " in text
    groups = [line.removeprefix("# ") for line in lines if line.removeprefix("# ") in SPEC_GROUPS]
    assert groups == list(SPEC_GROUPS)
    following = lines[lines.index("# optimiser") + 1]
    assert FIELD_GROUPS[following.split(":")[0]] == "optimiser"


def test_a_spec_file_written_before_the_fields_were_grouped_loads_as_the_same_spec() -> None:
    """tests/data/spec_flat_v1.yaml is what a workspace's spec.yaml held when ModelSpec was one
    flat class; the flat keys must keep loading, to the spec that wrote them."""
    old = load_spec(DATA / "spec_flat_v1.yaml")
    written = preset(
        "mixture_k10",
        input_shape=(784,),
        num_classes=10,
        learning_rate=0.01,
        hidden_sizes=(256, 128),
        seed=7,
    )
    assert old == written and hash(old) == hash(written)
    assert (old.optimiser.learning_rate, old.network.hidden_sizes) == (0.01, (256, 128))
    assert yaml.safe_load(spec_to_yaml(old)) == yaml.safe_load(
        (DATA / "spec_flat_v1.yaml").read_text(encoding="utf-8")
    )


def test_known_keys_are_the_preset_key_and_every_field() -> None:
    assert known_keys() == (PRESET_KEY, *ModelSpec.field_names())


def test_missing_keys_take_defaults_and_an_empty_file_is_the_default_spec() -> None:
    assert spec_from_yaml("") == ModelSpec()
    assert spec_from_yaml("# only a comment\n") == ModelSpec()
    assert spec_from_yaml("latent_dim: 4\n") == ModelSpec.from_fields(latent_dim=4)


def test_exponents_without_a_dot_read_as_numbers() -> None:
    assert spec_from_yaml("learning_rate: 1e-3\ngaussian_sigma: 2E+1\n") == ModelSpec.from_fields(
        learning_rate=1e-3, gaussian_sigma=20.0
    )


def test_an_unknown_key_is_rejected_by_name_with_its_line_and_close_matches() -> None:
    text = "# my spec\nlatent_dim: 4\nlaten_dim: 8\n"
    with pytest.raises(SpecError) as caught:
        spec_from_yaml(text, "my.yaml")
    message = str(caught.value)
    assert message.startswith("my.yaml:3: unknown model spec key(s) 'laten_dim' (line 3;")
    assert "did you mean 'latent_dim'" in message


def test_every_unknown_key_is_listed_with_its_line() -> None:
    with pytest.raises(SpecError) as caught:
        spec_from_yaml("seed: 1\nfoo: 2\nbatchsize: 3\n", "s.yaml")
    message = str(caught.value)
    assert message.startswith("s.yaml:2: ")
    assert "'foo' (line 2)" in message
    assert "'batchsize' (line 3; did you mean 'batch_size'" in message


@pytest.mark.parametrize("name", ModelSpec.field_names())
def test_an_invalid_value_names_the_field_and_its_line(name: str) -> None:
    # A mapping is no valid value for any field; two lines come before the bad one.
    text = f"# header\n\n{name}: {{not: valid}}\n"
    with pytest.raises(SpecError) as caught:
        spec_from_yaml(text, "spec.yaml")
    message = str(caught.value)
    assert message.startswith(f"spec.yaml:3: model spec field '{name}' = {{'not': 'valid'}}")


def test_a_cross_field_error_points_at_a_key_it_names() -> None:
    text = "seed: 3\nnum_classes: 3\nenumerate_top_k: 5\n"
    with pytest.raises(SpecError, match=r"^s\.yaml:3: model spec field 'enumerate_top_k' = 5"):
        spec_from_yaml(text, "s.yaml")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 1\nhidden_sizes: [1, 2\nlatent_dim: 3\n", 3),
        ("seed: 1\nlatent_dim: 3\n  bad indent: 4\n", 3),
        ("seed: 1\nactivation: 'relu\n", 3),
        ("seed: 1\n---\nseed: 2\n", 2),
    ],
)
def test_a_syntax_error_names_the_file_and_line(text: str, line: int) -> None:
    with pytest.raises(SpecError, match=rf"^s\.yaml:{line}: invalid YAML: .*; fix the syntax$"):
        spec_from_yaml(text, "s.yaml")


def test_a_repeated_key_is_rejected_with_both_lines() -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:3: key 'seed' appears twice \(lines 1 and 3\)"):
        spec_from_yaml("seed: 1\nlatent_dim: 2\nseed: 2\n", "s.yaml")


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just text\n", "3\n"])
def test_a_spec_that_is_not_a_mapping_is_rejected(text: str) -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:1: a model spec is a mapping"):
        spec_from_yaml(text, "s.yaml")


@pytest.mark.parametrize("order", ["preset first", "preset last"])
def test_a_preset_key_starts_from_the_preset_and_other_keys_override_it(order: str) -> None:
    lines = ["preset: mixture_k10", "latent_dim: 3"]
    text = "\n".join(lines if order == "preset first" else lines[::-1])
    spec = spec_from_yaml(text)
    assert spec == preset("mixture_k10", latent_dim=3)
    assert (spec.network.prior, spec.network.num_components, spec.network.latent_dim) == (
        "mixture",
        10,
        3,
    )


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_loads_by_name(name: str) -> None:
    assert spec_from_yaml(f"preset: {name}\n") == preset(name)


def test_an_unknown_preset_is_named_with_its_line_and_the_choices() -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:2: unknown model preset 'mixture_k7'.*standard"):
        spec_from_yaml("seed: 1\npreset: mixture_k7\n", "s.yaml")


def test_an_override_that_clashes_with_the_preset_points_at_the_preset() -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:1: .*'num_components' = 10"):
        spec_from_yaml("preset: mixture_k10\nprior: standard\n", "s.yaml")


def test_a_mapping_from_flags_merges_without_lines() -> None:
    assert spec_from_mapping({"preset": "vamp_k10", "seed": 4}, "flags") == preset(
        "vamp_k10", seed=4
    )
    with pytest.raises(SpecError, match=r"^flags: model spec field 'seed' = -4"):
        spec_from_mapping({"seed": -4}, "flags")
    with pytest.raises(SpecError, match=r"^flags: unknown model spec key\(s\) 'sed'"):
        spec_from_mapping({"sed": 4}, "flags")


def test_flags_merge_over_a_parsed_file_keeping_the_file_lines() -> None:
    values, lines = parse_spec_yaml("preset: standard\nseed: 2\nlatent_dim: 0\n", "f.yaml")
    assert lines == {"preset": 1, "seed": 2, "latent_dim": 3}
    values["seed"] = 5
    del lines["seed"]
    with pytest.raises(SpecError, match=r"^f\.yaml:3: model spec field 'latent_dim' = 0"):
        spec_from_mapping(values, "f.yaml", lines)
    values["latent_dim"] = 8
    assert spec_from_mapping(values, "f.yaml", lines) == preset("standard", seed=5, latent_dim=8)


def test_save_then_load_gives_the_same_spec(tmp_path: Path) -> None:
    spec = preset("mixture_k20", hidden_sizes=(64, 32), learning_rate=3e-4, seed=11)
    path = tmp_path / "nested" / "spec.yaml"
    save_spec(spec, path)
    assert load_spec(path) == spec
    save_spec(ModelSpec(), path)  # replaces the file, leaving no temporary file behind
    assert load_spec(str(path)) == ModelSpec()
    assert [p.name for p in path.parent.iterdir()] == ["spec.yaml"]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(SpecError, match=r"absent\.yaml does not exist"):
        load_spec(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nseed_: 2\n")
    with pytest.raises(SpecError, match=rf"^{re.escape(str(bad))}:2: unknown model spec key"):
        load_spec(bad)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SpecError, match=r"cannot read model spec file .*binary\.yaml"):
        load_spec(binary)


def test_a_preset_in_yaml_fits_vector_data_but_an_explicit_shift_still_fails() -> None:
    spec = spec_from_yaml("preset: standard\ninput_shape: [384]\nnum_classes: 2\n")
    assert (
        spec.objective.augment_shift,
        spec.objective.enumerate_top_k,
        spec.objective.consistency_weight,
    ) == (0, 0, 30.0)
    assert spec.network.classifier_type == "dense"
    with pytest.raises(SpecError, match=r"^<string>:2: model spec field 'augment_shift'"):
        spec_from_yaml("input_shape: [384]\naugment_shift: 2\n")
