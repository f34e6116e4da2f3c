"""Hypothesis fuzzing of the text-file readers: CSV, JSONL and Parquet files of messages.

The property of every reader: a valid table or a DataError of one line naming the file; never
another exception, and memory bounded by the file (a few MB here, Python's and Arrow's).
Inputs are random bytes, and near-valid files: real column names with cells of every kind
(huge or negative serials, deep JSON, long numbers, control characters, odd Parquet types).
"""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ssvae.adapters.data.text_table import (
    IdTally,
    TextColumns,
    TextTable,
    iter_text_tables,
    read_text_table,
)
from ssvae.domain.errors import DataError

PEAK_BYTES = 16 * 2**20
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMNS = ["id", "serial", "text", "message", "label", "class", "host", "ID", ""]
CELLS = st.one_of(
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "+7",
            " 8 ",
            "1.0",
            "1e3",
            "9" * 5000,
            "0" * 5000 + "1",
            "١٢",
            "x",
            "",
            " ",
            '"',
            '""',
            "a,b",
            "\x00",
            "\r",
            "\n",
            "\ufeff",
            "[" * 2000,
        ]
    ),
    st.text(max_size=20),
)
JSON_VALUES = st.one_of(
    st.sampled_from(
        [
            "1",
            "-1",
            "0",
            "1.5",
            "1e400",
            "-0",
            "9" * 5000,
            "true",
            "null",
            '""',
            '"x"',
            '"[[["',
            "[]",
            "{}",
            "[1, [2]]",
            '{"a": {"b": 1}}',
            "NaN",
            "Infinity",
            "[" * 5000 + "]" * 5000,
            '{"a":' * 3000 + "1" + "}" * 3000,
            '"\\ud800"',
        ]
    ),
    st.integers().map(str),
    st.text(max_size=20).map(json.dumps),
)


def _check(suffix: str, write: Callable[[Path], None]) -> None:
    """Reading the file `write` makes gives a table or one DataError line, within PEAK_BYTES."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"messages{suffix}"
        write(path)
        arrow_peak = pa.default_memory_pool().max_memory()  # Arrow's memory is not Python's
        table: TextTable | None = None
        tracemalloc.start()
        try:
            table = read_text_table(path)
        except DataError as error:
            message = str(error)
            assert message.startswith(f"{path}") and "\n" not in message, message
            assert len(message) < 2000
        else:
            assert isinstance(table, TextTable) and len(table.ids) == len(table.texts) > 0
            assert (table.ids >= 0).all()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < PEAK_BYTES, peak
    assert pa.default_memory_pool().max_memory() < arrow_peak + PEAK_BYTES
    _check_in_parts(suffix, write, table)


def _check_in_parts(suffix: str, write: Callable[[Path], None], whole: TextTable | None) -> None:
    """Read two rows at a time (as `ssvae embed` reads), the same file gives tables or one
    DataError line; when both reads succeed they hold the same ids and messages."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"messages{suffix}"
        write(path)
        tally = IdTally()
        try:
            parts = list(iter_text_tables(path, TextColumns(), 2))
            for part in parts:
                tally.add(part)
            tally.check()
        except DataError as error:
            message = str(error)
            assert message.startswith(f"{path}") and "\n" not in message, message
            assert len(message) < 2000
            return
    assert all(0 < len(part.ids) <= 2 for part in parts)
    if whole is not None:
        assert [int(i) for part in parts for i in part.ids] == whole.ids.tolist()
        assert [t for part in parts for t in part.texts] == whole.texts


def _bytes_writer(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".csv", ".jsonl", ".parquet"]))
@example(b"PAR1" + b"\x00" * 64 + b"PAR1", ".parquet")
@example(b"\xff\xfe\x00", ".csv")
def test_random_bytes_give_a_table_or_one_line(data: bytes, suffix: str) -> None:
    _check(suffix, _bytes_writer(data))


@FUZZ
@given(
    st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4),
    st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=5),
)
@example(["id", "text"], [["9" * 5000, "a"]])
def test_near_valid_csv_gives_a_table_or_one_line(header: list[str], rows: list[list[str]]) -> None:
    def write(path: Path) -> None:
        import csv

        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    _check(".csv", write)


JSON_ROW = st.dictionaries(st.sampled_from(COLUMNS), JSON_VALUES, max_size=4).map(
    lambda row: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in row.items()) + "}"
)


@FUZZ
@given(st.lists(st.one_of(JSON_ROW, st.sampled_from(["", "[]", "1", "{", "{}"])), max_size=5))
@example(['{"id": 1, "text": "a", "e": ' + "[" * 100_000 + "]" * 100_000 + "}"])
@example(['{"id": ' + "9" * 5000 + ', "text": "a"}'])
def test_near_valid_jsonl_gives_a_table_or_one_line(lines: list[str]) -> None:
    _check(".jsonl", lambda path: path.write_text("\n".join(lines) + "\n", encoding="utf-8"))


ARROW_IDS = st.sampled_from(
    [
        pa.array([1, 2], pa.int64()),
        pa.array([-1, 2], pa.int64()),
        pa.array([2**64 - 1, 1], pa.uint64()),
        pa.array([1.0, 2.5]),
        pa.array([float("nan"), 1e300]),
        pa.array(["1", "9" * 5000]),
        pa.array([None, 1], pa.int32()),
        pa.array([True, False]),
        pa.array([b"1", b"2"]),
        pa.array([[1], [2]]),
        pa.array([2**31 - 1, 0], pa.date32()),
        pa.array([-(2**62), 0], pa.timestamp("us")),
        pa.array([{"a": 1}, {"a": 2}]),
        pa.array(["1", "1"]).dictionary_encode(),
    ]
)
ARROW_TEXTS = st.sampled_from(
    [
        pa.array(["a", "b"]),
        pa.array(["a", None]),
        pa.array([" ", "b"]),
        pa.array([1, 2]),
        pa.array([b"a", b"b"]),
        pa.array(["a", "b"], pa.large_string()),
    ]
)


@FUZZ
@given(ARROW_IDS, ARROW_TEXTS, st.one_of(st.none(), ARROW_IDS, ARROW_TEXTS), st.booleans())
def test_near_valid_parquet_gives_a_table_or_one_line(
    ids: pa.Array, texts: pa.Array, extra: pa.Array | None, labelled: bool
) -> None:
    columns: dict[str, Any] = {"id": ids, "text": texts}
    if extra is not None:
        columns["label" if labelled else "other"] = extra
    _check(".parquet", lambda path: pq.write_table(pa.table(columns), path))
