"""The file label stores' undo, lock and temporaries: undo decided and written under one lock,
a batch undone as a whole, a lock that cannot be created told from a busy one, stale
temporaries removed, and a write that reads only the end of the history."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import filelock
import numpy as np
import pytest

from ssvae.adapters.labels import _store, history_log
from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelStore
from ssvae.application.labeling import LabelService
from ssvae.domain.errors import ConcurrentWriteError, LabelError
from ssvae.domain.labels import ClassVocabulary, LabelChange, LabelSet, replay

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
STORES = [
    pytest.param(CsvLabelStore, "labels.csv", id="csv"),
    pytest.param(ParquetLabelStore, "labels.parquet", id="parquet"),
]


def _open(store_class, path, **options):
    return store_class(path, VOCABULARY, SERIALS, **options)


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_an_undo_never_overwrites_a_change_written_while_it_decided(
    tmp_path, store_class, file_name, monkeypatch
):
    # Two handles on one file, as two processes have. The other writer's change lands just
    # after this undo has read the history: an undo that decided outside the lock reverted
    # the older change over it, and the other writer's acknowledged label was lost.
    path = tmp_path / file_name
    mine, other = _open(store_class, path), _open(store_class, path)
    mine.apply([LabelChange(1007, "cat")], source="me")
    real_history = mine.history

    def history_then_another_writer():
        entries = real_history()
        other.apply([LabelChange(1007, "bird")], source="other")
        return entries

    monkeypatch.setattr(mine, "history", history_then_another_writer)
    original_undo = getattr(_store, "undo_batch", None)

    def undo_batch_then_another_writer(newest_first):
        changes = original_undo(newest_first)
        # The other writer tries while the undo holds the lock: it must wait its turn.
        writer = threading.Thread(
            target=lambda: other.apply([LabelChange(1008, "dog")], source="other")
        )
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # blocked on the lock
        threads.append(writer)
        return changes

    threads: list[threading.Thread] = []
    monkeypatch.setattr(_store, "undo_batch", undo_batch_then_another_writer, raising=False)
    undone = LabelService(mine).undo(source="me")
    for thread in threads:
        thread.join(10)
    assert undone.serials() == [1007] and undone.labels.get(1007) is None
    assert _open(store_class, path).load() == LabelSet(VOCABULARY, {1008: "dog"})
    history = real_history()
    assert [(e.serial, e.new, e.source) for e in history] == [
        (1007, "cat", "me"),
        (1007, None, "me"),  # the undo, decided and written in one step
        (1008, "dog", "other"),  # waited for the lock, then written
    ]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_two_undos_never_revert_the_same_batch(tmp_path, store_class, file_name, monkeypatch):
    path = tmp_path / file_name
    first, second = _open(store_class, path), _open(store_class, path)
    first.apply([LabelChange(1001, "cat")], source="a")
    first.apply([LabelChange(1002, "dog"), LabelChange(1003, "dog")], source="a")
    real_history, real_undo_batch = first.history, getattr(_store, "undo_batch", None)
    others: list[threading.Thread] = []

    def another_undo() -> None:  # the second process's undo, started while the first decides
        if others:
            return  # once: the second undo passes through the same hooks
        others.append(threading.Thread(target=lambda: LabelService(second).undo(source="b")))
        others[-1].start()
        others[-1].join(0.3)

    def history_then_another_undo():
        entries = real_history()
        another_undo()
        return entries

    def undo_batch_then_another_undo(newest_first):
        changes = real_undo_batch(newest_first)
        another_undo()
        return changes

    monkeypatch.setattr(first, "history", history_then_another_undo)
    monkeypatch.setattr(_store, "undo_batch", undo_batch_then_another_undo, raising=False)
    LabelService(first).undo(source="a")
    monkeypatch.undo()
    for thread in others:
        thread.join(10)
    assert len(others) == 1
    history = real_history()
    reverted = [e.undoes for e in history if e.undoes is not None]
    assert sorted(reverted) == [0, 1, 2]  # each change reverted once, none twice
    assert _open(store_class, path).load() == LabelSet(VOCABULARY)


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_10000_point_batch_is_undone_as_one_new_batch(tmp_path, store_class, file_name):
    serials = np.arange(20_000, dtype=np.int64)
    path = tmp_path / file_name
    store = store_class(path, VOCABULARY, serials)
    store.apply([LabelChange(5, "bird")], source="test")
    store.apply([LabelChange(s, "cat") for s in range(10_000)], source="lasso")
    undone = store.undo(source="test")
    assert len(undone.entries) == 10_000
    assert {e.batch for e in undone.entries} == {undone.entries[0].index}
    assert undone.labels == store.load() == LabelSet(VOCABULARY, {5: "bird"})
    history = store.history()
    assert replay(VOCABULARY, history) == store.load() and len(history) == 20_001
    assert store.undo(source="test").serials() == [5]
    assert store.undo(source="test").entries == ()


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_undo_after_an_edit_outside_the_store_reverts_that_edit(tmp_path, store_class, file_name):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.apply([LabelChange(1000, "cat")], source="test")
    store.label_file.write(path, LabelSet(VOCABULARY, {1000: "cat", 1001: "dog", 1002: "dog"}))
    assert store.undo(source="test").serials() == [1001, 1002]
    assert store.load() == LabelSet(VOCABULARY, {1000: "cat"})
    assert replay(VOCABULARY, store.history()) == store.load()


# A write reads the end of the history only.


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_write_reads_only_the_last_history_line(tmp_path, store_class, file_name, monkeypatch):
    path = tmp_path / file_name
    store = _open(store_class, path)
    for serial in range(1000, 1010):
        store.apply([LabelChange(serial, "cat")], source="test")
    lines = store.history_path.read_bytes().splitlines(keepends=True)
    # Spoil an early line without changing the file's length: a write that parsed the whole
    # history would refuse it; one that reads the end does not see it.
    lines[2] = b"x" * (len(lines[2]) - 1) + b"\n"
    store.history_path.write_bytes(b"".join(lines))
    read_whole: list[Path] = []
    real_read_bytes = history_log.read_bytes

    def recording_read_bytes(path):
        read_whole.append(path)
        return real_read_bytes(path)

    monkeypatch.setattr(history_log, "read_bytes", recording_read_bytes)
    store.apply([LabelChange(1100, "dog")], source="test")
    assert store.history_path not in read_whole
    assert store.load().get(1100) == "dog"
    with pytest.raises(LabelError, match="line 3 is not a valid entry"):
        store.history()
    last = store.history_path.read_bytes().splitlines()[-1]
    assert b'"index":10' in last and b'"serial":1100' in last


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_torn_last_line_is_dropped_by_the_next_write(tmp_path, store_class, file_name):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.apply([LabelChange(1000, "cat")], source="test")
    with store.history_path.open("ab") as log:
        log.write(b'{"index":1,"timest')  # a crash while appending
    store.apply([LabelChange(1001, "dog")], source="test")
    history = store.history()
    assert [e.index for e in history] == [0, 1] and replay(VOCABULARY, history) == store.load()


def test_lines_backwards_reads_every_line_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(history_log, "READ_BLOCK", 7)  # lines longer and shorter than a block
    lines = [b"a\n", b"\n", b"bcdefghijklmnop\n", b"qr\n", b"stuvwxyz0123\n"]
    path = tmp_path / "lines"
    path.write_bytes(b"".join(lines) + b"torn")
    with path.open("rb") as handle:
        end = history_log.end_of_last_line(handle, path.stat().st_size)
        found = list(history_log.lines_backwards(handle, end))
    offsets = np.cumsum([0] + [len(line) for line in lines])[:-1].tolist()
    assert found == list(zip(offsets, lines, strict=True))[::-1]


# The lock.


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_lock_file_that_cannot_be_created_is_not_reported_as_a_busy_lock(
    tmp_path, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name, lock_timeout=5)
    store.lock_path.mkdir()  # the lock file's name is taken by a folder: it cannot be opened
    started = time.monotonic()
    with pytest.raises(LabelError, match="cannot create the lock file") as raised:
        store.apply([LabelChange(1000, "cat")], source="test")
    assert time.monotonic() - started < 2  # told at once, not after the lock timeout
    message = str(raised.value)
    assert "another process" not in message and str(store.lock_path) in message
    assert "Is a directory" in message and "\n" not in message
    assert not isinstance(raised.value, ConcurrentWriteError)
    assert not store.path.exists()


def test_a_label_file_under_proc_names_the_reason_at_once():
    store = CsvLabelStore(Path("/proc/ssvae-labels.csv"), VOCABULARY, SERIALS, lock_timeout=5)
    started = time.monotonic()
    with pytest.raises(LabelError, match=r"cannot create the lock file /proc/ssvae-labels\.csv"):
        store.apply([LabelChange(1000, "cat")], source="test")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_busy_lock_still_says_another_process_is_writing(tmp_path, store_class, file_name):
    store = _open(store_class, tmp_path / file_name, lock_timeout=0.1)
    store.apply([LabelChange(1000, "cat")], source="test")
    with (
        filelock.FileLock(store.lock_path),
        pytest.raises(ConcurrentWriteError, match="another process has been writing"),
    ):
        store.apply([LabelChange(1001, "dog")], source="test")


# Temporaries a crash left behind.


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_write_removes_the_stores_own_stale_temporaries_only(tmp_path, store_class, file_name):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    stale = [f".{file_name}.ab_12x9z.tmp", f".{file_name}.classes.json.k3j4h5g6.tmp"]
    kept = [
        ".other.csv.ab_12x9z.tmp",  # another file's
        f".{file_name}.not-mine.tmp",  # not the temporaries' pattern
        f"{file_name}.ab_12x9z.tmp",
        "notes.txt",
    ]
    for name in stale + kept:
        (tmp_path / name).write_text("left by a crash")
    store.load()  # reading removes nothing: only a write holds the lock
    assert all((tmp_path / name).exists() for name in stale)
    store.apply([LabelChange(1001, "dog")], source="test")
    assert not any((tmp_path / name).exists() for name in stale)
    assert all((tmp_path / name).read_text() == "left by a crash" for name in kept)
    assert store.load() == LabelSet(VOCABULARY, {1000: "cat", 1001: "dog"})
