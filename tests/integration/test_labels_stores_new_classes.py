"""Classes added to a label store on real files: the vocabulary file, the order of the writes,
crashes, damaged files, and label stores written before classes could be added."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.labels import _store
from ssvae.adapters.labels.classes_file import read_vocabulary
from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelStore
from ssvae.application.labeling import LabelService
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary, LabelChange, LabelSet, replay

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
GROWN = VOCABULARY.with_class("fox")
SERIALS = np.arange(1000, 1200, dtype=np.int64)
STORES = [
    pytest.param(CsvLabelStore, "labels.csv", id="csv"),
    pytest.param(ParquetLabelStore, "labels.parquet", id="parquet"),
]
OLD_WORKSPACE = Path(__file__).parent / "old_workspace"


def _open(store_class, path):
    return store_class(path, VOCABULARY, SERIALS, clock=lambda: 1_700_000_000.0)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_new_class_is_stored_beside_the_labels_and_seen_on_reopening(
    tmp_path, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    labels = store.apply([LabelChange(1001, "fox")], source="test", new_classes=["fox"])
    assert labels == LabelSet(GROWN, {1000: "cat", 1001: "fox"})
    document = json.loads(store.classes_path.read_text())
    assert document == {"format_version": 1, "classes": ["cat", "dog", "bird", "fox"]}
    assert store.classes_path.name == f"{file_name}.classes.json"

    reopened = _open(store_class, tmp_path / file_name)
    assert reopened.load() == labels
    history = reopened.history()
    assert [(e.serial, e.new) for e in history] == [(1000, "cat"), (1001, "fox")]
    assert replay(GROWN, history) == labels
    reopened.apply([LabelChange(1002, "fox")], source="test")  # an ordinary class now
    with pytest.raises(LabelError, match="already exists"):
        reopened.apply([LabelChange(1003, "fox")], source="test", new_classes=["fox"])
    assert dict(reopened.load()) == {1000: "cat", 1001: "fox", 1002: "fox"}


def test_the_label_file_keeps_its_format(tmp_path):
    store = _open(CsvLabelStore, tmp_path / "labels.csv")
    store.apply([LabelChange(1001, "New System, v2")], "test", new_classes=["New System, v2"])
    assert store.path.read_text().splitlines() == ["Serial,label", '1001,"New System, v2"']


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_the_vocabulary_is_durable_before_the_history_and_the_labels(
    tmp_path, monkeypatch, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    seen: list[tuple[str, bool, bool]] = []  # (file replaced, history has fox, vocab has fox)
    real_replace = os.replace

    def observing_replace(source, destination):
        history = store.history_path.read_bytes()
        classes = store.classes_path.read_bytes() if store.classes_path.exists() else b""
        seen.append((Path(destination).name, b"fox" in history, b"fox" in classes))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", observing_replace)
    store.apply([LabelChange(1001, "fox")], source="test", new_classes=["fox"])
    assert seen == [
        (store.classes_path.name, False, False),  # the vocabulary first, alone
        (store.path.name, True, True),  # then the labels, after the history
    ]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_vocabulary_that_cannot_be_written_leaves_every_file_as_it_was(
    tmp_path, monkeypatch, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    before = _files(tmp_path)

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(LabelError, match="No space left on device"):
        store.apply([LabelChange(1001, "fox")], source="test", new_classes=["fox"])
    monkeypatch.undo()
    assert _files(tmp_path) == before
    assert _open(store_class, tmp_path / file_name).load() == LabelSet(VOCABULARY, {1000: "cat"})


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_labels_that_cannot_be_written_after_their_class_leave_an_unused_class(
    tmp_path, monkeypatch, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    labels_before, history_before = store.path.read_bytes(), store.history_path.read_bytes()
    real_replace = os.replace

    def refuse_the_labels(source, destination):
        if Path(destination) == store.path:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", refuse_the_labels)
    with pytest.raises(LabelError, match="No space left on device"):
        store.apply([LabelChange(1001, "fox")], source="test", new_classes=["fox"])
    monkeypatch.undo()
    assert store.path.read_bytes() == labels_before
    assert store.history_path.read_bytes() == history_before
    reopened = _open(store_class, tmp_path / file_name)
    assert reopened.load() == LabelSet(GROWN, {1000: "cat"})  # the class waits, unused


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_crash_before_the_labels_are_replaced_drops_the_batch_and_keeps_the_class(
    tmp_path, store_class, file_name
):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.apply([LabelChange(1000, "cat")], source="test")
    old_labels = path.read_bytes()
    store.apply([LabelChange(1001, "fox")], source="test", new_classes=["fox"])
    path.write_bytes(old_labels)  # as if the process died before replacing the label file

    reopened = _open(store_class, path)
    assert reopened.load() == LabelSet(GROWN, {1000: "cat"})
    assert [(e.serial, e.new) for e in reopened.history()] == [(1000, "cat")]
    reopened.apply([LabelChange(1002, "fox")], source="test")
    assert replay(GROWN, reopened.history()) == reopened.load()


@pytest.mark.parametrize("writer_goes", ["before", "after"])
def test_readers_read_the_labels_before_the_vocabulary(tmp_path, monkeypatch, writer_goes):
    """A writer adds a class and a label while a reader reads the vocabulary (just before or
    just after the read): the reader must still find every class its labels name, which it
    would not, were the vocabulary read before the labels."""
    path = tmp_path / "labels.csv"
    reader, writer = _open(CsvLabelStore, path), _open(CsvLabelStore, path)
    reader.apply([LabelChange(1000, "cat")], source="test")
    real_read = _store.read_vocabulary
    interleaved: list[bool] = []

    def write(reading: bool) -> None:
        if reading and not interleaved:
            interleaved.append(True)
            writer.apply([LabelChange(1001, "fox")], "writer", new_classes=["fox"])

    def read_with_a_writer_alongside(classes_path, base):
        write(writer_goes == "before")
        vocabulary = real_read(classes_path, base)
        write(writer_goes == "after")
        return vocabulary

    monkeypatch.setattr(_store, "read_vocabulary", read_with_a_writer_alongside)
    labels = reader.load()
    assert interleaved
    assert labels in (
        LabelSet(VOCABULARY, {1000: "cat"}),
        LabelSet(GROWN, {1000: "cat"}),
        LabelSet(GROWN, {1000: "cat", 1001: "fox"}),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is damaged"),
        (b'{"format_version": 2, "classes": ["cat", "dog", "bird"]}', "format_version 1"),
        (b'{"format_version": 1, "classes": ["cat", 3]}', "list of class names"),
        (b'{"format_version": 1, "classes": ["cat", "dog", "bird", "cat"]}', "unique"),
        (b'{"format_version": 1, "classes": ["dog", "cat", "bird", "fox"]}', "do not begin"),
    ],
)
def test_a_damaged_vocabulary_file_is_named_and_nothing_is_written(tmp_path, content, message):
    store = _open(CsvLabelStore, tmp_path / "labels.csv")
    store.apply([LabelChange(1000, "cat")], source="test")
    store.classes_path.write_bytes(content)
    before = _files(tmp_path)
    for action in (store.load, lambda: store.apply([LabelChange(1001, "dog")], "test")):
        with pytest.raises(LabelError, match=message) as raised:
            action()
        assert str(store.classes_path) in str(raised.value)
        assert "\n" not in str(raised.value)
    assert _files(tmp_path) == before


def test_without_a_vocabulary_file_the_dataset_classes_are_the_vocabulary(tmp_path):
    assert read_vocabulary(tmp_path / "missing.classes.json", VOCABULARY) is VOCABULARY


def test_a_workspace_written_before_classes_could_be_added_opens_unchanged(tmp_path):
    """The fixture was written by `ssvae init` and `ssvae label` of the code before this
    feature (MNIST, a pool of 200, labels set and one undone)."""
    from ssvae.entrypoints.cli.workspace import workspace_app

    directory = tmp_path / "models" / "old-format"
    shutil.copytree(OLD_WORKSPACE, directory)
    before = _files(directory)
    app, _ = workspace_app(directory, tmp_path)
    service: LabelService = app.label_service()
    assert service.vocabulary() == ClassVocabulary.digits(10)
    assert dict(service.labels()) == {634: "3", 730: "3", 965: "7"}
    assert [(e.serial, e.new, e.undoes) for e in app.label_store().history()] == [
        (634, "3", None),
        (730, "3", None),
        (965, "7", None),
        (1347, "1", None),
        (1347, None, 3),
    ]
    assert app.label_exchange().export_file(tmp_path / "out.csv") == service.labels()
    assert _files(directory) == {**before, "labels.csv.lock": b""}  # reading wrote nothing

    labels = service.set([1408], "NewSystem", source="cli", new_class=True)
    assert labels.vocabulary.names == (*(str(d) for d in range(10)), "NewSystem")
    reopened, _ = workspace_app(directory, tmp_path)
    assert reopened.label_service().labels() == labels
    assert (directory / "labels.csv").read_text().splitlines() == [
        "Serial,label",
        "634,3",
        "730,3",
        "965,7",
        "1408,NewSystem",
    ]
