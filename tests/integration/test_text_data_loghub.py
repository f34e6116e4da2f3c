"""The built-in Loghub sample: both tasks' classes, counts and held-out test split."""

from __future__ import annotations

import numpy as np

from ssvae.adapters.data.loghub import loghub_file
from ssvae.adapters.data.text_source import loghub_source
from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings


def _labelled(source: object) -> tuple[int, int]:
    """(labelled messages in both splits, unlabelled messages in the pool)."""
    splits = [source._split(name) for name in ("train", "test")]  # type: ignore[attr-defined]
    labels = np.concatenate([split.labels for split in splits])
    return int((labels >= 0).sum()), int((splits[0].labels < 0).sum())


def test_the_system_task_has_ten_classes_and_holds_out_a_fifth() -> None:
    source = loghub_source("system")
    info = source.describe()
    assert info.name == "loghub-system" and info.kind == "text" and info.has_true_labels
    assert len(info.vocabulary) == 10 and "OpenSSH" in info.vocabulary
    assert info.split_sizes == (("train", 16000), ("test", 4000))
    assert _labelled(source) == (20000, 0)
    y = source._split("test").labels
    assert np.bincount(y).tolist() == [400] * 10  # stratified: 2,000 per system, a fifth each


def test_the_event_task_keeps_templates_with_at_least_20_messages() -> None:
    source = loghub_source("event")
    info = source.describe()
    assert len(info.vocabulary) == 99
    assert _labelled(source) == (18530, 1470)  # the rarer templates stay unlabelled in the pool
    sizes = dict(info.split_sizes)
    assert sizes["train"] + sizes["test"] == 20000
    assert sizes["test"] == int((source._split("test").labels >= 0).sum())
    test = source.serials("test")
    assert (
        source.extras("test", test[:1])["system"][0]
        == info.vocabulary.names[int(source._split("test").labels[0])].split(":")[0]
    )


def test_the_split_follows_its_seed_and_the_container_builds_loghub() -> None:
    first = loghub_source("system", split_seed=1).serials("test")
    np.testing.assert_array_equal(first, loghub_source("system", split_seed=1).serials("test"))
    assert not np.array_equal(first, loghub_source("system").serials("test"))
    app = bootstrap(AppSettings(data=DataSettings(kind="text", name="loghub", task="event")))
    assert len(app.data_source().describe().vocabulary) == 99
    assert loghub_file().is_file() and (loghub_file().parent / "LICENSE").is_file()
