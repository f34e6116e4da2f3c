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
import json
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs
import filelock
import numpy as np
import numpy.typing as npt

from ssvae.adapters.files import atomic_write_bytes
from ssvae.adapters.json_limits import load_json_bounded
from ssvae.adapters.labels.classes_file import classes_path, read_vocabulary, write_vocabulary
from ssvae.domain.errors import ConcurrentWriteError, LabelError
from ssvae.domain.labels import (
    ClassVocabulary,
    HistoryEntry,
    LabelChange,
    LabelSet,
    Undone,
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
_READ_BLOCK = 1 << 16


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
        data = _read_bytes(Path(path))
        if data is None:
            raise LabelError(f"label file {path} does not exist; check the path")
        return self.decode(data, str(path), vocabulary, np.asarray(valid_serials, np.int64))

    def write(self, path: Path, labels: LabelSet) -> None:
        """Replace the file at `path` with `labels` atomically (LabelFileCodec)."""
        data = self.encode(labels)
        try:
            atomic_write_bytes(Path(path), data)
        except OSError as error:
            raise _write_error(Path(path), error) from error


def labels_from_rows(
    rows: LabelRows,
    origin: str,
    vocabulary: ClassVocabulary,
    valid_serials: npt.NDArray[np.int64],
) -> LabelSet:
    """A LabelSet from parsed rows; LabelError naming the first bad row in file order."""
    valid = set(valid_serials.tolist())
    first_row: dict[int, int] = {}
    for row, (serial, name) in enumerate(zip(rows.serials, rows.names, strict=True)):
        where = f"{origin} {rows.where(row)}"
        if serial not in valid:
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
class _Logged:
    """A history entry with what the log adds: its batch, the hash it produced, its offset."""

    entry: HistoryEntry
    batch: int
    labels_sha256: str
    offset: int


class _History:
    """The history file, read under the lock from its end.

    A write reads only the last complete record: its index gives the count, and its hash
    says whether the label file needs reconciling, so a write costs the same however long
    the history is. Undo reads back from the end only as far as the batch it reverts;
    `records` (reconciliation, `history()`) reads the whole file.
    """

    def __init__(self, path: Path, parse_line: Callable[[bytes, int | None, int], _Logged]) -> None:
        self._path = path
        self._parse_line = parse_line  # (line, position or None when unknown, offset) -> record
        self.size = 0
        self.complete_length = 0  # anything after it is a torn write
        self.count = 0
        self._last: _Logged | None = None
        with _opened(path) as handle:
            if handle is None:
                return
            self.size = os.fstat(handle.fileno()).st_size
            self.complete_length = _end_of_last_line(handle, self.size)
            for offset, line in _lines_backwards(handle, self.complete_length):
                self._last = self._parse_line(line, None, offset)
                break
        if self._last is not None:
            self.count = self._last.entry.index + 1

    def last(self) -> _Logged | None:
        """The last complete record."""
        return self._last

    @functools.cached_property
    def records(self) -> tuple[_Logged, ...]:
        """Every complete record, oldest first."""
        data = (_read_bytes(self._path) or b"")[: self.complete_length]
        records: list[_Logged] = []
        offset = 0
        for line in data.splitlines(keepends=True):
            records.append(self._parse_line(line, len(records), offset))
            offset += len(line)
        return tuple(records)

    def newest_first(self, kept: int) -> Iterator[HistoryEntry]:
        """The first `kept` entries, newest first, parsed lazily from the end of the file."""
        if "records" in self.__dict__ or kept != self.count:  # read in full already
            yield from (record.entry for record in reversed(self.records[:kept]))
            return
        with _opened(self._path) as handle:
            if handle is None:
                return
            lines = _lines_backwards(handle, self.complete_length)
            for position, (offset, line) in zip(range(kept - 1, -1, -1), lines, strict=False):
                yield self._parse_line(line, position, offset).entry


@attrs.frozen
class _Reconciled:
    """How much of the history explains the label file, and what must be added to it."""

    kept: int  # complete history records that stay
    keep_bytes: int  # the history file's prefix that stays
    external: tuple[HistoryEntry, ...]  # entries for changes made outside the store

    def entries(self, history: _History) -> tuple[HistoryEntry, ...]:
        return tuple(r.entry for r in history.records[: self.kept]) + self.external

    def newest_first(self, history: _History) -> Iterator[HistoryEntry]:
        """The reconciled history, newest first, read from the end only as far as needed."""
        yield from reversed(self.external)
        yield from history.newest_first(self.kept)


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
        self._valid_serials = np.unique(np.asarray(valid_serials, dtype=np.int64))
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
                raise _write_error(self.path, error) from error
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
                f"cannot create the lock file {self.lock_path}: {_reason(self.lock_path, error)}; "
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
                f"cannot lock {self.lock_path}: {_reason(self.lock_path, error)}; "
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
            raise _read_error(self.path, error) from error
        vocabulary = read_vocabulary(self.classes_path, self.base_vocabulary)
        if data is None:
            return _Snapshot(LabelSet(vocabulary), _EMPTY_SHA256, None)
        labels = self.label_file.decode(data, str(self.path), vocabulary, self._valid_serials)
        return _Snapshot(labels, hashlib.sha256(data).hexdigest(), mtime)

    def _read_history(self, vocabulary: ClassVocabulary) -> _History:
        return _History(self.history_path, functools.partial(self._parse_history_line, vocabulary))

    def _parse_history_line(
        self, vocabulary: ClassVocabulary, line: bytes, position: int | None, offset: int
    ) -> _Logged:
        try:
            fields = load_json_bounded(line)
            entry, batch, labels_sha256 = _history_record(fields, position, vocabulary)
        except (ValueError, TypeError, RecursionError) as error:  # JSON, UTF-8, field errors
            where = "the last line" if position is None else f"line {position + 1}"
            raise LabelError(
                f"history {self.history_path} {where} is not a valid entry "
                f"({error}); restore that file, or delete it to start a new history "
                f"(the labels themselves are kept in {self.path})"
            ) from None
        return _Logged(entry, batch, labels_sha256, offset)

    def _reconcile(self, snapshot: _Snapshot, history: _History) -> _Reconciled:
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
            start = _last_batch_start(records)
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
        history: _History,
        reconciled: _Reconciled,
        labels: LabelSet,
        entries: Sequence[HistoryEntry],
    ) -> None:
        lines = _history_lines(reconciled.external, snapshot.sha256)
        committed_length = reconciled.keep_bytes + len(lines)  # where a failed write rolls back
        data = self.label_file.encode(labels) if entries else None
        if data is not None:
            lines += _history_lines(entries, hashlib.sha256(data).hexdigest())
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


def _history_record(
    fields: Any, position: int | None, vocabulary: ClassVocabulary
) -> tuple[HistoryEntry, int, str]:
    """The entry, batch and label hash in one parsed history line; TypeError when malformed."""
    if not isinstance(fields, dict):
        raise TypeError("not a JSON object")
    entry = HistoryEntry(
        index=_field(fields, "index", int),
        timestamp=float(_field(fields, "timestamp", int | float)),
        serial=_field(fields, "serial", int),
        previous=_field(fields, "previous", str | None),
        new=_field(fields, "new", str | None),
        source=_field(fields, "source", str),
        undoes=_field(fields, "undoes", int | None),
        batch=_field(fields, "batch", int),
    )
    if entry.index < 0 or (position is not None and entry.index != position):
        raise TypeError(f"index {entry.index} where {position or 'a count'} was expected")
    for name in (entry.previous, entry.new):
        if name is not None and name not in vocabulary:
            raise TypeError(f"class {one_line(repr(name))} is not in the vocabulary")
    return entry, entry.batch_id, _field(fields, "labels_sha256", str)


def _field(fields: dict[str, Any], key: str, kind: Any) -> Any:
    if key not in fields:
        raise TypeError(f"field {key!r} is missing")
    value = fields[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"field {key!r} has the wrong type")
    return value


def _history_lines(entries: Sequence[HistoryEntry], labels_sha256: str) -> bytes:
    """JSON lines for one batch: the entries of one write, with the hash of its label file."""
    if not entries:
        return b""
    batch = entries[0].index
    return b"".join(
        json.dumps(
            {**attrs.asdict(entry), "batch": batch, "labels_sha256": labels_sha256},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        + b"\n"
        for entry in entries
    )


def _last_batch_start(records: Sequence[_Logged]) -> int:
    start = len(records) - 1
    while start > 0 and records[start - 1].batch == records[-1].batch:
        start -= 1
    return start


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO | None]:
    """`path` open for reading; None when it does not exist."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        raise _read_error(path, error) from error
    with handle:
        yield handle


def _end_of_last_line(handle: BinaryIO, size: int) -> int:
    """The length of the file's complete lines: the offset after its last newline."""
    end = size
    while end > 0:
        start = max(0, end - _READ_BLOCK)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _lines_backwards(handle: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of the file's first `end` bytes (which end with a
    newline), last line first, reading blocks from the end: the cost is the lines read."""
    pending = b""  # the tail of the part read so far that is not yet a whole line
    position = end
    while position > 0:
        start = max(0, position - _READ_BLOCK)
        handle.seek(start)
        pending = handle.read(position - start) + pending
        position = start
        line_end = len(pending)
        cut = pending.rfind(b"\n", 0, line_end - 1)
        while cut >= 0:
            yield position + cut + 1, pending[cut + 1 : line_end]
            line_end = cut + 1
            cut = pending.rfind(b"\n", 0, line_end - 1)
        pending = pending[:line_end]
    if pending:
        yield 0, pending


@contextlib.contextmanager
def _open_for_update(path: Path) -> Iterator[BinaryIO]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as handle:
        yield handle


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _read_bytes(path: Path) -> bytes | None:
    """The content of `path`; None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _read_error(path, error) from error


def one_line(value: object, limit: int = 80) -> str:
    """`value` as text for a message: on one line, cut to about `limit` characters (a value
    read from a file can be a megabyte long, or a library's error span several lines)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _read_error(path: Path, error: OSError) -> LabelError:
    return LabelError(
        f"cannot read {path}: {_reason(path, error)}; check that it is a readable file"
    )


def _reason(path: Path, error: OSError) -> str:
    """Why `error` happened at `path`, in words: a folder on the way that is a file is named
    (the OS says only "Not a directory" or "File exists")."""
    for parent in path.parents:
        if parent.is_file():
            return f"{parent} is a file, not a folder"
    return str(error.strerror or error)


def _write_error(path: Path, error: OSError) -> LabelError:
    return LabelError(
        f"could not write the labels {path}: {_reason(path, error)}; the labels are "
        "unchanged: free disk space or fix the folder's permissions, then retry"
    )
