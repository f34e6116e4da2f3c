"""What the CSV and Parquet label stores share: validated label files, history, lock, writes.

Beside a store at `labels.csv` live `labels.csv.history.jsonl` (append-only, one JSON object
per change), `labels.csv.lock` (the inter-process lock that writers take) and, once a user
added a class the dataset lacks, `labels.csv.classes.json` (the vocabulary; `classes_file.py`).

The label file is the source of truth. `apply` and `undo` take the lock, re-read the label
file, the vocabulary and the end of the history, decide the changes (`undo` picks the latest
batch not undone yet from the history as it is now, so no other writer's change can come
between its choice and its write), validate them, and then write in this order:

0. when the changes bring new classes, replace the vocabulary file atomically;
1. append the new history entries, each carrying the SHA-256 of the label file they produce,
   and fsync the history;
2. replace the label file atomically (temporary file, fsync, rename, directory fsync);
3. return: only now is the change acknowledged.

The history is a write-ahead log. An acknowledged change has passed step 2, so it is in the
label file and no crash can lose it. A crash between 1 and 2 leaves the old label file and a
last history batch whose hash does not match it: a change that never happened and was never
acknowledged. Readers see that replaying the history without that batch gives the label file
and leave the batch out; the next writer truncates it away. A failure that is not a crash
(disk full, a failed rename) truncates the history back before `apply` raises. The other
order (label file first) would leave, after a crash, label changes missing from the history,
which could not be told apart from a hand edit and could not be undone.

The vocabulary comes first because classes are only ever added: a crash after step 0 leaves a
class that no label uses yet, which is harmless (the user meant to add it), while the other
order could leave a label naming a class the stored vocabulary lacks, and the store could not
be read. For the same reason readers read the label file before the vocabulary: a label they
see was written after its class, so the vocabulary read next has it.

When the last entry's hash matches the label file, the history is consistent without being
replayed: a write reads only that last line (its index gives the count), so its cost does not
grow with the history, and undo reads back from the end only as far as the batch it reverts.
Each write also removes the temporaries an earlier crash left beside the label file (the lock
is held, so no write of the store is using them). When the hash does not match, and the
history minus its last batch does not explain the file either, the file was changed outside
the store (edited by hand, or the history was deleted): the difference is recorded as entries
whose source is `EXTERNAL_SOURCE`, timestamped with the file's modification time, so that the
history always replays to the labels. A torn last line
(no final newline, from a crash while appending) is ignored and truncated by the next writer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

import attrs
import filelock
import numpy as np
import numpy.typing as npt

from ssvae.adapters.files import atomic_write_bytes
from ssvae.adapters.json_limits import load_json_bounded
from ssvae.adapters.labels.classes_file import classes_path, read_vocabulary, write_vocabulary
from ssvae.adapters.labels.history_log import (
    HistoryLog,
    Logged,
    history_lines,
    history_record,
    last_batch_start,
)
from ssvae.adapters.labels.label_files import read_bytes, read_error, reason, write_error
from ssvae.domain.echo import one_line
from ssvae.domain.errors import ConcurrentWriteError, LabelError
from ssvae.domain.labels import (
    ClassVocabulary,
    HistoryEntry,
    LabelChange,
    LabelSet,
    Undone,
    ascending_unique,
    changes_between,
    describe_serials,
    record_changes,
    replay,
    undo_batch,
    validate_changes,
)

EXTERNAL_SOURCE = "external edit"
DEFAULT_LOCK_TIMEOUT = 10.0
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the hash of a label file that does not exist
# The names `atomic_writer` gives its temporaries: `.<file name>.<8 of [a-z0-9_]>.tmp`.
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")


@attrs.frozen
class LabelRows:
    """The rows of a label file as parsed, before validation against the dataset."""

    serials: list[int]
    names: list[str]
    where: Callable[[int], str]  # row position -> "line 7" / "row 6", for error messages


class LabelFile(ABC):
    """A label file format: parse and render bytes; validation and file access are shared."""

    @abstractmethod
    def parse(self, data: bytes, origin: str) -> LabelRows:
        """The rows in `data`; LabelError naming `origin` and the line when malformed."""

    @abstractmethod
    def encode(self, labels: LabelSet) -> bytes:
        """The file content for `labels`, rows sorted by serial."""

    def decode(
        self,
        data: bytes,
        origin: str,
        vocabulary: ClassVocabulary,
        valid_serials: npt.NDArray[np.int64],
    ) -> LabelSet:
        """The labels in `data`, validated against the vocabulary and the dataset's serials."""
        return labels_from_rows(self.parse(data, origin), origin, vocabulary, valid_serials)

    def read(
        self, path: Path, vocabulary: ClassVocabulary, valid_serials: npt.NDArray[np.int64]
    ) -> LabelSet:
        """The labels in the file at `path` (LabelFileCodec)."""
        data = read_bytes(Path(path))
        if data is None:
            raise LabelError(f"label file {path} does not exist; check the path")
        return self.decode(data, str(path), vocabulary, np.asarray(valid_serials, np.int64))

    def write(self, path: Path, labels: LabelSet) -> None:
        """Replace the file at `path` with `labels` atomically (LabelFileCodec)."""
        data = self.encode(labels)
        try:
            atomic_write_bytes(Path(path), data)
        except OSError as error:
            raise write_error(Path(path), error) from error


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def labels_from_rows(
    rows: LabelRows,
    origin: str,
    vocabulary: ClassVocabulary,
    valid_serials: npt.NDArray[np.int64],
) -> LabelSet:
    """A LabelSet from parsed rows; LabelError naming the first bad row in file order."""
    # Vectorised: a set of a million-row pool's serials cost 28 ms at every key press. A
    # serial beyond int64 is in no pool (and numpy could not hold it).
    fits = np.array([_INT64_MIN <= s <= _INT64_MAX for s in rows.serials], bool)
    held = np.fromiter(
        (s if ok else 0 for s, ok in zip(rows.serials, fits, strict=True)), np.int64, fits.size
    )
    known = fits & np.isin(held, valid_serials)
    first_row: dict[int, int] = {}
    for row, (serial, name) in enumerate(zip(rows.serials, rows.names, strict=True)):
        where = f"{origin} {rows.where(row)}"
        if not known[row]:
            raise LabelError(
                f"{where}: serial {serial} is not in the dataset "
                f"({describe_serials(valid_serials)}); correct the serial or remove the row"
            )
        if name not in vocabulary:
            shown = ", ".join(vocabulary.names[:20]) + (", ..." if len(vocabulary) > 20 else "")
            raise LabelError(
                f"{where}: class {one_line(repr(name))} is not in the vocabulary ({shown}); "
                "correct the class name or remove the row"
            )
        if serial in first_row:
            raise LabelError(
                f"{where}: serial {serial} is labelled again (first at "
                f"{rows.where(first_row[serial])}); keep one row per serial"
            )
        first_row[serial] = row
    return LabelSet(vocabulary, dict(zip(rows.serials, rows.names, strict=True)))


@attrs.frozen
class _Snapshot:
    """The label file as read: its labels, the SHA-256 of its bytes, its modification time."""

    labels: LabelSet
    sha256: str
    mtime: float | None


@attrs.frozen
class _Reconciled:
    """How much of the history explains the label file, and what must be added to it."""

    kept: int  # complete history records that stay
    keep_bytes: int  # the history file's prefix that stays
    external: tuple[HistoryEntry, ...]  # entries for changes made outside the store

    def entries(self, history: HistoryLog) -> tuple[HistoryEntry, ...]:
        return tuple(r.entry for r in history.records[: self.kept]) + self.external

    def newest_first(self, history: HistoryLog) -> Iterator[HistoryEntry]:
        """The reconciled history, newest first, read from the end only as far as needed."""
        yield from reversed(self.external)
        yield from history.newest_first(self.kept)


def _sorted_unique(serials: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """`serials` sorted, without repeats: as given when they are so already (a workspace's
    pool is), since np.unique of 10M serials took 8 s and left 0.4 GB resident."""
    values = np.asarray(serials, dtype=np.int64)
    if values.ndim == 1 and ascending_unique(values):
        return values
    return np.unique(values)


class LabelFileStore:
    """A LabelStore on one label file, with its history and lock beside it."""

    label_file: ClassVar[LabelFile]

    def __init__(
        self,
        path: Path,
        vocabulary: ClassVocabulary,
        valid_serials: npt.NDArray[np.int64],
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.history_path = self.path.with_name(self.path.name + ".history.jsonl")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.classes_path = classes_path(self.path)
        self.base_vocabulary = vocabulary  # the dataset's classes; added ones follow them
        self._valid_serials = _sorted_unique(valid_serials)
        self._lock_timeout = float(lock_timeout)
        self._lock = filelock.FileLock(self.lock_path, timeout=self._lock_timeout)
        self._clock = clock

    def load(self) -> LabelSet:
        """The current labels; an empty set when the file does not exist yet."""
        return self._read_labels().labels

    def history(self) -> Sequence[HistoryEntry]:
        """Every change, oldest first; replaying it gives `load()`."""
        if not self.path.exists() and not self.history_path.exists():
            return ()  # nothing to lock: reading a store that does not exist creates nothing
        with self._locked():
            snapshot = self._read_labels()
            history = self._read_history(snapshot.labels.vocabulary)
            return self._reconcile(snapshot, history).entries(history)

    def apply(
        self, changes: Sequence[LabelChange], source: str, *, new_classes: Sequence[str] = ()
    ) -> LabelSet:
        """Validate `changes` (with `new_classes` added to the vocabulary), then record and
        persist them under the lock (module docstring); nothing is written when invalid."""
        changes = list(changes)
        return self._commit(lambda _: changes, source, new_classes)[0]

    def undo(self, source: str) -> Undone:
        """Revert the latest batch not undone yet as one new batch, choosing it under the
        lock from the history as it is then (another writer's change cannot slip between)."""
        return Undone(*self._commit(undo_batch, source, ()))

    def _commit(
        self,
        decide: Callable[[Iterator[HistoryEntry]], list[LabelChange]],
        source: str,
        new_classes: Sequence[str],
    ) -> tuple[LabelSet, tuple[HistoryEntry, ...]]:
        """Under the lock: the changes `decide` makes of the history (newest first), checked
        and written in the order of the module docstring; nothing is written when invalid."""
        with self._locked():
            snapshot = self._read_labels()
            stored = snapshot.labels.vocabulary
            vocabulary = stored.with_classes(new_classes)
            history = self._read_history(stored)
            reconciled = self._reconcile(snapshot, history)
            changes = decide(reconciled.newest_first(history))
            validate_changes(changes, vocabulary, self._valid_serials)
            labels, entries = record_changes(
                LabelSet(vocabulary, dict(snapshot.labels)),
                changes,
                source=source,
                first_index=reconciled.kept + len(reconciled.external),
                timestamp=self._clock(),
            )
            try:
                self._remove_stale_temporaries()
                if vocabulary != stored:
                    write_vocabulary(self.classes_path, vocabulary)
                self._write(snapshot, history, reconciled, labels, entries)
            except OSError as error:
                raise write_error(self.path, error) from error
            return labels, entries

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporaries a crashed write left beside the label file (or its
        vocabulary). Only names of the pattern `atomic_writer` gives these two files match,
        and the lock is held, so no write of this store is using one."""
        names = {self.path.name, self.classes_path.name}
        try:
            candidates = list(os.scandir(self.path.parent))
        except OSError:
            return  # a folder that cannot be listed: the write itself will say what is wrong
        for candidate in candidates:
            match = _TEMPORARY.fullmatch(candidate.name)
            if match and match.group(1) in names and candidate.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(candidate.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            # filelock retries a lock file it cannot create until its timeout, and then
            # reports a busy lock: opening it first tells "cannot" from "busy".
            os.close(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as error:
            raise LabelError(
                f"cannot create the lock file {self.lock_path}: {reason(self.lock_path, error)}; "
                "keep the labels in a folder where you may create files"
            ) from None
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise ConcurrentWriteError(
                f"another process has been writing the labels {self.path} for more than "
                f"{self._lock_timeout:g} s (lock {self.lock_path}); retry when it has "
                "finished, or stop the other ssvae process that uses these labels"
            ) from None
        except OSError as error:
            raise LabelError(
                f"cannot lock {self.lock_path}: {reason(self.lock_path, error)}; "
                "keep the labels in a folder where you may create files"
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _read_labels(self) -> _Snapshot:
        """The label file, then the vocabulary (in this order: module docstring)."""
        data: bytes | None = None
        mtime: float | None = None
        try:
            with self.path.open("rb") as handle:
                data = handle.read()
                mtime = os.fstat(handle.fileno()).st_mtime
        except FileNotFoundError:
            pass
        except OSError as error:
            raise read_error(self.path, error) from error
        vocabulary = read_vocabulary(self.classes_path, self.base_vocabulary)
        if data is None:
            return _Snapshot(LabelSet(vocabulary), _EMPTY_SHA256, None)
        labels = self.label_file.decode(data, str(self.path), vocabulary, self._valid_serials)
        return _Snapshot(labels, hashlib.sha256(data).hexdigest(), mtime)

    def _read_history(self, vocabulary: ClassVocabulary) -> HistoryLog:
        parse = functools.partial(self._parse_history_line, vocabulary)
        return HistoryLog(self.history_path, parse)

    def _parse_history_line(
        self, vocabulary: ClassVocabulary, line: bytes, position: int | None, offset: int
    ) -> Logged:
        try:
            fields = load_json_bounded(line)
            entry, batch, labels_sha256 = history_record(fields, position, vocabulary)
        except (ValueError, TypeError, RecursionError) as error:  # JSON, UTF-8, field errors
            where = "the last line" if position is None else f"line {position + 1}"
            raise LabelError(
                f"history {self.history_path} {where} is not a valid entry "
                f"({error}); restore that file, or delete it to start a new history "
                f"(the labels themselves are kept in {self.path})"
            ) from None
        return Logged(entry, batch, labels_sha256, offset)

    def _reconcile(self, snapshot: _Snapshot, history: HistoryLog) -> _Reconciled:
        keep = history.complete_length
        last = history.last()
        if last is not None and last.labels_sha256 == snapshot.sha256:
            return _Reconciled(history.count, keep, ())  # the usual case: no replay needed
        records = history.records
        entries = tuple(r.entry for r in records)
        vocabulary = snapshot.labels.vocabulary
        full = replay(vocabulary, entries)
        if full == snapshot.labels:
            return _Reconciled(len(entries), keep, ())
        if records:
            start = last_batch_start(records)
            if replay(vocabulary, entries[:start]) == snapshot.labels:
                # A crash between appending the history and replacing the label file.
                return _Reconciled(start, records[start].offset, ())
        _, external = record_changes(
            full,
            changes_between(full, snapshot.labels),
            source=EXTERNAL_SOURCE,
            first_index=len(entries),
            timestamp=snapshot.mtime if snapshot.mtime is not None else self._clock(),
        )
        return _Reconciled(len(entries), keep, external)

    def _write(
        self,
        snapshot: _Snapshot,
        history: HistoryLog,
        reconciled: _Reconciled,
        labels: LabelSet,
        entries: Sequence[HistoryEntry],
    ) -> None:
        lines = history_lines(reconciled.external, snapshot.sha256)
        committed_length = reconciled.keep_bytes + len(lines)  # where a failed write rolls back
        data = self.label_file.encode(labels) if entries else None
        if data is not None:
            lines += history_lines(entries, hashlib.sha256(data).hexdigest())
        if not lines and reconciled.keep_bytes == history.size:
            return  # nothing changed and nothing to repair: leave both files alone
        self.history_path.parent.mkdir(parents=True, exist_ok=True)
        with _open_for_update(self.history_path) as log:
            log.truncate(reconciled.keep_bytes)  # drop a torn line or an uncommitted batch
            log.seek(reconciled.keep_bytes)
            log.write(lines)
            _sync(log)
            if data is None:
                return
            try:
                atomic_write_bytes(self.path, data)
            except BaseException:
                log.truncate(committed_length)  # the change did not happen: forget it
                _sync(log)
                raise


@contextlib.contextmanager
def _open_for_update(path: Path) -> Iterator[BinaryIO]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as handle:
        yield handle


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
