"""A label write killed at each of its steps: the store reopens consistent, with every
acknowledged label and nothing of the killed write half-applied.

The write runs in a forked child that dies with `os._exit` (no cleanup, no `finally`, as a
SIGKILL or a power cut leaves it) at one step; the parent then reopens the store.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters import files
from ssvae.adapters.labels import _store
from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelStore
from ssvae.domain.labels import ClassVocabulary, LabelChange, LabelSet, replay

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
KILLED = 73  # the child's exit status when it died where it was told to

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


def _die() -> None:
    os._exit(KILLED)


def _arm(step: str, store: _store.LabelFileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the write die at `step` (in the forked child only)."""
    if step == "after the vocabulary":
        real_write_vocabulary = _store.write_vocabulary

        def write_vocabulary_then_die(*args: object) -> None:
            real_write_vocabulary(*args)  # type: ignore[arg-type]
            _die()

        monkeypatch.setattr(_store, "write_vocabulary", write_vocabulary_then_die)
    elif step == "halfway through the history append":
        real_open = _store._open_for_update

        @contextlib.contextmanager
        def open_and_tear(path: Path):  # type: ignore[no-untyped-def]
            with real_open(path) as log:
                real_write = log.write

                def write_half(data: bytes) -> int:
                    real_write(data[: max(1, len(data) // 2)])
                    log.flush()
                    os.fsync(log.fileno())
                    _die()
                    return 0

                log.write = write_half  # type: ignore[method-assign]
                yield log

        monkeypatch.setattr(_store, "_open_for_update", open_and_tear)
    elif step == "after the history append":
        real_sync = _store._sync

        def sync_then_die(handle: object) -> None:
            real_sync(handle)  # type: ignore[arg-type]
            _die()

        monkeypatch.setattr(_store, "_sync", sync_then_die)
    elif step in ("before the label file's rename", "after the label file's rename"):
        real_replace = os.replace

        def replace(source: object, target: object) -> None:
            if Path(str(target)) != store.path:
                real_replace(source, target)  # the vocabulary's rename
                return
            if step == "after the label file's rename":
                real_replace(source, target)
            _die()

        monkeypatch.setattr(files.os, "replace", replace)


def _in_a_child_killed_at(
    step: str,
    store: _store.LabelFileStore,
    write: Callable[[_store.LabelFileStore], object],
) -> None:
    pid = os.fork()
    if pid == 0:  # the child: its own store (a lock may not cross a fork), arm, write, die
        try:
            child = type(store)(store.path, VOCABULARY, SERIALS)
            with pytest.MonkeyPatch.context() as monkeypatch:
                _arm(step, child, monkeypatch)
                write(child)
                _die()  # "after returning": acknowledged, then killed
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)  # an exception: not the death the test asked for
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == KILLED


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
    changes = [LabelChange(1005, "fox"), LabelChange(1001, "fox"), LabelChange(1000, None)]
    _in_a_child_killed_at(
        step, store, lambda child: child.apply(changes, source="killed", new_classes=("fox",))
    )
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
    _in_a_child_killed_at(step, store, lambda child: child.undo(source="killed"))
    reopened = store_class(tmp_path / file_name, VOCABULARY, SERIALS)
    undone = LabelSet(VOCABULARY, {1000: "cat"})  # the lasso's batch reverted as a whole
    _check_consistent(reopened, undone if STEPS[step] else before)
    # A second undo reverts the next batch if the killed one was written, else the lasso.
    reopened.undo(source="next")
    _check_consistent(reopened, LabelSet(VOCABULARY) if STEPS[step] else undone)
    reverted = [e.undoes for e in reopened.history() if e.undoes is not None]
    assert len(reverted) == len(set(reverted))  # no change reverted twice
