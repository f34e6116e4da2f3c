"""The composition root: adapters chosen by configuration, overridden by fakes in tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryDataSource, InMemoryLabelStore

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings, LabelSettings, SettingsError
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary

VOCABULARY = ClassVocabulary(("ok", "warning", "error"))


def _fake_source() -> InMemoryDataSource:
    rng = np.random.default_rng(0)
    x = rng.random((12, 4)).astype(np.float32)
    return InMemoryDataSource(VOCABULARY, x, rng.integers(0, 3, 12), x[:5], np.zeros(5, np.int64))


def test_services_run_on_fakes_through_the_real_container(tmp_path: Path) -> None:
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never-written.csv")))
    source = _fake_source()
    store = InMemoryLabelStore(VOCABULARY, source.serials("train"))
    with app.data_source.override(source), app.label_store.override(store):
        summary = app.dataset_service().summarise()
        app.label_service().set([1], "error", source="test")
        app.label_service().set([2], "error", source="test")
        app.label_service().undo(source="test")  # one batch: the second set
        with pytest.raises(LabelError, match="12"):
            app.label_service().set([12], "ok", source="test")
    assert [s.samples for s in summary.splits] == [12, 5]
    assert dict(store.load()) == {1: "error"}
    assert not (tmp_path / "never-written.csv").exists()


def test_the_fake_vocabulary_reaches_the_real_label_store(tmp_path: Path) -> None:
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "labels.parquet")))
    with app.data_source.override(_fake_source()):
        app.label_service().set([3], "warning", source="test")
        assert type(app.label_store()).__name__ == "ParquetLabelStore"
        assert dict(app.label_service().labels()) == {3: "warning"}


def test_settings_reject_bad_values_with_one_clear_message() -> None:
    with pytest.raises(SettingsError, match=r"'cifar'.*mnist"):
        DataSettings(name="cifar")
    with pytest.raises(SettingsError, match="train_path"):
        DataSettings(kind="vectors")
    with pytest.raises(SettingsError, match="format"):
        LabelSettings(format="xlsx")


def test_building_the_container_does_no_io(tmp_path: Path) -> None:
    settings = AppSettings(
        data=DataSettings(directory=tmp_path / "missing", cache_dir=tmp_path / "cache"),
        labels=LabelSettings(path=tmp_path / "labels.csv"),
    )
    bootstrap(settings)
    assert list(tmp_path.iterdir()) == []
