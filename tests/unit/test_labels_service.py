"""LabelService over the in-memory label store."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fakes import InMemoryLabelStore

from ssvae.application.labeling import LabelService
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary, LabelSet, replay

VOCABULARY = ClassVocabulary(("OpenSSH", "Apache", "other"))


@pytest.fixture
def store() -> InMemoryLabelStore:
    ticks = itertools.count(1000)
    return InMemoryLabelStore(VOCABULARY, np.arange(50), clock=lambda: float(next(ticks)))


@pytest.fixture
def service(store: InMemoryLabelStore) -> LabelService:
    return LabelService(store)


def test_set_and_unset_change_labels_and_counts(service):
    labels = service.set([3, 1, np.int64(2)], "Apache", source="ui")
    assert list(labels) == [(1, "Apache"), (2, "Apache"), (3, "Apache")]
    service.set([2], "other", source="ui")
    assert service.unset([1, 40], source="cli") == LabelSet(VOCABULARY, {2: "other", 3: "Apache"})
    assert service.labels() == LabelSet(VOCABULARY, {2: "other", 3: "Apache"})
    assert service.counts() == {"OpenSSH": 0, "Apache": 1, "other": 1}


def test_every_change_is_in_the_history_with_its_source(service, store):
    service.set([5], "OpenSSH", source="ui")
    service.unset([5], source="cli")
    assert [
        (e.index, e.serial, e.previous, e.new, e.source, e.timestamp) for e in store.history()
    ] == [
        (0, 5, None, "OpenSSH", "ui", 1000.0),
        (1, 5, "OpenSSH", None, "cli", 1001.0),
    ]


def test_undo_reverts_one_batch_at_a_time_and_reports_it(service, store):
    assert service.undo(source="ui").entries == ()
    service.set([7], "Apache", source="ui")
    service.set([7, 8, 9], "other", source="ui")
    first = service.undo(source="ui")
    assert first.serials() == [7, 8, 9]
    assert [(e.serial, e.previous, e.new, e.undoes, e.source) for e in first.entries] == [
        (9, "other", None, 3, "ui"),
        (8, "other", None, 2, "ui"),
        (7, "other", "Apache", 1, "ui"),
    ]
    assert first.labels == service.labels() == LabelSet(VOCABULARY, {7: "Apache"})
    second = service.undo(source="ui")
    assert second.serials() == [7] and second.entries[0].undoes == 0
    assert len(service.labels()) == 0
    assert service.undo(source="ui").entries == ()
    assert replay(VOCABULARY, store.history()) == service.labels()


def test_undo_reverts_an_import_as_a_whole(service):
    service.set([1, 2], "Apache", source="ui")
    service.import_labels(LabelSet(VOCABULARY, {2: "other", 3: "other"}), source="import")
    undone = service.undo(source="ui")
    assert undone.serials() == [1, 2, 3]
    assert service.labels() == LabelSet(VOCABULARY, {1: "Apache", 2: "Apache"})


def test_import_replaces_the_labels_and_records_only_differences(service, store):
    service.set([1, 2], "Apache", source="ui")
    imported = LabelSet(VOCABULARY, {2: "Apache", 3: "other"})
    assert service.import_labels(imported, source="import") == imported
    assert [(e.serial, e.new) for e in store.history() if e.source == "import"] == [
        (1, None),
        (3, "other"),
    ]


def test_import_can_keep_labels_the_file_does_not_list(service):
    service.set([1, 2], "Apache", source="ui")
    imported = LabelSet(VOCABULARY, {2: "OpenSSH", 3: "other"})
    labels = service.import_labels(imported, source="import", keep_unlisted=True)
    assert labels == LabelSet(VOCABULARY, {1: "Apache", 2: "OpenSSH", 3: "other"})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.set([1, 50], "Apache", source="ui"), "serial 50 is not in the dataset"),
        (lambda s: s.set([1], "nginx", source="ui"), "'nginx'"),
        (lambda s: s.unset([-3], source="ui"), "serial -3 is invalid"),
    ],
)
def test_bad_changes_raise_and_change_nothing(service, store, call, message):
    service.set([4], "other", source="ui")
    before = (service.labels(), tuple(store.history()))
    with pytest.raises(LabelError, match=message):
        call(service)
    assert (service.labels(), tuple(store.history())) == before


def test_import_with_a_class_outside_the_vocabulary_changes_nothing(service):
    service.set([4], "other", source="ui")
    foreign = LabelSet(ClassVocabulary(("other", "nginx")), {4: "other", 5: "nginx"})
    with pytest.raises(LabelError, match="'nginx'"):
        service.import_labels(foreign, source="import")
    assert service.labels() == LabelSet(VOCABULARY, {4: "other"})
