"""Hypothesis fuzzing of the dataset file readers: IDX (raw and gzip) and vector files.

The property of every reader: a valid value or a DataError of one line; never another
exception, and memory bounded by the file, whatever sizes its header claims (a header that
declares terabytes must be refused before anything is allocated for it).
"""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ssvae.adapters.data.idx import read_idx, read_idx_shape
from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.domain.data import DatasetInfo
from ssvae.domain.errors import DataError

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MEMORY_LIMIT = 32 << 20  # bytes: every fuzzed file is a few KiB, so this is generous


@contextmanager
def bounded_memory(limit: int = MEMORY_LIMIT) -> Iterator[None]:
    """Python's (and numpy's) allocations stay under `limit`, and so do Arrow's, which
    tracemalloc does not see: the pool's high-water mark must not rise past it."""
    arrow_peak = pa.default_memory_pool().max_memory()
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak} bytes"
    assert pa.default_memory_pool().max_memory() < arrow_peak + limit


def valid_or_data_error(read: Callable[[], Any]) -> Any:
    """The value `read` returns, or None after a one-line DataError; anything else fails."""
    with bounded_memory():
        try:
            return read()
        except DataError as error:
            assert "\n" not in str(error) and str(error)
            return None


# -- IDX ---------------------------------------------------------------------------------------

SIZES = st.one_of(
    st.integers(0, 6), st.sampled_from([2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)


@st.composite
def idx_bytes(draw: st.DrawFn) -> bytes:
    """Near-valid IDX files: plausible or absurd headers, bodies that fit them or not."""
    code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0x00, 0xFF]))
    ndim = draw(st.one_of(st.integers(0, 4), st.integers(0, 255)))
    dims = draw(st.lists(SIZES, min_size=ndim, max_size=ndim))
    magic = draw(st.sampled_from([b"\x00\x00", b"\x00\x01", b"\x1f\x8b"]))
    header = magic + bytes([code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    itemsize = {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    fitting = int(np.prod(dims, dtype=object)) * itemsize if dims else 0
    body_size = draw(
        st.one_of(
            st.integers(0, 64),
            st.just(fitting if fitting < 4096 else 0),
            st.just(max(fitting - 1, 0) if fitting < 4096 else 1),
        )
    )
    data = header + draw(st.binary(min_size=body_size, max_size=body_size))
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


@st.composite
def idx_files(draw: st.DrawFn) -> bytes:
    data = draw(st.one_of(idx_bytes(), st.binary(max_size=200)))
    if not draw(st.booleans()):
        return data
    packed = bytearray(gzip.compress(data, mtime=0))
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    if damage == "cut":
        return bytes(packed[: draw(st.integers(0, len(packed)))])
    if damage == "flip" and len(packed) > 10:
        at = draw(st.integers(10, len(packed) - 1))
        packed[at] ^= draw(st.integers(1, 255))
    return bytes(packed)


@FUZZ
@given(data=idx_files())
@example(data=bytes([0, 0, 8, 65]) + bytes(4 * 65))  # 65 dimensions: numpy reads 64 at most
@example(data=bytes([0, 0, 8, 4, 0, 0, 0, 0, 0, 0, 0, 3]) + b"\x7f\xff\xff\xff" * 2)  # 0 x huge
def test_the_idx_reader_gives_an_array_or_a_data_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz-idx3-ubyte"
    path.write_bytes(data)
    shape = valid_or_data_error(lambda: read_idx_shape(path))
    array = valid_or_data_error(lambda: read_idx(path))
    if array is not None:
        assert shape is not None and array.shape == shape[1]
        assert array.dtype == shape[0].newbyteorder("=")


def test_a_huge_idx_header_is_refused_within_the_memory_bound(tmp_path: Path) -> None:
    # The explicit worst case beside the fuzzing: 2**32-1 images of 2**16 x 2**16 pixels.
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**32 - 1, 2**16, 2**16))
    for name, data in (("raw", header + bytes(100)), ("gz.gz", gzip.compress(header))):
        path = tmp_path / name
        path.write_bytes(data)
        assert valid_or_data_error(lambda p=path: read_idx(p)) is None
        assert valid_or_data_error(lambda p=path: read_idx_shape(p)) is None


# -- vectors -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def warm_readers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Read each format once outside the memory check: first reads import modules."""
    folder = tmp_path_factory.mktemp("warm")
    x = np.ones((2, 3), np.float32)
    np.save(folder / "v.npy", x)
    np.savez(folder / "v.npz", x=x, y=np.array(["a", "b"]))
    (folder / "v.csv").write_text('id,vector,label\n0,"[1, 2]",a\n1,"[3, 4]",b\n')
    table = pa.table({"id": [0, 1], "vector": [[1.0, 2.0], [3.0, 4.0]], "label": ["a", None]})
    pq.write_table(table, folder / "v.parquet")
    for name in ("v.npy", "v.npz", "v.csv", "v.parquet"):
        VectorDataSource(folder / name, classes=["a", "b"]).load("train")


def describe(path: Path, **options: Any) -> DatasetInfo | None:
    def read() -> DatasetInfo:
        source = VectorDataSource(path, **options)
        info = source.describe()
        samples = source.load("train")
        assert samples.x.dtype == np.float32 and samples.x.shape[1:] == info.sample_shape
        assert np.isfinite(samples.x).all() and len(samples) == info.size("train")
        # Walking the file a few rows at a time gives the same rows, checked the same way.
        walked = list(source.iter_chunks("train", rows=2))
        assert sum(len(chunk) for chunk in walked) == len(samples)
        return info

    result: DatasetInfo | None = valid_or_data_error(read)
    return result


ARRAYS = st.one_of(
    st.builds(
        lambda rows, cols, kind, seed: (
            np.random.default_rng(seed).normal(size=(rows, cols)).astype(kind)
        ),
        st.integers(0, 5),
        st.integers(0, 4),
        st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.float16, np.complex64]),
        st.integers(0, 3),
    ),
    st.builds(np.array, st.lists(st.sampled_from(["a", "b", "", "ok"]), max_size=5)),
    st.builds(np.array, st.lists(st.integers(-3, 2**40), max_size=5)),
    st.builds(np.array, st.lists(st.floats(allow_nan=True), max_size=5)),
    st.just(np.zeros((2, 2, 2), np.float32)),
    st.just(np.array(3.0)),
    st.just(np.array([True, False])),
)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@st.composite
def mangled(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` as written, cut short, with a byte changed, or with its declared shape inflated."""
    how = draw(st.sampled_from(["as is", "cut", "flip", "inflate"]))
    if how == "cut":
        return data[: draw(st.integers(0, len(data)))]
    if how == "flip" and data:
        raw = bytearray(data)
        raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        return bytes(raw)
    if how == "inflate":
        huge = draw(st.sampled_from([b"(4294967295, 65536)", b"(10000000000000,)", b"(99999,)"]))
        start = data.find(b"'shape': (")
        if start >= 0:
            end = data.find(b")", start) + 1
            return data[: start + 9] + huge + data[end:]
    return data


@FUZZ
@given(data=st.one_of(ARRAYS.map(_npy_bytes), st.binary(max_size=120)).flatmap(mangled))
@example(data=_npy_bytes(np.zeros((0, 0), np.float32)).replace(b"}", b"|"))  # tokenize error
def test_the_npy_reader_gives_vectors_or_a_data_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "v.npy"
    path.write_bytes(data)
    describe(path, classes=["a", "b"])


@st.composite
def npz_bytes(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    names = st.sampled_from(["x", "embeddings", "ids", "serials", "y", "labels", "other"])
    members = draw(st.dictionaries(names, ARRAYS.map(_npy_bytes).flatmap(mangled), max_size=4))
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, member in members.items():
            archive.writestr(name + draw(st.sampled_from([".npy", ".npy", ""])), member)
    return buffer.getvalue()


@FUZZ
@given(data=st.one_of(npz_bytes(), npz_bytes().flatmap(mangled), st.binary(max_size=120)))
def test_the_npz_reader_gives_vectors_or_a_data_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "v.npz"
    path.write_bytes(data)
    describe(path)


def test_a_huge_class_index_is_refused_before_naming_every_class(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    np.savez(path, x=np.zeros((2, 3), np.float32), y=np.array([0, 10**18], np.int64))
    with pytest.raises(DataError, match="class index 1000000000000000000"):
        VectorDataSource(path).describe()


def test_a_deflated_npz_member_claiming_gigabytes_is_refused(tmp_path: Path) -> None:
    header = _npy_bytes(np.zeros((1, 4), np.float32))
    start = header.find(b"'shape': (")
    end = header.find(b")", start) + 1
    huge = header[: start + 9] + b"(100000000, 4)" + header[end:]
    path = tmp_path / "v.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", huge)
    assert describe(path, classes=["a"]) is None


COLUMN_TYPES = {
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "uint": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float": (pa.float64(), st.floats()),
    "str": (pa.string(), st.text(max_size=5)),
    "bool": (pa.bool_(), st.booleans()),
    "list<float>": (pa.list_(pa.float32()), st.lists(st.floats(width=32), max_size=4)),
    "list<int>": (pa.list_(pa.int8()), st.lists(st.integers(-128, 127), max_size=4)),
    "list<list<int>>": (pa.list_(pa.list_(pa.int8())), st.lists(st.lists(st.integers(0, 9)))),
    "list<str>": (pa.list_(pa.string()), st.lists(st.text(max_size=3), max_size=3)),
    "fixed<float>": (
        pa.list_(pa.float32(), 3),
        st.lists(st.floats(width=32), min_size=3, max_size=3),
    ),
    "dict<str>": (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["a", "b", "c"])),
    "null": (pa.null(), st.none()),
}


@st.composite
def parquet_bytes(draw: st.DrawFn) -> bytes:
    rows = draw(st.integers(0, 5))
    names = draw(
        st.lists(
            st.sampled_from(["id", "serial", "vector", "x", "label", "y", "other"]), max_size=4
        )
    )
    arrays = []
    for _ in names:
        kind, values = COLUMN_TYPES[draw(st.sampled_from(list(COLUMN_TYPES)))]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        arrays.append(pa.array(cells, type=kind))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), buffer)
    return buffer.getvalue()


@FUZZ
@given(data=st.one_of(parquet_bytes(), parquet_bytes().flatmap(mangled), st.binary(max_size=120)))
def test_the_parquet_reader_gives_vectors_or_a_data_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "v.parquet"
    path.write_bytes(data)
    describe(path)


CSV_CELLS = st.one_of(
    st.sampled_from(["", "0", "7", "-1", "1e999", "nan", "²", "1" * 30, "[1, 2]", "1 2 3", "a"]),
    st.sampled_from(['"[0.5, 1.5]"', "[", "]", '"1,2"', "0x1f", "inf", "1" * 5000]),
    st.text(max_size=8),
)


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    header = draw(st.lists(st.sampled_from(["id", "vector", "label", "x", "other"]), max_size=4))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 4))):
        lines.append(",".join(draw(st.lists(CSV_CELLS, min_size=len(header), max_size=5))))
    return "\n".join(lines)


@FUZZ
@given(text=st.one_of(csv_text(), st.text(max_size=80)))
@example(text="vector,id\n1,\u00b2")  # '²' is a digit to str.isdigit, not to int()
@example(text="id,vector\n" + "9" * 5000 + ",1")  # past int()'s 4,300-digit limit
def test_the_csv_reader_gives_vectors_or_a_data_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    describe(path)


def _parquet(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def test_parquet_cases_the_fuzzing_found(tmp_path: Path) -> None:
    vectors = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))
    ids = pa.array([0, 1], pa.int64())
    cases = {
        # A column name that is not UTF-8 fails only when the names are decoded.
        "name": _parquet(
            pa.table({"id": ids, "vector": vectors, "zz": ids}), store_schema=False
        ).replace(b"zz", b"\xe9d"),
        "twice": _parquet(pa.Table.from_arrays([ids, vectors, ids], ["id", "vector", "id"])),
        # Unsigned class indices with a missing one: -1 (missing) does not fit a uint64.
        "unsigned": _parquet(
            pa.table({"id": ids, "vector": vectors, "label": pa.array([1, None], pa.uint64())})
        ),
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(data)
        info = describe(path)
        assert info is None or name == "unsigned", name
