"""Text tables: files of messages in CSV, JSONL or Parquet, read into validated rows.

A file holds one message per row: an integer id (column `id` or `serial`), which becomes the
sample's serial; the message (`text` or `message`); optionally a class name (`label` or
`class`, empty where unknown); any other columns are kept as strings for display. A malformed
row is refused with a DataError naming it as the file shows it: `line N` in CSV and JSONL
files (the header is line 1), `row N` counting from 0 in Parquet files.

`read_text_table` reads a whole file; `iter_text_tables` reads it in tables of a bounded
number of rows, so that a file of millions of messages is read in bounded memory. Both share
the readers and every check of a row; ids repeated across tables are found by an `IdTally`,
which keeps two integers per row.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.adapters.json_limits import (
    JsonLimitError,
    JsonNestingError,
    JsonNumberError,
    load_json_bounded,
)
from ssvae.domain.echo import one_line, short_repr
from ssvae.domain.errors import DataError

ID_COLUMNS = ("id", "serial")
TEXT_COLUMNS = ("text", "message")
LABEL_COLUMNS = ("label", "class")
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".pq")
_DIGITS = re.compile(r"\s*\+?(\d+)\s*")
_ID_LIMIT = int(np.iinfo(np.int64).max)
_ID_DIGITS = len(str(_ID_LIMIT))  # longer digit strings are out of range: never convert them

IntArray = npt.NDArray[np.int64]


@attrs.frozen(eq=False)
class TextTable:
    """A text file's rows in file order, validated: ids, messages, class names and extras."""

    path: Path
    ids: IntArray
    texts: list[str]
    labels: list[str] | None  # "" where the row has no class
    extras: dict[str, list[str]]
    lines: IntArray | None  # CSV and JSONL: the line each row starts on; Parquet: None
    first_row: int = 0  # the file's row number of the first row (a table read in parts)

    def where(self, row: int) -> str:
        """How the file shows row `row`: 'line N' (text files) or 'row N' (Parquet)."""
        if self.lines is not None:
            return f"line {int(self.lines[row])}"
        return f"row {self.first_row + row}"

    def positions(self) -> IntArray:
        """Where each row is in the file: its line (text files) or its row number (Parquet)."""
        if self.lines is not None:
            return self.lines
        return np.arange(self.first_row, self.first_row + len(self.ids), dtype=np.int64)


@attrs.frozen
class TextColumns:
    """Which columns to read; None means the first default name present."""

    id: str | None = None
    text: str | None = None
    label: str | None = None


# -- reading ---------------------------------------------------------------------------------


def read_text_table(
    path: Path | str,
    id_column: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> TextTable:
    """Read and validate a CSV, JSONL or Parquet file of messages (see the module docstring)."""
    path = _existing(path)
    [(names, cells, lines, _)] = _batches(path, None, None)
    return _table(path, names, cells, lines, TextColumns(id_column, text_column, label_column))


def iter_text_tables(path: Path | str, columns: TextColumns, rows: int) -> Iterator[TextTable]:
    """The file's messages as validated tables of at most `rows` rows each, in file order.

    The id, text and label columns are chosen once, from the header (CSV), the schema
    (Parquet) or the keys of the first `rows` lines (JSONL); a later line missing a key reads
    it as null. Only the chosen columns are kept (no extras). Repeated ids are left to an
    `IdTally` fed every table, so that it names the same rows a whole-file read names.
    """
    path = _existing(path)
    chosen: TextColumns | None = None
    wanted = (*ID_COLUMNS, *TEXT_COLUMNS, *LABEL_COLUMNS, *attrs.astuple(columns))
    for names, cells, lines, first_row in _batches(path, max(1, rows), wanted):
        if chosen is None:
            chosen = _chosen(path, names, columns)
        count = len(next(iter(cells.values()), []))
        picked = {
            name: cells.get(name, [None] * count)
            for name in (chosen.id, chosen.text, chosen.label)
            if name is not None
        }
        yield _table(path, list(picked), picked, lines, chosen, first_row, whole=False)


class IdTally:
    """The ids of a file read in tables, and where each is, to find an id used twice."""

    def __init__(self) -> None:
        self._ids: list[IntArray] = []
        self._positions: list[IntArray] = []
        self._table: TextTable | None = None

    def add(self, table: TextTable) -> None:
        """Count the rows of `table` (the file's tables in order)."""
        self._ids.append(table.ids)
        self._positions.append(table.positions())
        self._table = table

    def check(self) -> None:
        """DataError naming the earliest row whose id an earlier row already has."""
        if self._table is None:
            return
        ids, positions = np.concatenate(self._ids), np.concatenate(self._positions)
        table = self._table
        if table.lines is not None:
            table = attrs.evolve(table, lines=positions)
        else:
            table = attrs.evolve(table, first_row=0)
        _check_unique(table, ids)


def _existing(path: Path | str) -> Path:
    """`path` when it is a file of a known kind; DataError otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: text file not found; check the --input path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown text file type {suffix!r}; use {', '.join(SUFFIXES)}")
    return path


_Batch = tuple[list[str], dict[str, list[Any]], IntArray | None, int]


def _batches(path: Path, rows: int | None, wanted: Sequence[str | None] | None) -> Iterator[_Batch]:
    """(column names, cells by column, lines or None, first row) of every `rows` rows (all at
    once when None); a single batch without rows when the file holds none. Parquet files
    give only the `wanted` columns (all when None): the others are never decoded."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, rows)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path, rows)
    return _read_parquet(path, rows, wanted)


def _in_batches(items: Iterable[Any], rows: int | None) -> Iterator[list[Any]]:
    """`items` as lists of `rows` (one list when None); one empty list when there are none."""
    iterator = iter(items)
    first = True
    while True:
        batch = list(iterator) if rows is None else list(islice(iterator, rows))
        if batch or first:
            yield batch
        if not batch or rows is None or len(batch) < rows:
            return
        first = False


def _read_csv(path: Path, rows: int | None) -> Iterator[_Batch]:
    """Columns as strings and the line each record starts on (quoted texts may span lines)."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long log lines are fine
    start = 1
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; the first line must name the columns")
            _check_header(path, header)
            start = reader.line_num + 1

            def records() -> Iterator[tuple[list[str], int]]:
                nonlocal start
                for record in reader:
                    if record:  # csv gives [] for a blank line
                        if len(record) != len(header):
                            raise DataError(
                                f"{path}: line {start}: {len(record)} fields but the header "
                                f"has {len(header)}; quote texts that hold commas or quotes"
                            )
                        yield record, start
                    start = reader.line_num + 1

            done = 0
            for batch in _in_batches(records(), rows):
                columns = {
                    name: [record[i] for record, _ in batch] for i, name in enumerate(header)
                }
                yield header, columns, np.array([at for _, at in batch], dtype=np.int64), done
                done += len(batch)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({one_line(error, 300)}); save the file as UTF-8"
        ) from None
    except csv.Error as error:
        raise DataError(f"{path}: line {start}: not valid CSV ({one_line(error, 300)})") from None


def _check_header(path: Path, names: Sequence[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(f"{path}: column(s) {_listed(repeated)} appear twice; rename one")


def _listed(names: Sequence[str], most: int = 20) -> str:
    """Column names for a message: the first `most` of them, each cut short."""
    shown = ", ".join(name[:40] for name in names[:most])
    return shown + (f", ... ({len(names):,} in all)" if len(names) > most else "")


def _read_jsonl(path: Path, rows: int | None) -> Iterator[_Batch]:
    """One JSON object per line; keys missing from a line read as null."""

    def objects(handle: Iterable[str]) -> Iterator[tuple[dict[str, Any], int]]:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = load_json_bounded(line)
            except JsonLimitError as error:
                raise DataError(f"{path}: line {number}: {error}{_json_advice(error)}") from None
            if not isinstance(value, dict):
                raise DataError(
                    f"{path}: line {number}: holds a {type(value).__name__}; each line "
                    'must be one JSON object such as {"id": 1, "text": "..."}'
                )
            yield value, number

    try:
        with path.open(encoding="utf-8-sig") as handle:
            done = 0
            for batch in _in_batches(objects(handle), rows):
                names: list[str] = list(dict.fromkeys(key for value, _ in batch for key in value))
                columns = {name: [value.get(name) for value, _ in batch] for name in names}
                yield names, columns, np.array([at for _, at in batch], dtype=np.int64), done
                done += len(batch)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({one_line(error, 300)}); save the file as UTF-8"
        ) from None


def _json_advice(error: JsonLimitError) -> str:
    """How to fix a line past the JSON limits (none for a line that is simply not JSON)."""
    if isinstance(error, JsonNestingError):
        return "; a message file holds flat values (an id, a text, a label)"
    if isinstance(error, JsonNumberError):
        return " (quote it to keep it as text)"
    return ""


def _read_parquet(
    path: Path, rows: int | None, wanted: Sequence[str | None] | None
) -> Iterator[_Batch]:
    """Every row at once (rows None) or `rows` at a time; the `wanted` columns only (all
    when None), so that a wide file's other columns are never decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if rows is None and wanted is None:
            table = pq.read_table(path)
            _check_header(path, table.column_names)
            yield table.column_names, _python_columns(path, table), None, 0
            return
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        _check_header(path, names)
        done = 0
        read = [name for name in names if wanted is None or name in wanted] or names[:1]
        schema = pa.schema([parquet.schema_arrow.field(name) for name in read])
        batches = parquet.iter_batches(batch_size=rows or 2**16, columns=read)
        for batch in _in_batches(batches, None if rows is None else 1):
            table = pa.Table.from_batches(batch, schema)
            yield names, _python_columns(path, table), None, done
            done += table.num_rows
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({one_line(error, 300)})") from None


def _python_columns(path: Path, table: Any) -> dict[str, list[Any]]:
    """Each column of an Arrow table as a list of Python values; DataError where it has none."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        try:
            columns[name] = table.column(name).to_pylist()
        except (OverflowError, ValueError, pa.ArrowException) as error:
            # e.g. a date or timestamp beyond Python's datetime range (years 1 to 9999)
            raise DataError(
                f"{path}: column {short_repr(name)}: its values cannot be read as Python values "
                f"({one_line(error, 300)}); store ids as integers and messages and labels as "
                "strings"
            ) from None
    return columns


def _column(
    path: Path, names: Sequence[str], given: str | None, defaults: Sequence[str], role: str
) -> str | None:
    """The column playing `role`: the given name (which must exist) or the first default."""
    if given:
        if given not in names:
            raise DataError(
                f"{path}: no {role} column {short_repr(given)} (columns: {_listed(names)}); "
                f"name an existing one with --{role}-column"
            )
        return given
    return next((name for name in defaults if name in names), None)


def _chosen(path: Path, names: Sequence[str], columns: TextColumns) -> TextColumns:
    """The id, text and label columns among `names`; DataError where one cannot be chosen."""
    id_name = _column(path, names, columns.id, ID_COLUMNS, "id")
    text_name = _column(path, names, columns.text, TEXT_COLUMNS, "text")
    label_name = _column(path, names, columns.label, LABEL_COLUMNS, "label")
    for role, found, defaults in (("id", id_name, ID_COLUMNS), ("text", text_name, TEXT_COLUMNS)):
        if found is None:
            raise DataError(
                f"{path}: no {role} column {' or '.join(map(repr, defaults))} "
                f"(columns: {_listed(names) or 'none'}); add one or name it with --{role}-column"
            )
    assert id_name is not None and text_name is not None
    chosen = [name for name in (id_name, text_name, label_name) if name is not None]
    if len(set(chosen)) < len(chosen):
        raise DataError(f"{path}: the id, text and label columns must be different columns")
    return TextColumns(id_name, text_name, label_name)


def _table(
    path: Path,
    names: Sequence[str],
    cells: dict[str, list[Any]],
    lines: IntArray | None,
    columns: TextColumns,
    first_row: int = 0,
    whole: bool = True,
) -> TextTable:
    """The rows of `cells` checked; a whole file's also for repeated ids and with extras."""
    chosen = _chosen(path, names, columns)
    assert chosen.id is not None and chosen.text is not None
    probe = TextTable(path, np.zeros(0, np.int64), [], None, {}, lines, first_row)
    count = len(cells[chosen.id])
    if count == 0:
        raise DataError(f"{path}: holds no messages")
    ids = _ids(probe, cells[chosen.id])
    if whole:
        _check_unique(probe, ids)
    texts = _texts(probe, cells[chosen.text])
    labels = None if chosen.label is None else _labels(probe, cells[chosen.label])
    kept = [name for name in names if whole and name not in attrs.astuple(chosen)]
    shown = {name: [_display(value) for value in cells[name]] for name in kept}
    return TextTable(path, ids, texts, labels, shown, lines, first_row)


def _ids(table: TextTable, values: list[Any]) -> IntArray:
    ids = np.zeros(len(values), np.int64)
    limit = _ID_LIMIT
    for row, value in enumerate(values):
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (match := _DIGITS.fullmatch(value)):
            digits = match.group(1).lstrip("0") or "0"
            number = int(digits) if len(digits) <= _ID_DIGITS else _ID_LIMIT + 1
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if value is None or value == "":
            raise DataError(
                f"{table.path}: {table.where(row)}: the id is missing; give every row an "
                "integer id >= 0"
            )
        if number is None or number < 0:
            raise DataError(
                f"{table.path}: {table.where(row)}: id {short_repr(value)} is not an integer "
                ">= 0; ids name the messages and must be non-negative integers"
            )
        if number > limit:
            raise DataError(
                f"{table.path}: {table.where(row)}: id {short_repr(value)} is too large; ids "
                f"go up to {limit}"
            )
        ids[row] = number
    return ids


def _check_unique(table: TextTable, ids: IntArray) -> None:
    """DataError naming the earliest row whose id an earlier row of `table` already has."""
    order = np.argsort(ids, kind="stable")
    repeats = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeats.size:
        seconds = order[repeats + 1]
        at = int(np.argmin(seconds))  # the earliest second occurrence names the row to fix
        row, first = int(seconds[at]), int(order[repeats[at]])
        raise DataError(
            f"{table.path}: {table.where(row)}: id {int(ids[row])} repeats "
            f"{table.where(first)}; give every row its own id"
        )


def _texts(table: TextTable, values: list[Any]) -> list[str]:
    for row, value in enumerate(values):
        if not isinstance(value, str):
            what = "missing" if value is None else f"{short_repr(value)}, not text"
            raise DataError(
                f"{table.path}: {table.where(row)}: the message is {what}; give every row a text"
            )
        if not value.strip():
            raise DataError(
                f"{table.path}: {table.where(row)}: the message is empty; remove the row or "
                "give it a text"
            )
    return list(values)


def _labels(table: TextTable, values: list[Any]) -> list[str]:
    labels: list[str] = []
    for row, value in enumerate(values):
        if value is None or value == "":
            labels.append("")
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise DataError(
                f"{table.path}: {table.where(row)}: label {short_repr(value)} is not a class "
                "name; "
                "write a class name, or leave it empty for unknown"
            )
        if value != value.strip():
            raise DataError(
                f"{table.path}: {table.where(row)}: label {short_repr(value)} has spaces around "
                "it; "
                "remove them (or leave the label empty for unknown)"
            )
        labels.append(value)
    return labels


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
