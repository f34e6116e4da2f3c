"""Hostile configuration: alias bombs, deep nesting and huge numbers in spec files, experiment
files, `--set` and the dashboard's spec upload. Each is refused with one line, cheaply.

Memory is measured with tracemalloc: the bomb below stands for 9**9 (387 million) strings, so
anything that expanded it would allocate gigabytes, where a refusal needs a few kilobytes.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ssvae.adapters.yaml.experiment import YamlExperimentReader
from ssvae.adapters.yaml.loader import MAX_NESTING, MAX_NUMBER_LENGTH, MAX_VALUES
from ssvae.adapters.yaml.spec import load_spec, parse_assignments, spec_from_yaml
from ssvae.application.bootstrap import bootstrap
from ssvae.application.experiments import ExperimentResolver
from ssvae.application.settings import AppSettings
from ssvae.domain.echo import ECHO_LENGTH, short_repr
from ssvae.domain.errors import SpecError, SsvaeError
from ssvae.domain.spec import MAX_INT, ModelSpec, preset
from ssvae.entrypoints.cli.main import main
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub

PEAK_BYTES = 4 * 2**20  # a refusal costs kilobytes; expanding the bomb costs gigabytes


def _bomb_list() -> str:
    """Billion laughs as one flow list: anchor a holds 9 strings, each next anchor 9 aliases of
    the one before, so that the last stands for 9**9 (387 million) strings."""
    parts = ["&a [" + ",".join(["lol"] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        parts.append(f"&{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "[" + ",".join(parts) + "]"


def _bomb_mapping(key: str) -> str:
    """The same, one anchor per line (keys a to i), the last under `key`."""
    lines = ["a: &a [" + ",".join(["lol"] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    lines.append(f"{key}: *i")
    return "\n".join(lines) + "\n"


BOMB_SPEC = f"hidden_sizes: {_bomb_list()}\n"  # 9 items: too many, so the spec echoes it
DEEP = 5000


def _peak(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """What `call` raised (None if nothing) and the peak of memory it allocated."""
    tracemalloc.start()
    try:
        call()
    except Exception as error:  # the caller asserts which kind
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def _one_line(error: BaseException | None, kind: type[Exception] = SsvaeError) -> str:
    assert isinstance(error, kind), repr(error)
    message = str(error)
    assert "\n" not in message and len(message) < 500
    return message


# -- the bomb ------------------------------------------------------------------------------------


def test_the_bomb_is_a_few_hundred_bytes() -> None:
    assert len(BOMB_SPEC.encode()) < 400


def test_a_spec_file_alias_bomb_is_refused_with_its_line_in_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(BOMB_SPEC, encoding="utf-8")
    error, peak = _peak(lambda: load_spec(path))
    message = _one_line(error, SpecError)
    assert message.startswith(f"{path}:")
    assert f"more than {MAX_VALUES:,} values" in message
    assert peak < PEAK_BYTES
    assert path.read_text(encoding="utf-8") == BOMB_SPEC  # the user's file is untouched


def test_an_alias_bomb_in_experiment_overrides_is_refused(tmp_path: Path) -> None:
    text = f"models: [standard]\noverrides:\n  hidden_sizes: {_bomb_list()}\n"
    path = tmp_path / "experiment.yaml"
    path.write_text(text, encoding="utf-8")
    error, peak = _peak(lambda: ExperimentResolver(YamlExperimentReader()).resolve(path, {}))
    message = _one_line(error)
    assert message.startswith(f"{path}:") and "values" in message
    assert peak < PEAK_BYTES


def test_compare_config_with_an_alias_bomb_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text("overrides:\n  latent_dim: " + _bomb_list() + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result, peak = _cli_peak(["compare", "--config", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "more than" in result.output
    assert "Traceback" not in result.output and not out.exists()
    assert peak < PEAK_BYTES


@pytest.mark.parametrize("command", ["init", "compare"])
def test_set_with_an_alias_bomb_exits_non_zero_with_one_line(tmp_path: Path, command: str) -> None:
    where = ["--artifacts", str(tmp_path)] if command == "init" else ["--out", str(tmp_path)]
    result, peak = _cli_peak([command, "--set", f"hidden_sizes={_bomb_list()}", *where])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "--set hidden_sizes" in result.output
    assert "more than" in result.output
    assert peak < PEAK_BYTES
    assert list(tmp_path.iterdir()) == []


def test_the_dashboard_refuses_an_uploaded_bomb_and_creates_nothing(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    hub = DashboardHub(AppSettings(artifacts_dir=artifacts), bootstrap)
    error, peak = _peak(lambda: hub.create_from_yaml("standard", BOMB_SPEC, "bomb.yaml", "b"))
    message = _one_line(error, SpecError)
    assert message.startswith("bomb.yaml:")
    assert peak < PEAK_BYTES
    assert not (artifacts / "models" / "b").exists()


def test_the_bomb_under_unknown_keys_is_refused_too() -> None:
    error, peak = _peak(lambda: spec_from_yaml(_bomb_mapping("hidden_sizes"), "s.yaml"))
    assert f"more than {MAX_VALUES:,} values" in _one_line(error, SpecError)
    assert peak < PEAK_BYTES


def test_aliases_within_the_limit_still_work() -> None:
    text = "hidden_sizes: &h [64, 32]\nconv_channels: *h\n"
    spec = spec_from_yaml(text)
    assert spec.network.hidden_sizes == spec.network.conv_channels == (64, 32)


def test_a_value_that_contains_itself_is_refused() -> None:
    with pytest.raises(SpecError, match=r"^s\.yaml:1: .*contains itself"):
        spec_from_yaml("hidden_sizes: &a [1, *a]\n", "s.yaml")


def test_a_chain_of_aliases_deeper_than_the_limit_is_refused() -> None:
    # Every line nests 2 levels, but each alias adds the level of the node it names.
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_NESTING + 2)]
    with pytest.raises(SpecError, match=f"more than {MAX_NESTING} levels"):
        spec_from_yaml("\n".join(lines) + "\n")


# -- deep nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hidden_sizes: " + "[" * DEEP + "]" * DEEP + "\n",
        "hidden_sizes: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n",
        "hidden_sizes:\n" + "".join("  " * (i + 1) + "-\n" for i in range(300)),
        "hidden_sizes:\n" + "- " * DEEP + "1\n",
    ],
    ids=["flow lists", "flow mappings", "block lists", "compact block lists"],
)
def test_deep_nesting_in_a_spec_file_is_one_line(text: str) -> None:
    error, peak = _peak(lambda: spec_from_yaml(text, "deep.yaml"))
    message = _one_line(error, SpecError)
    assert message.startswith("deep.yaml:") and f"more than {MAX_NESTING} levels" in message
    assert peak < PEAK_BYTES


def test_deep_nesting_in_set_is_one_line(tmp_path: Path) -> None:
    deep = "hidden_sizes=" + "[" * DEEP + "]" * DEEP
    with pytest.raises(SsvaeError, match=f"^--set hidden_sizes=...: .*{MAX_NESTING} levels"):
        parse_assignments([deep])
    result = CliRunner().invoke(main, ["init", "--set", deep, "--artifacts", str(tmp_path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "levels deep" in result.output


# -- huge numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["9" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0" + "7" * 5000, "1:" * 400 + "1.5"],
    ids=["decimal", "negative", "hex", "octal", "base 60 float"],
)
def test_a_huge_number_in_a_spec_file_is_one_line(number: str) -> None:
    error, _ = _peak(lambda: spec_from_yaml(f"seed: {number}\n", "big.yaml"))
    message = _one_line(error, SpecError)
    assert message.startswith("big.yaml:1: the number")
    assert f"at most {MAX_NUMBER_LENGTH}" in message


@pytest.mark.parametrize("command", ["init", "compare", "simulate"])
def test_a_huge_number_in_set_exits_non_zero_with_one_line(tmp_path: Path, command: str) -> None:
    where = ["--out", str(tmp_path)] if command == "compare" else ["--artifacts", str(tmp_path)]
    result = CliRunner().invoke(main, [command, "--set", "seed=" + "9" * 5000, *where])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "--set seed=...: the number" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", MAX_INT + 1), ("seed", 10**5000), ("latent_dim", -(10**5000))],
    ids=["seed 2**63", "seed 5001 digits", "latent_dim -5001 digits"],
)
def test_integers_beyond_64_bits_are_refused_by_the_spec(field: str, value: int) -> None:
    with pytest.raises(SpecError) as caught:
        preset("standard", **{field: value})
    assert f"'{field}'" in str(caught.value)
    assert len(str(caught.value)) < 300


def test_an_integer_beyond_the_largest_float_is_refused_where_a_number_is_expected() -> None:
    with pytest.raises(SpecError, match="'learning_rate' = <an integer of about 401 digits>"):
        ModelSpec.from_fields(learning_rate=10**400)


@pytest.mark.parametrize(
    "text",
    [
        "seed: 2001-13-01\n",
        "seed: !!int ''\n",
        "seed: !!float ''\n",
        "seed: !!timestamp x\n",
        "seed: 1\x00\n",
        "!!set {seed}\n",
        "seed: !!omap [a: 1]\n",
        "seed: !!" + "t" * 5000 + " 1\n",
    ],
    ids=["impossible date", "empty int", "empty float", "not a time", "NUL", "set", "omap", "tag"],
)
def test_a_scalar_that_does_not_convert_is_a_located_yaml_error(text: str) -> None:
    error, _ = _peak(lambda: spec_from_yaml(text, "odd.yaml"))
    assert _one_line(error, SpecError).startswith("odd.yaml")


def test_an_experiment_echoes_a_long_model_name_short(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text("models: [" + "x" * 5000 + "]\n", encoding="utf-8")
    error, _ = _peak(lambda: ExperimentResolver(YamlExperimentReader()).resolve(path, {}))
    assert "unknown model preset" in _one_line(error)


def test_a_list_as_a_key_is_refused_with_its_line() -> None:
    with pytest.raises(SpecError, match=r"^k\.yaml:2: a key is a list or mapping"):
        spec_from_yaml("seed: 1\n? [a, b]\n: 2\n", "k.yaml")


# -- echoed values -------------------------------------------------------------------------------


def _shared_bomb(levels: int = 12, width: int = 9) -> list[Any]:
    value: list[Any] = ["lol"] * width
    for _ in range(levels):
        value = [value] * width
    return value


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


@pytest.mark.parametrize(
    "value",
    [
        _shared_bomb(),
        _deep_list(100_000),
        _cycle(),
        10**5000,
        -(10**5000),
        "x" * 10**6,
        b"y" * 10**6,
        {i: [i] * 10 for i in range(10_000)},
    ],
    ids=["bomb", "deep", "cycle", "huge int", "huge negative", "long text", "bytes", "dict"],
)
def test_short_repr_is_short_whatever_the_value(value: Any) -> None:
    error, peak = _peak(lambda: short_repr(value))
    assert error is None
    shown = short_repr(value)
    assert 0 < len(shown) <= ECHO_LENGTH and "\n" not in shown
    assert peak < PEAK_BYTES


def test_short_repr_keeps_small_values_exact() -> None:
    for value in (3, -7.5, "relu", (28, 28, 1), [64, 32], None, True, {"a": 1}):
        assert short_repr(value) == repr(value)


def test_a_bomb_given_to_the_spec_in_code_is_echoed_short() -> None:
    error, peak = _peak(lambda: ModelSpec.from_fields(hidden_sizes=_shared_bomb()[:2]))
    message = _one_line(error, SpecError)
    assert message.startswith("model spec field 'hidden_sizes' = ([[")
    assert peak < PEAK_BYTES


# -- helpers -------------------------------------------------------------------------------------


def _cli_peak(args: list[str]) -> tuple[Any, int]:
    results: list[Any] = []
    _, peak = _peak(lambda: results.append(CliRunner().invoke(main, args)))
    return results[0], peak


@pytest.fixture(autouse=True)
def _no_tracemalloc_left() -> Iterator[None]:
    yield
    assert not tracemalloc.is_tracing()


@pytest.mark.parametrize("flag", ["--input", "--test-input", "--vectors"])
def test_a_path_too_long_for_the_file_system_is_one_line(tmp_path: Path, flag: str) -> None:
    long_path = str(tmp_path / ("a" * 300 + ".csv"))
    args = ["data", "describe", flag, long_path]
    if flag == "--test-input":
        (tmp_path / "m.csv").write_text("id,text\n1,a\n", encoding="utf-8")
        args = [*args, "--input", str(tmp_path / "m.csv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "cannot be opened (File name too long)" in result.output and flag in result.output
