"""Hostile text files: huge ids, deep JSON, long numbers, odd Parquet types, huge headers.

Each is refused with one DataError line naming the file and the line or row, never another
exception; a deep JSON line cannot crash the interpreter, even in a thread with a small stack.
"""

from __future__ import annotations

import decimal
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.text_table import read_text_table
from ssvae.adapters.json_limits import MAX_JSON_DIGITS, MAX_JSON_NESTING
from ssvae.domain.errors import DataError

ID_LIMIT = 2**63 - 1


def _refused(path: Path, pattern: str) -> str:
    with pytest.raises(DataError) as caught:
        read_text_table(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 600
    assert re.search(pattern, message), message
    return message


def _jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("serial", "pattern"),
    [
        ("9" * 5000, r"line 2: id '9{30,}\.\.\.9+' is too large; ids go up to " + str(ID_LIMIT)),
        (str(ID_LIMIT + 1), r"line 2: id '9223372036854775808' is too large"),
        ("-" + "9" * 5000, r"line 2: id '-9+\.\.\.9+' is not an integer >= 0"),
    ],
    ids=["5000 digits", "2**63", "negative 5000 digits"],
)
def test_a_csv_serial_out_of_range_is_one_line(tmp_path: Path, serial: str, pattern: str) -> None:
    path = tmp_path / "messages.csv"
    path.write_text(f"id,text\n{serial},disk failure\n", encoding="utf-8")
    _refused(path, pattern)


def test_leading_zeros_do_not_make_a_serial_too_large(tmp_path: Path) -> None:
    path = tmp_path / "messages.csv"
    path.write_text("id,text\n" + "0" * 5000 + "7,disk failure\n", encoding="utf-8")
    assert read_text_table(path).ids.tolist() == [7]


def test_a_jsonl_line_nested_100000_deep_is_refused_even_on_a_small_thread_stack(
    tmp_path: Path,
) -> None:
    depth = 100_000
    path = _jsonl(tmp_path, '{"id": 1, "text": "a", "e": ' + "[" * depth + "]" * depth + "}")
    script = textwrap.dedent(
        f"""
        import threading
        from ssvae.adapters.data.text_table import read_text_table
        from ssvae.domain.errors import DataError

        def read():
            try:
                read_text_table({str(path)!r})
            except DataError as error:
                print("refused:", error)

        threading.stack_size(256 * 1024)  # musl's default is 128 KiB; glibc's 8 MiB
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"refused: {path}: line 1: values nest more than")
    _refused(path, rf"line 1: values nest more than {MAX_JSON_NESTING} levels deep")


def test_json_nested_deeper_than_the_limit_is_refused_before_anything_recurses(
    tmp_path: Path,
) -> None:
    deep = "[" * (MAX_JSON_NESTING + 1) + "]" * (MAX_JSON_NESTING + 1)
    path = _jsonl(tmp_path, '{"id": 1, "text": "a"}', '{"id": 2, "text": "b", "e": ' + deep + "}")
    _refused(path, "line 2: values nest more than")


def test_brackets_inside_strings_are_text_not_nesting(tmp_path: Path) -> None:
    text = "[" * 500 + '\\"{' * 100 + "]"
    shallow = {"id": 1, "text": text, "extra": [[1, 2], {"a": [3]}]}
    table = read_text_table(_jsonl(tmp_path, json.dumps(shallow)))
    assert table.texts == [json.loads(json.dumps(text))]
    assert json.loads(table.extras["extra"][0]) == shallow["extra"]


@pytest.mark.parametrize("column", ["id", "label", "other"])
def test_a_jsonl_number_of_5000_digits_is_one_line(tmp_path: Path, column: str) -> None:
    row = '{"id": 1, "text": "a", "' + column + '": ' + "7" * 5000 + "}"
    if column == "id":
        row = '{"id": ' + "7" * 5000 + ', "text": "a"}'
    message = _refused(_jsonl(tmp_path, row), r"line 1: a number with 5,000 characters")
    assert f"at most {MAX_JSON_DIGITS} digits" in message and "sys.set_int" not in message


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ('{"id": -3, "text": "a"}', r"id -3 is not an integer >= 0"),
        ('{"id": 2.5, "text": "a"}', r"id 2\.5 is not an integer >= 0"),
        ('{"id": 1e400, "text": "a"}', r"id inf is not an integer >= 0"),
        ('{"id": ' + "9" * 40 + ', "text": "a"}', r"id 9{40} is too large"),
        ('{"id": [1, [2]], "text": "a"}', r"id \[1, \[2\]\] is not an integer"),
        ('{"id": 1, "text": ' + "[" * 60 + "]" * 60 + "}", r"the message is \[\[\[.*not text"),
    ],
    ids=["negative", "fraction", "infinite", "40 digits", "list", "nested text"],
)
def test_a_jsonl_serial_or_text_of_the_wrong_kind_is_one_line(
    tmp_path: Path, row: str, pattern: str
) -> None:
    _refused(_jsonl(tmp_path, row), "line 1: " + pattern)


def _parquet(tmp_path: Path, ids: pa.Array, **extra: pa.Array) -> Path:
    path = tmp_path / "messages.parquet"
    columns: dict[str, Any] = {"id": ids, "text": pa.array(["a"] * len(ids)), **extra}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("ids", "pattern"),
    [
        (pa.array([-1], pa.int64()), r"row 0: id -1 is not an integer >= 0"),
        (pa.array([2**64 - 1], pa.uint64()), r"row 0: id 18446744073709551615 is too large"),
        (pa.array([0.5]), r"row 0: id 0\.5 is not an integer >= 0"),
        (pa.array([float("nan")]), r"row 0: id nan is not an integer >= 0"),
        (pa.array([1e300]), r"row 0: id 1e\+300 is too large"),
        (
            pa.array([decimal.Decimal(10**30)], pa.decimal128(38, 0)),
            r"row 0: id Decimal\('1000000000000000000000000000000'\) is not an integer",
        ),
        (pa.array(["9" * 5000]), r"row 0: id '9+\.\.\.9+' is too large"),
        (pa.array([2**31 - 1], pa.date32()), r"column 'id': its values cannot be read"),
    ],
    ids=["negative", "uint64", "fraction", "nan", "1e300", "decimal", "5000 digits", "date"],
)
def test_a_parquet_serial_of_the_wrong_kind_is_one_line(
    tmp_path: Path, ids: pa.Array, pattern: str
) -> None:
    _refused(_parquet(tmp_path, ids), pattern)


def test_a_parquet_column_beyond_python_dates_is_one_line(tmp_path: Path) -> None:
    when = pa.array([-(2**62)], pa.timestamp("us"))
    _refused(_parquet(tmp_path, pa.array([1]), when=when), r"column 'when': its values cannot")


def test_a_header_of_30000_columns_is_listed_short(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(30_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + ",".join(["x"] * len(names)) + "\n")
    message = _refused(path, r"no id column 'id' or 'serial' \(columns: c0, c1, .*30,000 in all")
    assert "c29999" not in message


def test_a_damaged_parquet_file_is_one_line_though_arrow_says_more(tmp_path: Path) -> None:
    path = tmp_path / "messages.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    _refused(path, r"not a readable Parquet file \(.*thrift")
