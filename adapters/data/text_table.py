"""Text tables: files of messages in CSV, JSONL or Parquet, read into validated rows.

A file holds one message per row: an integer id (column `id` or `serial`), which becomes the
sample's serial; the message (`text` or `message`); optionally a class name (`label` or
`class`, empty where unknown); any other columns are kept as strings for display. A malformed
row is refused with a DataError naming it as the file shows it: `line N` in CSV and JSONL
files (the header is line 1), `row N` counting from 0 in Parquet files.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
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

    def where(self, row: int) -> str:
        """How the file shows row `row`: 'line N' (text files) or 'row N' (Parquet)."""
        return f"line {int(self.lines[row])}" if self.lines is not None else f"row {row}"


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
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: text file not found; check the --input path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        names, cells, lines = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        names, cells, lines = _read_jsonl(path)
    elif suffix in (".parquet", ".pq"):
        names, cells = _read_parquet(path)
        lines = None
    else:
        raise DataError(f"{path}: unknown text file type {suffix!r}; use {', '.join(SUFFIXES)}")
    return _table(path, names, cells, lines, TextColumns(id_column, text_column, label_column))


def _read_csv(path: Path) -> tuple[list[str], dict[str, list[Any]], IntArray]:
    """Columns as strings and the line each record starts on (quoted texts may span lines)."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long log lines are fine
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; the first line must name the columns")
            _check_header(path, header)
            records: list[list[str]] = []
            lines: list[int] = []
            start = reader.line_num + 1
            for record in reader:
                if record:  # csv gives [] for a blank line
                    if len(record) != len(header):
                        raise DataError(
                            f"{path}: line {start}: {len(record)} fields but the header has "
                            f"{len(header)}; quote texts that hold commas or quotes"
                        )
                    records.append(record)
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({one_line(error, 300)}); save the file as UTF-8"
        ) from None
    except csv.Error as error:
        raise DataError(f"{path}: line {start}: not valid CSV ({one_line(error, 300)})") from None
    columns = {name: [record[i] for record in records] for i, name in enumerate(header)}
    return header, columns, np.array(lines, dtype=np.int64)


def _check_header(path: Path, names: Sequence[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(f"{path}: column(s) {_listed(repeated)} appear twice; rename one")


def _listed(names: Sequence[str], most: int = 20) -> str:
    """Column names for a message: the first `most` of them, each cut short."""
    shown = ", ".join(name[:40] for name in names[:most])
    return shown + (f", ... ({len(names):,} in all)" if len(names) > most else "")


def _read_jsonl(path: Path) -> tuple[list[str], dict[str, list[Any]], IntArray]:
    """One JSON object per line; keys missing from a line read as null."""
    objects: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = load_json_bounded(line)
                except JsonLimitError as error:
                    raise DataError(
                        f"{path}: line {number}: {error}{_json_advice(error)}"
                    ) from None
                if not isinstance(value, dict):
                    raise DataError(
                        f"{path}: line {number}: holds a {type(value).__name__}; each line "
                        'must be one JSON object such as {"id": 1, "text": "..."}'
                    )
                objects.append(value)
                lines.append(number)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({one_line(error, 300)}); save the file as UTF-8"
        ) from None
    names: list[str] = list(dict.fromkeys(key for value in objects for key in value))
    columns = {name: [value.get(name) for value in objects] for name in names}
    return names, columns, np.array(lines, dtype=np.int64)


def _json_advice(error: JsonLimitError) -> str:
    """How to fix a line past the JSON limits (none for a line that is simply not JSON)."""
    if isinstance(error, JsonNestingError):
        return "; a message file holds flat values (an id, a text, a label)"
    if isinstance(error, JsonNumberError):
        return " (quote it to keep it as text)"
    return ""


def _read_parquet(path: Path) -> tuple[list[str], dict[str, list[Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({one_line(error, 300)})") from None
    _check_header(path, table.column_names)
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
    return table.column_names, columns


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


def _table(
    path: Path,
    names: Sequence[str],
    cells: dict[str, list[Any]],
    lines: IntArray | None,
    columns: TextColumns,
) -> TextTable:
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
    probe = TextTable(path, np.zeros(0, np.int64), [], None, {}, lines)
    count = len(cells[id_name])
    if count == 0:
        raise DataError(f"{path}: holds no messages")
    ids = _ids(probe, cells[id_name])
    texts = _texts(probe, cells[text_name])
    labels = None if label_name is None else _labels(probe, cells[label_name])
    kept = [name for name in names if name not in (id_name, text_name, label_name)]
    extras = {name: [_display(value) for value in cells[name]] for name in kept}
    return TextTable(path, ids, texts, labels, extras, lines)


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
    return ids


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
