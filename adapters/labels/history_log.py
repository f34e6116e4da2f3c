"""The label store's history file: one JSON line per change, read from its end.

Each line is a `HistoryEntry` with the batch it was written in and the SHA-256 of the label
file that batch produced (the write-ahead log of `_store.py`). Lines are read backwards in
blocks, so a write, which needs only the last line, costs the same however long the history.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from ssvae.adapters.labels.label_files import read_bytes, read_error
from ssvae.domain.echo import one_line
from ssvae.domain.labels import ClassVocabulary, HistoryEntry

READ_BLOCK = 1 << 16


@attrs.frozen
class Logged:
    """A history entry with what the log adds: its batch, the hash it produced, its offset."""

    entry: HistoryEntry
    batch: int
    labels_sha256: str
    offset: int


class HistoryLog:
    """The history file, read under the lock from its end.

    A write reads only the last complete record: its index gives the count, and its hash
    says whether the label file needs reconciling, so a write costs the same however long
    the history is. Undo reads back from the end only as far as the batch it reverts;
    `records` (reconciliation, `history()`) reads the whole file.
    """

    def __init__(self, path: Path, parse_line: Callable[[bytes, int | None, int], Logged]) -> None:
        self._path = path
        self._parse_line = parse_line  # (line, position or None when unknown, offset) -> record
        self.size = 0
        self.complete_length = 0  # anything after it is a torn write
        self.count = 0
        self._last: Logged | None = None
        with opened(path) as handle:
            if handle is None:
                return
            self.size = os.fstat(handle.fileno()).st_size
            self.complete_length = end_of_last_line(handle, self.size)
            for offset, line in lines_backwards(handle, self.complete_length):
                self._last = self._parse_line(line, None, offset)
                break
        if self._last is not None:
            self.count = self._last.entry.index + 1

    def last(self) -> Logged | None:
        """The last complete record."""
        return self._last

    @functools.cached_property
    def records(self) -> tuple[Logged, ...]:
        """Every complete record, oldest first."""
        data = (read_bytes(self._path) or b"")[: self.complete_length]
        records: list[Logged] = []
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
        with opened(self._path) as handle:
            if handle is None:
                return
            lines = lines_backwards(handle, self.complete_length)
            for position, (offset, line) in zip(range(kept - 1, -1, -1), lines, strict=False):
                yield self._parse_line(line, position, offset).entry


def history_record(
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


def history_lines(entries: Sequence[HistoryEntry], labels_sha256: str) -> bytes:
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


def last_batch_start(records: Sequence[Logged]) -> int:
    start = len(records) - 1
    while start > 0 and records[start - 1].batch == records[-1].batch:
        start -= 1
    return start


@contextlib.contextmanager
def opened(path: Path) -> Iterator[BinaryIO | None]:
    """`path` open for reading; None when it does not exist."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        raise read_error(path, error) from error
    with handle:
        yield handle


def end_of_last_line(handle: BinaryIO, size: int) -> int:
    """The length of the file's complete lines: the offset after its last newline."""
    end = size
    while end > 0:
        start = max(0, end - READ_BLOCK)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def lines_backwards(handle: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of the file's first `end` bytes (which end with a
    newline), last line first, reading blocks from the end: the cost is the lines read."""
    pending = b""  # the tail of the part read so far that is not yet a whole line
    position = end
    while position > 0:
        start = max(0, position - READ_BLOCK)
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
