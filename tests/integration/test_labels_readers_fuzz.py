"""The CSV and Parquet label readers on hostile bytes: a LabelSet or one clear LabelError
line, never another exception, in bounded memory."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssvae.adapters.labels.csv_store import CsvLabelFile
from ssvae.adapters.labels.parquet_store import ParquetLabelFile
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary, LabelSet

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_MESSAGE = 600  # characters: a message echoes values cut short
MAX_PEAK = 32 * 2**20  # bytes allocated while reading one input, by Python and by Arrow


def _read_or_refuse(label_file, data: bytes) -> None:
    """The property: a valid LabelSet, or a LabelError of one short line; memory bounded.

    Arrow allocates outside Python's tracemalloc: its pool's high-water mark must not rise
    by more than the bound either (a declared size believed would raise it by gigabytes)."""
    arrow_peak = pa.default_memory_pool().max_memory()
    tracemalloc.start()
    try:
        labels = label_file.decode(data, "fuzzed", VOCABULARY, SERIALS)
    except LabelError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message[:300]
        assert 0 < len(message) <= MAX_MESSAGE, message[:300]
    else:
        assert isinstance(labels, LabelSet) and labels.vocabulary == VOCABULARY
        assert set(labels.serials().tolist()) <= set(SERIALS.tolist())
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_PEAK, f"peak {peak} bytes for {len(data)} input bytes"
    assert pa.default_memory_pool().max_memory() < arrow_peak + MAX_PEAK


serial_texts = st.one_of(
    st.integers(990, 1210).map(str),
    st.integers(-5, 10**30).map(str),
    st.sampled_from(
        ["", " 1001 ", "1e3", "0x3f0", "1_001", "١٠٠١", "9" * 5000, "0" * 4000 + "1001"]
    ),
    st.text(max_size=12),
)
name_texts = st.one_of(
    st.sampled_from([*VOCABULARY.names, " cat ", "CAT", "", "fox", "a,b", 'say "hi"']),
    st.text(max_size=12),
    st.just("x" * 200_000),
)


@st.composite
def csv_bytes(draw) -> bytes:
    header = draw(st.sampled_from(["Serial,label", "serial,label", "Serial;label", "", "Serial"]))
    rows = draw(st.lists(st.tuples(serial_texts, name_texts), max_size=8))
    separator = draw(st.sampled_from([",", ";", ",,", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([header, *(f"{s}{separator}{n}" for s, n in rows)])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):  # a few bytes spoiled, or cut short
        position = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:position] + draw(st.binary(max_size=4)) + data[position + 1 :]
    return data


@FUZZ
@given(data=st.binary(max_size=400))
def test_csv_reader_on_random_bytes(data):
    _read_or_refuse(CsvLabelFile(), data)


@FUZZ
@given(data=csv_bytes())
def test_csv_reader_on_almost_valid_files(data):
    _read_or_refuse(CsvLabelFile(), data)


def _valid_parquet(serials: list[int], names: list[str]) -> bytes:
    return ParquetLabelFile().encode(LabelSet(VOCABULARY, dict(zip(serials, names, strict=False))))


column_arrays = st.sampled_from(
    [
        pa.array([1000, 1001], pa.int64()),
        pa.array([1000, None], pa.int64()),
        pa.array([100, 101], pa.int8()),
        pa.array([1000.0, 1001.5]),
        pa.array(["1000", "1001"]),
        pa.array(["cat", "dog"]),
        pa.array(["cat", None]),
        pa.array(["cat", "fox"]),
        pa.array(["cat", "dog"]).dictionary_encode(),
        pa.array(["cat", "dog"], pa.large_string()),
        pa.array([b"cat", b"dog"]),
        pa.array([True, False]),
        pa.array([-1, 2**62], pa.int64()),
        pa.array([[1], [2]]),
    ]
)


@st.composite
def parquet_bytes(draw) -> bytes:
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(["Serial", "label", "serial", "x"]), max_size=3))
        columns = {name: draw(column_arrays) for name in names}
        sink = io.BytesIO()
        pq.write_table(pa.table(columns) if columns else pa.table({}), sink)
        data = sink.getvalue()
    else:
        serials = draw(st.lists(st.integers(990, 1210), max_size=6, unique=True))
        names = draw(
            st.lists(
                st.sampled_from(VOCABULARY.names), min_size=len(serials), max_size=len(serials)
            )
        )
        data = _valid_parquet(serials, names)
    mutation = draw(st.sampled_from(["none", "cut", "flip", "splice"]))
    if mutation == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
    elif mutation == "splice":
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:]
    return data


@FUZZ
@given(data=parquet_bytes())
def test_parquet_reader_on_damaged_and_strange_files(data):
    _read_or_refuse(ParquetLabelFile(), data)


def test_a_parquet_column_name_that_is_not_utf8_is_one_line():
    table = pa.table({"Serial": pa.array([1000], pa.int64()), "label": ["cat"]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    # Spoil the first byte of the column name in the file's footer (Arrow decodes it on open).
    position = data.index(b"\x05label")
    damaged = data[: position + 1] + b"\x80" + data[position + 2 :]
    with pytest.raises(LabelError, match="column name is not UTF-8") as refused:
        ParquetLabelFile().decode(damaged, "fuzzed", VOCABULARY, SERIALS)
    assert "\n" not in str(refused.value)


@FUZZ
@given(data=st.binary(max_size=400))
def test_parquet_reader_on_random_bytes(data):
    _read_or_refuse(ParquetLabelFile(), b"PAR1" + data + b"PAR1")


@pytest.mark.parametrize("digits", [20, 5000, 100_000])
def test_a_csv_serial_of_many_digits_is_one_short_line(digits):
    data = f"Serial,label\n1000,cat\n{'7' * digits},dog\n".encode()
    with pytest.raises(LabelError, match=rf"fuzzed line 3: serial 7+\.\.\. has {digits} digits"):
        CsvLabelFile().decode(data, "fuzzed", VOCABULARY, SERIALS)
