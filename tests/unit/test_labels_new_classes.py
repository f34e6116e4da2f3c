"""Classes added by a user: the vocabulary grows, labels follow, bad names change nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fakes import InMemoryLabelStore
from hypothesis import given
from hypothesis import strategies as st

from ssvae.application.labeling import LabelService
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary, LabelChange, LabelSet, validate_changes

SYSTEMS = ClassVocabulary(("OpenSSH", "Apache", "kernel"))

# Class names as the vocabulary accepts them: non-empty, no surrounding spaces.
names = st.text(min_size=1, max_size=12).filter(lambda n: n.strip() == n and n.strip() != "")


@given(st.lists(names, min_size=2, max_size=8, unique=True), st.lists(names, max_size=5))
def test_added_classes_come_after_the_others_and_nothing_moves(
    base: list[str], added: list[str]
) -> None:
    vocabulary = ClassVocabulary(base)
    fresh = [n for n in dict.fromkeys(added) if n not in vocabulary]
    grown = vocabulary.with_classes(fresh)
    assert grown.names == (*base, *fresh)
    assert grown.extends(vocabulary) and vocabulary.extends(vocabulary)
    assert all(grown.index(n) == vocabulary.index(n) for n in base)
    assert [grown.index(n) for n in fresh] == list(range(len(base), len(base) + len(fresh)))
    if fresh:
        assert not vocabulary.extends(grown)


@given(st.lists(names, min_size=2, max_size=8, unique=True), st.data())
def test_a_class_that_exists_is_never_added_again(base: list[str], data: st.DataObject) -> None:
    vocabulary = ClassVocabulary(base)
    existing = data.draw(st.sampled_from(base))
    with pytest.raises(LabelError, match="already exists"):
        vocabulary.with_class(existing)


@pytest.mark.parametrize(
    ("name", "needle"),
    [("", "needs a name"), ("   ", "needs a name"), (" Nginx", "surrounding spaces")],
)
def test_a_new_class_needs_a_proper_name(name: str, needle: str) -> None:
    with pytest.raises(LabelError, match=needle) as caught:
        SYSTEMS.with_class(name)
    assert "\n" not in str(caught.value)


def test_a_vocabulary_with_other_classes_first_does_not_extend_it() -> None:
    assert not ClassVocabulary(("Apache", "OpenSSH", "kernel", "Nginx")).extends(SYSTEMS)
    assert not ClassVocabulary(("OpenSSH", "Apache")).extends(SYSTEMS)


def test_an_unknown_class_is_refused_with_the_way_to_add_it() -> None:
    with pytest.raises(LabelError, match=r"not in the vocabulary.*--new-class"):
        validate_changes([LabelChange(1, "Nginx")], SYSTEMS, np.arange(5))


@pytest.fixture
def store() -> InMemoryLabelStore:
    ticks = itertools.count(1000)
    return InMemoryLabelStore(SYSTEMS, np.arange(50), clock=lambda: float(next(ticks)))


def test_set_with_a_new_class_adds_it_and_labels_with_it(store: InMemoryLabelStore) -> None:
    service = LabelService(store)
    service.set([1], "OpenSSH", source="cli")
    labels = service.set([4, 2], "Nginx", source="cli", new_class=True)
    assert labels.vocabulary.names == ("OpenSSH", "Apache", "kernel", "Nginx")
    assert dict(labels) == {1: "OpenSSH", 2: "Nginx", 4: "Nginx"}
    assert service.vocabulary() == labels.vocabulary
    assert service.counts() == {"OpenSSH": 1, "Apache": 0, "kernel": 0, "Nginx": 2}
    assert labels.class_indices().tolist() == [0, 3, 3]
    # Once added, the class is an ordinary one; undo removes the labels, not the class.
    service.set([5], "Nginx", source="cli")
    service.undo(source="cli")
    assert dict(service.labels()) == {1: "OpenSSH", 2: "Nginx", 4: "Nginx"}
    assert "Nginx" in service.vocabulary()


@pytest.mark.parametrize(
    ("serials", "name", "needle"),
    [
        ([3], "", "needs a name"),
        ([3], "Apache", "already exists"),
        ([3], " Nginx", "surrounding spaces"),
        ([99], "Nginx", "serial 99"),  # the class would be fine: the serial is not
    ],
)
def test_bad_input_with_a_new_class_changes_nothing(
    store: InMemoryLabelStore, serials: list[int], name: str, needle: str
) -> None:
    service = LabelService(store)
    service.set([1], "kernel", source="cli")
    before, history = service.labels(), list(store.history())
    with pytest.raises(LabelError, match=needle):
        service.set(serials, name, source="cli", new_class=True)
    assert service.labels() == before and service.vocabulary() == SYSTEMS
    assert list(store.history()) == history


def test_without_new_class_an_unknown_class_is_still_refused(store: InMemoryLabelStore) -> None:
    with pytest.raises(LabelError, match="add --new-class"):
        LabelService(store).set([3], "Nginx", source="cli")
    assert store.load() == LabelSet(SYSTEMS)


def test_a_class_can_be_added_before_any_label_uses_it(store: InMemoryLabelStore) -> None:
    service = LabelService(store)
    grown = service.add_class("Nginx", source="dashboard")
    assert grown.names[-1] == "Nginx" and len(service.labels()) == 0
    assert list(store.history()) == []  # no label changed
    with pytest.raises(LabelError, match="already exists"):
        service.add_class("Nginx", source="dashboard")


def test_a_clone_imports_the_labels_with_the_classes_they_use(store: InMemoryLabelStore) -> None:
    imported = LabelSet(SYSTEMS.with_class("Nginx"), {3: "Nginx", 4: "Apache"})
    service = LabelService(store)
    with pytest.raises(LabelError, match="Nginx"):
        service.import_labels(imported, "import")  # a plain import keeps the vocabulary
    assert service.vocabulary() == SYSTEMS
    assert service.import_labels(imported, "clone", add_classes=True) == imported
