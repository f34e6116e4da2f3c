"""A text workspace keeps its fitted tfidf and scaling: reopened, it embeds identically."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from reference_data import LOGHUB_MESSAGES

from ssvae.adapters.data.text_source import (
    SCALING_FILE,
    TFIDF_FILE,
    TextDataSource,
    TextSourceSettings,
)
from ssvae.adapters.text.tfidf import TfidfEmbedder
from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings
from ssvae.application.workspace import dataset_settings_of, workspace_settings
from ssvae.domain.errors import DataError


def _small_csv(path: Path, every: int = 50) -> Path:
    """Every `every`-th Loghub message (400 of 20,000, 40 per system)."""
    with LOGHUB_MESSAGES.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::every]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "text", "system", "event_id"])
        writer.writeheader()
        writer.writerows(
            {"id": r["id"], "text": r["text"], "system": r["system"], "event_id": r["event_id"]}
            for r in rows
        )
    return path


def test_a_reopened_workspace_embeds_from_its_own_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DataSettings(
        kind="text",
        name="small",
        train_path=_small_csv(tmp_path / "small.csv"),
        label_column="system",
        embedder_dim=16,
        scaling="standardise",
        cache_dir=tmp_path / "cache",
    )
    artifacts = tmp_path / "artifacts"
    app = bootstrap(AppSettings(data=settings, artifacts_dir=artifacts))
    workspace = app.workspace_service().init("text_standard", settings, "w1")
    state = workspace.directory / "embedder"
    assert (state / TFIDF_FILE).is_file() and (state / SCALING_FILE).is_file()
    assert workspace.metadata.dataset["state_dir"] == "embedder"
    assert workspace.spec.network.input_shape == (16,) and workspace.spec.network.num_classes == 10
    before = app.data_source().load("train")
    before_test = app.data_source().load("test")

    # Without the cache and with refitting forbidden, the workspace's own files give the vectors.
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setattr(TfidfEmbedder, "fit", lambda *_: pytest.fail("refitted the tfidf"))
    opened = bootstrap(AppSettings(artifacts_dir=artifacts)).workspace_service().open("w1")
    assert dataset_settings_of(opened).state_dir == state
    again = bootstrap(workspace_settings(opened, artifacts)).data_source()
    after = again.load("train")
    np.testing.assert_array_equal(after.serials, before.serials)
    np.testing.assert_array_equal(after.x, before.x)
    np.testing.assert_array_equal(again.load("test").x, before_test.x)
    assert again.texts("train", after.serials[:2]) == app.data_source().texts(
        "train", before.serials[:2]
    )


def test_a_saved_model_of_another_width_is_refused(tmp_path: Path) -> None:
    path = _small_csv(tmp_path / "small.csv")
    first = TextDataSource(
        TextSourceSettings(train_path=path, label_column="system", embedder_dim=16)
    )
    first.save_state(tmp_path / "state")
    other = TextDataSource(
        TextSourceSettings(
            train_path=path, label_column="system", embedder_dim=24, state_dir=tmp_path / "state"
        )
    )
    with pytest.raises(DataError, match="gives 16-D vectors but the dataset settings ask for 24"):
        other.load("train")
