"""The active-learning commands in process, on fakes: option parsing, output, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import InMemoryDataSource, InMemoryLearningCurveWriter, InMemoryModelRepository

import ssvae.application.bootstrap as bootstrap_module
from ssvae.application.query import QUERY_POLICIES
from ssvae.domain.labels import ClassVocabulary
from ssvae.entrypoints.cli.main import main
from ssvae.entrypoints.cli.workspace import query

VOCAB = ClassVocabulary(("ok", "warning", "error"))


def _source() -> InMemoryDataSource:
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = (np.eye(3, 4)[y] * 5 + rng.normal(size=(300, 4))).astype(np.float32)
    return InMemoryDataSource(VOCAB, x, y.astype(np.int64), x[:60], y[:60].astype(np.int64))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Every container the commands build reads the fake data and trains fake models."""
    real = bootstrap_module.bootstrap
    shared: dict[str, Any] = {
        "source": _source(),
        "repository": InMemoryModelRepository(),
        "writer": InMemoryLearningCurveWriter(),
    }

    def bootstrap(settings: Any = None) -> Any:
        app = real(settings)
        app.data_source.override(shared["source"])
        app.model_repository.override(shared["repository"])
        app.learning_curve_writer.override(shared["writer"])
        return app

    monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)
    yield shared


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_policies_query_offers_are_the_ones_the_service_serves() -> None:
    policy = next(param for param in query.params if param.name == "policy")
    assert tuple(policy.type.choices) == QUERY_POLICIES


def test_simulate_takes_several_policies_and_seeds_as_written(
    fakes: dict[str, Any], tmp_path: Path
) -> None:
    result = _invoke(
        "simulate",
        "--policies",
        "margin",
        "random",
        "--seeds",
        "0",
        "1",
        "2",
        "--initial-labels",
        "6",
        "--rounds",
        "2",
        "--k",
        "3",
        "--epochs-per-round",
        "1",
        "--num-samples",
        "90",
        "--num-test",
        "30",
        "--preset",
        "mixture_k5",
        "--budget",
        "12",
        "--artifacts",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    [simulation] = fakes["writer"].results
    settings = simulation.settings
    assert settings.policies == ("margin", "random") and settings.seeds == (0, 1, 2)
    assert (settings.initial_labels, settings.rounds, settings.k) == (6, 2, 3)
    assert settings.stopping.budget == 12 and settings.out == str(tmp_path / "experiments")
    assert len(simulation.runs) == 6
    assert "margin: AULC" in result.output and "random: AULC" in result.output
    # The budget of 12 labels is met in the last round of every run, and reported.
    assert all("label budget reached" in r.rounds[-1].stop_reasons[0] for r in simulation.runs)
    assert "met: label budget" in result.output


def test_simulate_accepts_commas_and_refuses_an_empty_list(fakes: dict[str, Any]) -> None:
    result = _invoke("simulate", "--policies", "margin,entropy", "--seeds", "4", "--rounds", "0")
    assert result.exit_code == 0, result.output
    assert fakes["writer"].results[0].settings.policies == ("margin", "entropy")
    empty = CliRunner().invoke(main, ["simulate", "--policies", "--seeds", "1"])
    assert empty.exit_code == 2 and "--policies needs at least one value" in empty.output
    bad = CliRunner().invoke(main, ["simulate", "--seeds", "x"])
    assert bad.exit_code == 2 and "not a seed" in bad.output


def test_init_label_train_query_on_one_workspace(fakes: dict[str, Any], tmp_path: Path) -> None:
    created = _invoke(
        "init", "--preset", "mixture_k5", "--id", "demo", "--num-samples", "40",
        "--artifacts", str(tmp_path), "--set", "latent_dim=2", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    directory = Path(json.loads(created.output)["directory"])
    assert directory == tmp_path / "models" / "demo"
    assert "latent_dim: 2" in (directory / "spec.yaml").read_text()

    first = json.loads(_invoke("query", "--model", str(directory), "--policy", "kcenter",
                               "--k", "4", "--json").output)  # fmt: skip
    serials = [row["serial"] for row in first["rows"]]
    assert len(set(serials)) == 4 and first["trained"] is False and first["rounds"] == 0

    labelled = _invoke("label", "--model", str(directory), "set", *map(str, serials[:2]),
                       "--class", "warning")  # fmt: skip
    assert labelled.exit_code == 0 and "2 labels in all" in labelled.output
    trained = _invoke("train", "--model", str(directory), "--epochs", "2")
    assert trained.exit_code == 0, trained.output
    assert "round 1: trained 2 epoch(s) on 2 labels" in trained.output
    assert "no stopping criterion met" in trained.output
    assert (directory / "history.csv").read_text().count("\n") == 2

    answer = _invoke("query", "--model", str(directory), "--policy", "margin", "--k", "5",
                     "--json", "--kappa-window", "1")  # fmt: skip
    document = json.loads(answer.output)
    assert document["trained"] is True and document["labels"] == 2 and document["rounds"] == 1
    assert not set(serials[:2]) & {row["serial"] for row in document["rows"]}
    assert {row["predicted"] for row in document["rows"]} <= set(VOCAB.names)
    assert set(document["stopping"]) == {"stop", "reasons", "kappa", "tau_change"}

    text = _invoke("query", "--model", str(directory), "--k", "3")
    assert text.output.splitlines()[0].split() == ["serial", "score", "predicted"]
    assert "stopping after 1 round(s)" in text.output


def test_label_model_refuses_options_it_would_ignore(fakes: dict[str, Any], tmp_path: Path) -> None:
    _invoke("init", "--id", "w", "--artifacts", str(tmp_path))
    model = str(tmp_path / "models" / "w")
    result = CliRunner().invoke(main, ["label", "--model", model, "--labels", "x.csv", "show"])
    assert result.exit_code == 2 and "drop --labels" in result.output
    outside = CliRunner().invoke(main, ["label", "--model", model, "set", "9999", "--class", "ok"])
    assert outside.exit_code == 1 and "9999" in outside.output


def test_user_errors_are_one_line(fakes: dict[str, Any], tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["query", "--model", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert missing.output.startswith("error: model workspace") and "ssvae init" in missing.output
    bad_id = CliRunner().invoke(main, ["init", "--id", "../x", "--artifacts", str(tmp_path)])
    assert bad_id.exit_code == 1 and "1 to 64 letters" in bad_id.output
    unknown = CliRunner().invoke(main, ["init", "--set", "colour=1", "--artifacts", str(tmp_path)])
    assert unknown.exit_code == 1 and "colour" in unknown.output


@pytest.mark.parametrize("command", ["init", "simulate", "compare"])
def test_a_set_without_a_value_is_the_same_one_line_error_in_every_command(
    fakes: dict[str, Any], tmp_path: Path, command: str
) -> None:
    """--set is read by one parser: init, simulate and compare refuse `--set nonsense` alike,
    before any data is read."""
    where = ["--out", str(tmp_path)] if command == "compare" else ["--artifacts", str(tmp_path)]
    result = CliRunner().invoke(main, [command, "--set", "nonsense", *where])
    assert result.exit_code == 1
    assert result.output == (
        "error: --set 'nonsense' is invalid: write KEY=VALUE, e.g. --set batch_size=64\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_simulate_defaults_to_a_text_preset_on_text_data(
    fakes: dict[str, Any], tmp_path: Path
) -> None:
    small = ("--rounds", "0", "--num-samples", "90", "--num-test", "30", "--initial-epochs", "0")
    artifacts = ("--artifacts", str(tmp_path))
    text = _invoke("simulate", "--dataset", "loghub", "--task", "system", *small, *artifacts)
    assert text.exit_code == 0, text.output
    images = _invoke("simulate", *small, *artifacts)
    assert images.exit_code == 0, images.output
    presets = [s.settings.preset for s in fakes["writer"].results]
    assert presets == ["text_mixture_k20", "mixture_k10"]
