"""A label write killed at each of its steps: the store reopens consistent, with every
acknowledged label and nothing of the killed write half-applied.

The write runs in a fresh interpreter (tests/labels_store_killer.py) that dies with `os._exit`
at one step (no cleanup, no `finally`, as a SIGKILL or a power cut leaves it); the test then
reopens the store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import labels_store_killer as killer
import pytest

from ssvae.adapters.labels import _store
from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelStore
from ssvae.domain.labels import LabelChange, LabelSet, replay

VOCABULARY = killer.VOCABULARY
SERIALS = killer.SERIALS

# Each step of a write, in the order of `_store`'s module docstring, and whether the write's
# labels are in the label file once the write dies there.
STEPS = {
    "after the vocabulary": False,
    "halfway through the history append": False,
    "after the history append": False,
    "before the label file's rename": False,
    "after the label file's rename": True,
    "after returning": True,
}


def _killed_at(step: str, store: _store.LabelFileStore, write: str) -> None:
    """Run `write` ("apply" or "undo", see `killer.WRITES`) on the store's file; die at `step`."""
    kind = "parquet" if isinstance(store, ParquetLabelStore) else "csv"
    child = subprocess.run(
        [sys.executable, killer.__file__, step, kind, str(store.path), write],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == killer.KILLED, child.stderr  # not the death the test asked for


def _prepared(store_class, path: Path) -> _store.LabelFileStore:
    store = store_class(path, VOCABULARY, SERIALS)
    store.apply([LabelChange(1000, "cat")], source="test")
    store.apply([LabelChange(s, "dog") for s in (1001, 1002, 1003)], source="lasso")
    return store


def _check_consistent(store: _store.LabelFileStore, expected: LabelSet) -> None:
    assert store.load() == expected
    history = store.history()
    assert replay(store.load().vocabulary, history) == expected
    assert [e.index for e in history] == list(range(len(history)))


STORES = [
    pytest.param(CsvLabelStore, "labels.csv", id="csv"),
    pytest.param(ParquetLabelStore, "labels.parquet", id="parquet"),
]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
@pytest.mark.parametrize("step", list(STEPS))
def test_a_write_killed_at_any_step_leaves_a_consistent_store(
    tmp_path, store_class, file_name, step
):
    store = _prepared(store_class, tmp_path / file_name)
    before = store.load()
    _killed_at(step, store, "apply")  # 1005 and 1001 become fox (a new class), 1000 unset
    reopened = store_class(tmp_path / file_name, VOCABULARY, SERIALS)
    vocabulary = reopened.load().vocabulary
    assert vocabulary.names[:3] == VOCABULARY.names  # at most the new class was added
    written = LabelSet(vocabulary, {1001: "fox", 1002: "dog", 1003: "dog", 1005: "fox"})
    expected = written if STEPS[step] else LabelSet(vocabulary, dict(before))
    _check_consistent(reopened, expected)
    # The store goes on: the next write repairs what the crash left and removes its
    # temporaries, and undo walks back through what was acknowledged.
    after = reopened.apply([LabelChange(1100, "bird")], source="next")
    assert after.get(1100) == "bird"
    _check_consistent(reopened, after)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    reopened.undo(source="next")
    _check_consistent(reopened, expected)


@pytest.mark.parametrize("step", [s for s in STEPS if s != "after the vocabulary"])
def test_an_undo_killed_at_any_step_is_all_or_nothing(tmp_path, step):
    # One format: the steps are the same, only the label file's encoding differs.
    store_class, file_name = CsvLabelStore, "labels.csv"
    store = _prepared(store_class, tmp_path / file_name)
    before = store.load()
    _killed_at(step, store, "undo")
    reopened = store_class(tmp_path / file_name, VOCABULARY, SERIALS)
    undone = LabelSet(VOCABULARY, {1000: "cat"})  # the lasso's batch reverted as a whole
    _check_consistent(reopened, undone if STEPS[step] else before)
    # A second undo reverts the next batch if the killed one was written, else the lasso.
    reopened.undo(source="next")
    _check_consistent(reopened, LabelSet(VOCABULARY) if STEPS[step] else undone)
    reverted = [e.undoes for e in reopened.history() if e.undoes is not None]
    assert len(reverted) == len(set(reverted))  # no change reverted twice
