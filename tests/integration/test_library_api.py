"""The library API, used the way docs/USAGE.md shows: bootstrap, then call services."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings, LabelSettings
from ssvae.domain.errors import LabelError


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_library_user_labels_mnist_samples(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / f"labels{suffix}"
    app = bootstrap(
        AppSettings(
            data=DataSettings(name="mnist", cache_dir=tmp_path / "cache"),
            labels=LabelSettings(path=store),
        )
    )

    info = app.dataset_service().describe()
    assert info.vocabulary.names == tuple("0123456789")
    assert info.size("train") == 60000

    service = app.label_service()
    service.set([0, 1, 2], "5", source="script")
    service.set([2], "4", source="script")
    service.unset([1], source="script")
    assert dict(service.labels()) == {0: "5", 2: "4"}

    reopened = bootstrap(
        AppSettings(data=DataSettings(name="mnist"), labels=LabelSettings(path=store))
    )
    assert dict(reopened.label_service().labels()) == {0: "5", 2: "4"}
    assert reopened.label_service().counts()["5"] == 1

    with pytest.raises(LabelError, match="60000"):
        service.set([60000], "5", source="script")


def test_the_label_store_format_follows_the_extension(tmp_path: Path) -> None:
    csv_app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "a.csv")))
    parquet_app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "a.parquet")))
    assert type(csv_app.label_store()).__name__ == "CsvLabelStore"
    assert type(parquet_app.label_store()).__name__ == "ParquetLabelStore"
