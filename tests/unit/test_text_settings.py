"""Text dataset settings: CLI options to DataSettings, validation, and the workspace record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ssvae.application.settings import DataSettings, SettingsError
from ssvae.application.workspace import dataset_settings_record
from ssvae.entrypoints.cli.options import DATA_OPTION_NAMES, TEXT_OPTION_NAMES, data_settings


def _options(**given: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(DATA_OPTION_NAMES)
    values.update(dataset="mnist", download=False)
    values.update(given)
    return values


def test_loghub_options_become_text_settings() -> None:
    settings = data_settings(_options(dataset="loghub", task="event", embedder_dim=64))
    assert (settings.kind, settings.name, settings.task) == ("text", "loghub", "event")
    assert settings.embedder_dim == 64 and settings.train_path is None
    assert (settings.embedder, settings.scaling, settings.test_fraction) == ("tfidf", "l2", 0.2)


def test_an_input_file_becomes_a_text_dataset_named_after_it(tmp_path: Path) -> None:
    for name in ("alerts.jsonl", "test.jsonl"):
        (tmp_path / name).write_text("")
    settings = data_settings(
        _options(
            input=tmp_path / "alerts.jsonl",
            test_input=tmp_path / "test.jsonl",
            label_column="kind",
            text_column="body",
            embedder="minilm",
            embedder_folder=tmp_path / "model",
            scaling="standardise",
            classes="a,b",
        )
    )
    assert (settings.kind, settings.name) == ("text", "alerts")
    assert settings.train_path == tmp_path / "alerts.jsonl"
    assert settings.test_path == tmp_path / "test.jsonl"
    assert (settings.label_column, settings.text_column) == ("kind", "body")
    assert settings.classes == ("a", "b") and settings.embedder_folder == tmp_path / "model"


def test_vectors_keep_their_column_names(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    settings = data_settings(_options(vectors=tmp_path / "e.csv", vector_column="emb"))
    assert (settings.kind, settings.vector_column) == ("vectors", "emb")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"dataset": "loghub"}, "needs a task: --task system or --task event"),
        ({"dataset": "text"}, "--dataset text needs --input FILE"),
        ({"task": "system"}, "--task is for --dataset loghub"),
        ({"dataset": "loghub", "task": "system", "label_column": "x"}, "fixed columns"),
        (
            {"dataset": "loghub", "task": "system", "embedder": "minilm"},
            "minilm embedder needs a local sentence-transformers folder.*--embedder-folder",
        ),
    ],
)
def test_senseless_combinations_fail_in_one_line(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        data_settings(_options(**given))


@pytest.mark.parametrize("option", ["input", "test_input", "vectors"])
def test_a_missing_file_is_named_with_its_option(tmp_path: Path, option: str) -> None:
    present = tmp_path / "present.csv"
    present.write_text("id,text\n")
    given = {"input": present} if option == "test_input" else {}
    missing = tmp_path / "missing.csv"
    flag = "--" + option.replace("_", "-")
    with pytest.raises(SettingsError, match=f"missing.csv: file not found; check the {flag} path"):
        data_settings(_options(**given, **{option: missing}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["present.csv"]  # nothing written


def test_settings_validate_text_fields() -> None:
    with pytest.raises(SettingsError, match="'scaling' = 'zscore'"):
        DataSettings(kind="text", name="loghub", task="system", scaling="zscore")
    with pytest.raises(SettingsError, match=r"'test_fraction' = 1.*\[0, 1\)"):
        DataSettings(kind="text", name="loghub", task="system", test_fraction=1)
    with pytest.raises(SettingsError, match="--input FILE"):
        DataSettings(kind="text", name="notes")
    with pytest.raises(SettingsError, match="--label-column"):
        DataSettings(kind="text", name="notes", train_path="n.csv", task="system")


def test_the_workspace_record_gives_every_setting_back(tmp_path: Path) -> None:
    settings = DataSettings(
        kind="text",
        name="alerts",
        train_path=tmp_path / "a.csv",
        label_column="kind",
        embedder_dim=32,
        scaling="none",
        classes=("x", "y"),
        split_seed=4,
        min_class_size=3,
        cache_dir=tmp_path / "cache",
    )
    record = dataset_settings_record(settings)
    assert record["classes"] == ["x", "y"] and record["train_path"] == str(tmp_path / "a.csv")
    assert DataSettings(**record) == settings
    assert set(TEXT_OPTION_NAMES) - {"input", "test_input"} <= set(record)
