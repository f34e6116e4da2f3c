"""Domain labels: vocabulary, label sets, changes, history, undo and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssvae.domain.errors import LabelError
from ssvae.domain.labels import (
    ClassVocabulary,
    HistoryEntry,
    LabelChange,
    LabelSet,
    apply_changes,
    changes_between,
    describe_serials,
    record_changes,
    replay,
    undo_batch,
    validate_changes,
)

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(100, 120, dtype=np.int64)

changes = st.builds(
    LabelChange,
    serial=st.integers(100, 119),
    new=st.none() | st.sampled_from(VOCABULARY.names),
)
label_sets = st.dictionaries(
    st.integers(100, 119), st.sampled_from(VOCABULARY.names), max_size=20
).map(lambda d: LabelSet(VOCABULARY, d))


def _record(labels: LabelSet, change_list: list[LabelChange], first: int = 0):
    return record_changes(labels, change_list, source="test", first_index=first, timestamp=1.0)


# Vocabulary


def test_vocabulary_positions_follow_the_given_order():
    assert [VOCABULARY.index(n) for n in ("cat", "dog", "bird")] == [0, 1, 2]
    assert "dog" in VOCABULARY and "cow" not in VOCABULARY
    assert ClassVocabulary.digits(3).names == ("0", "1", "2")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("only",), "at least 2"),
        (("a", "a"), "unique"),
        (("a", " b"), "surrounding spaces"),
        (("a", ""), "invalid"),
    ],
)
def test_vocabulary_rejects_bad_names(names, message):
    with pytest.raises(LabelError, match=message):
        ClassVocabulary(names)


def test_unknown_class_names_the_vocabulary():
    with pytest.raises(LabelError, match=r"'cow' is not in the vocabulary \(cat, dog, bird\)"):
        VOCABULARY.index("cow")


# LabelSet


def test_label_set_iterates_by_serial_and_counts_every_class():
    labels = LabelSet.from_pairs(VOCABULARY, [(105, "dog"), (101, "cat"), (103, "dog")])
    assert list(labels) == [(101, "cat"), (103, "dog"), (105, "dog")]
    assert labels.counts() == {"cat": 1, "dog": 2, "bird": 0}
    assert labels.serials().tolist() == [101, 103, 105]
    assert labels.class_indices().tolist() == [0, 1, 1]
    assert labels.get(103) == "dog" and labels.get(104) is None
    assert 101 in labels and len(labels) == 3


def test_label_sets_compare_by_content():
    a = LabelSet(VOCABULARY, {1: "cat", 2: "dog"})
    b = LabelSet.from_pairs(VOCABULARY, [(2, "dog"), (1, "cat")])
    assert a == b and hash(a) == hash(b)
    assert a != LabelSet(VOCABULARY, {1: "cat"})


@pytest.mark.parametrize(
    ("by_serial", "message"),
    [({-1: "cat"}, "serials are integers >= 0"), ({1: "cow"}, "not in the vocabulary")],
)
def test_label_set_rejects_bad_labels(by_serial, message):
    with pytest.raises(LabelError, match=message):
        LabelSet(VOCABULARY, by_serial)


def test_from_pairs_rejects_a_repeated_serial():
    with pytest.raises(LabelError, match="serial 4 is labelled twice"):
        LabelSet.from_pairs(VOCABULARY, [(4, "cat"), (4, "dog")])


# apply_changes and replay


def test_apply_changes_sets_overwrites_and_unsets_in_order():
    labels = apply_changes(
        LabelSet(VOCABULARY),
        [
            LabelChange(1, "cat"),
            LabelChange(2, "dog"),
            LabelChange(1, "bird"),
            LabelChange(2, None),
        ],
    )
    assert labels == LabelSet(VOCABULARY, {1: "bird"})


def test_apply_changes_rejects_an_unknown_class():
    with pytest.raises(LabelError, match="'cow'"):
        apply_changes(LabelSet(VOCABULARY), [LabelChange(1, "cow")])


@given(st.lists(changes, max_size=30))
def test_apply_changes_agrees_with_a_dictionary_reference(change_list):
    reference: dict[int, str] = {}
    for change in change_list:
        if change.new is None:
            reference.pop(change.serial, None)
        else:
            reference[change.serial] = change.new
    assert apply_changes(LabelSet(VOCABULARY), change_list) == LabelSet(VOCABULARY, reference)


@given(label_sets, st.lists(changes, max_size=30))
def test_recorded_history_replays_to_the_labels(start, change_list):
    _, setup = _record(LabelSet(VOCABULARY), changes_between(LabelSet(VOCABULARY), start))
    labels, entries = _record(start, change_list, first=len(setup))
    assert labels == apply_changes(start, change_list)
    assert replay(VOCABULARY, setup + entries) == labels
    assert [e.index for e in setup + entries] == list(range(len(setup) + len(entries)))


# record_changes


def test_record_changes_skips_changes_that_do_nothing():
    labels = LabelSet(VOCABULARY, {1: "cat"})
    after, entries = _record(labels, [LabelChange(1, "cat"), LabelChange(2, None)], first=7)
    assert after == labels and entries == ()


def test_record_changes_remembers_previous_labels_within_one_batch():
    _, entries = _record(
        LabelSet(VOCABULARY, {1: "cat"}),
        [LabelChange(1, "dog"), LabelChange(1, None), LabelChange(2, "bird")],
        first=3,
    )
    assert [(e.index, e.serial, e.previous, e.new) for e in entries] == [
        (3, 1, "cat", "dog"),
        (4, 1, "dog", None),
        (5, 2, None, "bird"),
    ]
    assert all(e.source == "test" and e.timestamp == 1.0 for e in entries)


def test_record_changes_keeps_an_undo_even_when_it_changes_nothing():
    _, entries = _record(LabelSet(VOCABULARY), [LabelChange(1, None, undoes=0)])
    assert [(e.serial, e.previous, e.new, e.undoes) for e in entries] == [(1, None, None, 0)]


def test_record_changes_accepts_numpy_serials():
    labels, entries = _record(LabelSet(VOCABULARY), [LabelChange(np.int64(3), "cat")])
    assert list(labels) == [(3, "cat")] and type(entries[0].serial) is int


# undo_batch


def _entry(index, serial, previous, new, undoes=None, batch=None):
    return HistoryEntry(index, 0.0, serial, previous, new, "test", undoes, batch)


def _undo(history):
    return undo_batch(reversed(history))


def test_undo_batch_walks_back_and_skips_undos_and_undone_entries():
    history = [_entry(0, 1, None, "cat"), _entry(1, 1, "cat", "dog")]
    assert _undo([]) == []
    assert _undo(history) == [LabelChange(1, "cat", undoes=1)]
    history.append(_entry(2, 1, "dog", "cat", undoes=1))
    assert _undo(history) == [LabelChange(1, None, undoes=0)]
    history.append(_entry(3, 1, "cat", None, undoes=0))
    assert _undo(history) == []


def test_undo_batch_reverts_a_whole_batch_and_only_it():
    history = [
        _entry(0, 5, None, "bird"),
        _entry(1, 1, None, "cat", batch=1),
        _entry(2, 2, "bird", "cat", batch=1),
        _entry(3, 1, "cat", "dog", batch=1),  # a serial changed twice in one batch
    ]
    # Newest first, so the label before the batch (None for serial 1) is the one that stays.
    assert _undo(history) == [
        LabelChange(1, "cat", undoes=3),
        LabelChange(2, "bird", undoes=2),
        LabelChange(1, None, undoes=1),
    ]
    labels, _ = _record(LabelSet(VOCABULARY, {5: "bird", 1: "dog", 2: "cat"}), _undo(history))
    assert dict(labels) == {5: "bird", 2: "bird"}


def test_undo_batch_finishes_a_batch_that_was_partly_undone_one_entry_at_a_time():
    history = [
        _entry(0, 5, None, "bird"),
        _entry(1, 1, None, "cat", batch=1),
        _entry(2, 2, None, "cat", batch=1),
        _entry(3, 2, "cat", None, undoes=2),
    ]
    assert _undo(history) == [LabelChange(1, None, undoes=1)]


def test_undo_batch_reads_the_history_only_as_far_as_the_batch_it_reverts():
    history = [_entry(i, i, None, "cat", batch=i - i % 4) for i in range(1000)]
    read = []

    def newest_first():
        for entry in reversed(history):
            read.append(entry.index)
            yield entry

    assert [c.serial for c in undo_batch(newest_first())] == [999, 998, 997, 996]
    assert len(read) == 5  # the batch and the entry that ends it


@given(st.lists(st.lists(changes, max_size=6), max_size=12))
def test_repeated_undo_restores_every_earlier_state_batch_by_batch(batches):
    labels = LabelSet(VOCABULARY)
    history: list[HistoryEntry] = []
    states = [labels]
    for batch in batches:
        labels, entries = _record(labels, batch, first=len(history))
        if entries:
            history.extend(entries)
            states.append(labels)
    for expected in reversed(states[:-1]):
        undo = _undo(history)
        assert undo
        labels, entries = _record(labels, undo, first=len(history))
        history.extend(entries)
        assert labels == expected
        assert {e.batch for e in entries} == {entries[0].index}  # one new batch
    assert _undo(history) == []
    assert replay(VOCABULARY, history) == LabelSet(VOCABULARY)


# changes_between


@given(label_sets, label_sets)
def test_changes_between_turns_one_set_into_the_other(current, target):
    found = changes_between(current, target)
    assert apply_changes(current, found) == target
    assert len({c.serial for c in found}) == len(found)
    assert (found == []) == (current == target)


# validate_changes


def test_validate_changes_accepts_known_serials_and_classes():
    validate_changes(
        [LabelChange(100, "cat"), LabelChange(np.int64(119), None)], VOCABULARY, SERIALS
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (LabelChange(99, "cat"), r"serial 99 is not in the dataset \(the dataset has 20 serials"),
        (LabelChange(120, None), "serial 120 is not in the dataset"),
        (LabelChange(-1, "cat"), "serial -1 is invalid"),
        (LabelChange(True, "cat"), "serial True is invalid"),
        (LabelChange("7", "cat"), "serial '7' is invalid"),
        (LabelChange(101, "cow"), "cannot label serial 101 as 'cow'.*use one of cat, dog, bird"),
        (LabelChange(101, 3), "cannot label serial 101 as 3"),
    ],
)
def test_validate_changes_names_the_bad_change(change, message):
    with pytest.raises(LabelError, match=message):
        validate_changes([LabelChange(100, "cat"), change], VOCABULARY, SERIALS)


@given(st.lists(st.tuples(st.integers(0, 200), st.sampled_from(VOCABULARY.names)), max_size=10))
def test_validate_changes_rejects_exactly_the_serials_outside_the_dataset(pairs):
    change_list = [LabelChange(s, n) for s, n in pairs]
    outside = [s for s, _ in pairs if not 100 <= s < 120]
    if outside:
        with pytest.raises(LabelError, match=f"serial {outside[0]} is not in the dataset"):
            validate_changes(change_list, VOCABULARY, SERIALS)
    else:
        validate_changes(change_list, VOCABULARY, SERIALS)


def test_describe_serials():
    assert describe_serials(SERIALS) == "the dataset has 20 serials, from 100 to 119"
    assert describe_serials(np.array([], dtype=np.int64)) == "the dataset has no serials"


@pytest.mark.parametrize("serial", [2**63, 10**30, 10**5000], ids=["2^63", "10^30", "10^5000"])
def test_a_serial_past_int64_is_a_short_label_error(serial):
    with pytest.raises(LabelError, match="is not in the dataset") as raised:
        validate_changes([LabelChange(serial, "cat")], VOCABULARY, np.arange(10, dtype=np.int64))
    assert len(str(raised.value)) < 200
