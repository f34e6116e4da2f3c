"""Hypothesis fuzzing of the configuration readers: spec YAML, experiment YAML and `--set`.

The property of every reader: a valid value or an SsvaeError of one line; never another
exception, and memory bounded whatever the text (aliases, nesting and numbers included).
Inputs are random text and near-valid documents: real keys with values of every YAML kind,
then mutated with aliases, tags, deep brackets, long numbers and stray characters.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ssvae.adapters.yaml.experiment import TOP_KEYS, YamlExperimentReader
from ssvae.adapters.yaml.spec import known_keys, parse_assignments, spec_from_yaml
from ssvae.application.experiments import ExperimentResolver
from ssvae.domain.comparison import Experiment
from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec

PEAK_BYTES = 8 * 2**20  # inputs are at most a few KB; a naive reader of a bomb needs GBs
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Pieces of YAML that have broken readers: aliases, merge keys, tags, deep brackets, numbers
# beyond int()'s digit limit, base-60 numbers, impossible dates, control characters.
SCALARS = st.sampled_from(
    [
        "1", "-3", "0.5", "1e-3", "1e999", ".nan", ".inf", "0x1F", "017", "1:30", "1_000",
        "true", "no", "~", "null", "relu", "mixture_k10", "'quoted'", '"esc\\u0041"', "",
        "2001-12-14", "2001-13-45", "!!int ''", "!!float x", "!!binary aGk=", "!!set {a}",
        "!!python/object:os.system x", "!!timestamp 9999-99-99", "!!timestamp :", "[]", "{}",
        "[1, 2, 3]",
        "9" * 5000, "0x" + "f" * 3000, "1:" * 200 + "1", "[" * 500 + "]" * 500,
        "{a: " * 200 + "1" + "}" * 200, "\x00", "\t", "\ud7ff", "&a [1, *a]", "*undefined",
    ]
)  # fmt: skip
BOMB_NAMES = list(zip("abcdefgh", "bcdefghi", strict=True))  # each anchor names the previous
BOMB_LINES = [f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in BOMB_NAMES]
BOMB = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "\n".join(BOMB_LINES) + "\n"
FLOW_BOMB = "[" + ", ".join(line.split(": ", 1)[1] for line in BOMB.splitlines()) + "]"


def _values(keys: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Near-valid documents: real keys (and some typos) with values of every kind."""
    key = st.one_of(st.sampled_from(keys), st.sampled_from(keys).map(lambda k: k + "x"))
    line = st.tuples(key, SCALARS).map(lambda pair: f"{pair[0]}: {pair[1]}")
    return st.lists(line, max_size=8).map(lambda lines: "\n".join(lines) + "\n")


def _mutated(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A document with a fragment spliced in at a random place."""
    fragments = st.one_of(SCALARS, st.sampled_from([BOMB, "<<: *a\n", "- ", ":", "\n  ", "&x "]))
    return st.tuples(base, fragments, st.integers(0, 10**6)).map(
        lambda t: t[0][: t[2] % (len(t[0]) + 1)] + t[1] + t[0][t[2] % (len(t[0]) + 1) :]
    )


def _check(read: Callable[[], Any], valid: type) -> None:
    """`read()` returns a `valid` value or raises one SsvaeError line, within PEAK_BYTES."""
    tracemalloc.start()
    try:
        value = read()
    except SsvaeError as error:
        message = str(error)
        assert message and "\n" not in message and len(message) < 2000, message
    else:
        assert isinstance(value, valid)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_BYTES, peak


SPEC_TEXT = st.one_of(
    st.text(max_size=300),
    _values(known_keys()),
    _mutated(_values(known_keys())),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
)
EXPERIMENT_TEXT = st.one_of(
    st.text(max_size=300),
    _values(TOP_KEYS),
    _mutated(_values(TOP_KEYS)),
    _mutated(st.just("models:\n  - standard\n  - preset: mixture_k10\n    latent_dim: 2\n")),
    _mutated(st.just("overrides:\n  batch_size: 64\nepochs: 2\nseed: 1\n")),
)


@FUZZ
@given(SPEC_TEXT)
@example(BOMB + "hidden_sizes: *i\n")
@example("seed: " + "9" * 5000)
@example("!!set {0}")
@example("hidden_sizes: " + "[" * 5000 + "]" * 5000)
def test_spec_yaml_gives_a_spec_or_one_line(text: str) -> None:
    _check(lambda: spec_from_yaml(text, "spec.yaml"), ModelSpec)


@FUZZ
@given(EXPERIMENT_TEXT)
@example("overrides:\n  " + BOMB.replace("\n", "\n  ") + "latent_dim: *i\n")
@example("models:\n" + "  - " * 3000 + "x\n")
@example("overrides: !!set {seed}\n")
@example("models: [" + "9" * 3000 + "]\n")
def test_experiment_yaml_gives_an_experiment_or_one_line(text: str) -> None:
    def read() -> Experiment:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "experiment.yaml"
            path.write_text(text, encoding="utf-8")
            return ExperimentResolver(YamlExperimentReader()).resolve(path, {})

    _check(read, Experiment)


ASSIGNMENT = st.one_of(
    st.text(max_size=100),
    st.tuples(st.sampled_from(known_keys()), SCALARS).map(lambda p: f"{p[0]}={p[1]}"),
    st.tuples(st.sampled_from(known_keys()), st.text(max_size=50)).map(lambda p: f"{p[0]}={p[1]}"),
)


@FUZZ
@given(st.lists(ASSIGNMENT, max_size=4))
@example(["hidden_sizes=" + "[" * 5000])
@example(["hidden_sizes=" + FLOW_BOMB])
def test_set_assignments_give_a_mapping_or_one_line(texts: list[str]) -> None:
    _check(lambda: parse_assignments(texts), dict)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(ModelSpec.field_names()), SCALARS), max_size=4))
def test_set_assignments_then_the_spec_give_a_spec_or_one_line(
    pairs: list[tuple[str, str]],
) -> None:
    def read() -> ModelSpec:
        return ModelSpec().evolve(**parse_assignments([f"{k}={v}" for k, v in pairs]))

    _check(read, ModelSpec)
