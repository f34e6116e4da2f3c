"""Reading vector files (NPY, NPZ, Parquet, CSV) into raw columns, before validation.

Each reader checks what a file declares (array headers, member sizes, column types) against
the bytes that follow before anything is sized by it, so a damaged or hostile file is one
`DataError` line, never a huge allocation. `vectors.py` validates the columns read here.

Ids and labels are read whole (a few numbers a row); the vectors are not: an NPY file and an
uncompressed NPZ member are memory-mapped, a Parquet file is read a batch at a time
(`vector_rows.py`), so a pool larger than memory can be read. A compressed NPZ member cannot
be mapped (deflate has no random access) and is read whole, as is a CSV file.
"""

from __future__ import annotations

import csv
import math
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.adapters.data.vector_rows import ArrayRows, NpyFileRows, ParquetRows, VectorRows
from ssvae.domain.echo import one_line
from ssvae.domain.errors import DataError

ID_COLUMNS = ("id", "serial")
VECTOR_COLUMNS = ("vector", "embedding", "embeddings", "x")
LABEL_COLUMNS = ("label", "labels", "y", "class")
SUFFIXES = (".npy", ".npz", ".parquet", ".pq", ".csv")
NPZ_ARRAYS = ("x", "embeddings", "ids", "serials", "y", "labels")
_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@attrs.frozen(eq=False)
class RawSplit:
    """A file's columns as read, before validation; `labels` may be names or indices;
    `rows` reads the vectors (validated as read)."""

    path: Path
    rows: VectorRows
    ids: npt.NDArray[Any] | None
    labels: npt.NDArray[Any] | None
    lines: npt.NDArray[np.int64] | None = None  # CSV: the line of each row

    def where(self, row: int) -> str:
        """How the file shows row `row`: 'line N' (CSV) or 'row N' counting from 0."""
        return f"line {int(self.lines[row])}" if self.lines is not None else f"row {row}"


# -- reading each format ---------------------------------------------------------------------


def read_vector_file(path: Path, columns: tuple[str | None, str | None, str | None]) -> RawSplit:
    if not path.is_file():
        raise DataError(f"{path}: vector file not found; check train_path/test_path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return RawSplit(path, _npy_rows(path), None, None)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, *columns)
    if suffix == ".csv":
        return _read_csv(path, *columns)
    raise DataError(f"{path}: unknown vector file type {suffix!r}; use {', '.join(SUFFIXES)}")


def _check_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """Vectors are a 2-D numeric array of at least one row and one column."""
    if len(shape) != 2:
        raise DataError(
            f"{path}: vectors have shape {shown_shape(shape)}; expected a "
            "2-D array (rows, features)"
        )
    if dtype.kind not in "fiu":
        raise DataError(f"{path}: vectors are {dtype}; expected numbers")
    if shape[0] == 0 or shape[1] == 0:
        raise DataError(f"{path}: holds no vectors (shape {shape})")


def array_rows(path: Path, array: npt.NDArray[Any], where: Any = None) -> ArrayRows:
    """The vectors of an array read whole (CSV, a compressed NPZ member)."""
    _check_shape(path, array.shape, array.dtype)
    return ArrayRows(path, array) if where is None else ArrayRows(path, array, where)


def _npy_rows(
    path: Path, offset: int = 0, size: int | None = None, where: str | None = None
) -> VectorRows:
    """The vectors of the .npy bytes at `offset` of `path` (`size` bytes, to the end when
    None): the header is checked against the bytes that follow, then nothing is read until
    rows are asked for."""
    where = where or str(path)
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            total = path.stat().st_size - offset if size is None else size
            shape, fortran, dtype = _npy_header(handle, total, offset, where)
            start = handle.tell()
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{where}: not a readable .npy array ({one_line(error, 160)})") from None
    _check_shape(path, shape, dtype)
    if fortran:  # columns are contiguous, rows are not: let the kernel gather them
        mapped = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape, order="F")
        return ArrayRows(path, mapped)
    return NpyFileRows(path, start, (shape[0], shape[1]), dtype)


def _read_npz(path: Path) -> RawSplit:
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): info
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
            # Only the arrays a vector dataset uses are read: others may be of any size. The
            # vectors of an uncompressed member are left in the file, read when asked for.
            arrays: dict[str, Any] = {
                key: _member_rows(info, path)
                if key in ("x", "embeddings") and _mappable(info)
                else _read_npz_member(archive, info, path)
                for key, info in members.items()
                if key in NPZ_ARRAYS
            }
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: not a readable .npz archive ({one_line(error, 160)})") from None
    except (NotImplementedError, RuntimeError) as error:  # compression or encryption
        raise DataError(f"{path}: .npz archive cannot be read ({one_line(error, 160)})") from None
    vectors = _first(arrays, ("x", "embeddings"))
    if vectors is None:
        raise DataError(
            f"{path}: no array 'x' or 'embeddings' (found: {', '.join(members) or 'none'})"
        )
    rows = vectors if isinstance(vectors, NpyFileRows | ArrayRows) else array_rows(path, vectors)
    return RawSplit(
        path,
        rows,
        _first(arrays, ("ids", "serials")),
        _first(arrays, ("y", "labels")),
    )


def _mappable(info: zipfile.ZipInfo) -> bool:
    """Whether a member's bytes lie in the archive as they are: stored, not encrypted."""
    return info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1


def _member_rows(info: zipfile.ZipInfo, path: Path) -> VectorRows:
    """A stored member's vectors, read where they lie in the archive: its data begins after
    the local header (30 bytes, then the name and the extra field, whose lengths it gives)."""
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise DataError(
            f"{path}: member {info.filename} has a damaged header; the archive is corrupt"
        )
    name_length = int.from_bytes(local[26:28], "little")
    extra_length = int.from_bytes(local[28:30], "little")
    offset = info.header_offset + 30 + name_length + extra_length
    if offset + info.file_size > path.stat().st_size:
        raise DataError(
            f"{path}: member {info.filename} claims {info.file_size} bytes past the end of "
            "the archive; it is truncated or corrupt"
        )
    return _npy_rows(path, offset, info.file_size, f"{path}: {info.filename}")


def _read_npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> Any:
    # Deflate expands at most about 1032-fold: a member claiming more is corrupt or a bomb.
    if info.file_size > 1032 * info.compress_size + 1024:
        raise DataError(
            f"{path}: member {info.filename} claims {info.file_size} bytes from "
            f"{info.compress_size} compressed ones; the archive is corrupt"
        )
    with archive.open(info) as member:
        return _read_npy(member, info.file_size, f"{path}: {info.filename}")


def _read_npy(handle: Any, size: int, where: str) -> npt.NDArray[Any]:
    """The array in the .npy stream `handle` of `size` bytes, its header checked first.

    numpy allocates the whole array the header declares before reading the data, so a
    header that claims more than the stream holds is refused here, before numpy sees it.
    """
    _npy_header(handle, size, 0, where)
    handle.seek(0)
    return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))


def _npy_header(
    handle: Any, size: int, offset: int, where: str
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, Fortran order, dtype) of the .npy stream at `offset` of `handle`, whose `size`
    bytes must hold all the data the header declares (numpy would allocate it first)."""
    version = np.lib.format.read_magic(handle)
    read_header = _NPY_HEADERS.get(version)
    if read_header is None:
        raise ValueError(f".npy format version {version} is not supported; save with numpy")
    try:
        shape, fortran, dtype = read_header(handle)
    except (SyntaxError, TypeError, KeyError, OverflowError, tokenize.TokenError) as error:
        # numpy parses the header as a Python literal: a damaged one fails in these ways too.
        raise ValueError(f"damaged header ({type(error).__name__})") from None
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which are not read; save numbers or text")
    needed = math.prod(shape) * dtype.itemsize
    left = size - (handle.tell() - offset)
    if needed > left:
        raise DataError(
            f"{where}: header declares shape {shown_shape(shape)} of {dtype}, {needed} bytes, but "
            f"only {max(left, 0)} follow (truncated or corrupt)"
        )
    return shape, bool(fortran), dtype


def shown_shape(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:76] + " ...)"


def _first(arrays: dict[str, npt.NDArray[Any]], keys: Sequence[str]) -> npt.NDArray[Any] | None:
    return next((arrays[key] for key in keys if key in arrays), None)


def _read_parquet(
    path: Path, id_column: str | None, vector_column: str | None, label_column: str | None
) -> RawSplit:
    """Ids and labels read whole; the vectors are left in the file, read a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as handle:
            names = handle.schema_arrow.names  # decoded here: a damaged name is not UTF-8
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise DataError(
                    f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than "
                    "once; give every column its own name"
                )
            id_name = _required_column(path, names, id_column, ID_COLUMNS, "id")
            vector_name = _required_column(path, names, vector_column, VECTOR_COLUMNS, "vector")
            label_name = _column(path, names, label_column, LABEL_COLUMNS, "label", required=False)
            kind = handle.schema_arrow.field(vector_name).type
            _check_vector_type(path, kind, vector_name)
            small = [id_name] + ([label_name] if label_name is not None else [])
            table = handle.read(columns=small)
            group_sizes = [
                handle.metadata.row_group(i).num_rows for i in range(handle.num_row_groups)
            ]
            first = next(handle.iter_batches(batch_size=1, columns=[vector_name]), None)
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({one_line(error, 160)})") from None
    ids = _parquet_ids(path, table.column(id_name).combine_chunks(), id_name)
    labels = None
    if label_name is not None:
        labels = _parquet_labels(path, table.column(label_name).combine_chunks(), label_name)
    if first is None or first.num_rows == 0 or sum(group_sizes) != len(ids):
        raise (
            DataError(f"{path}: holds no vectors")
            if len(ids) == 0
            else DataError(
                f"{path}: its row groups hold {sum(group_sizes)} rows but its id column "
                f"{len(ids)}; the file is corrupt"
            )
        )
    width = parquet_vectors(path, first.column(0), vector_name).shape[1]
    if width == 0:
        raise DataError(f"{path}: holds no vectors (shape ({len(ids)}, 0))")
    # pyarrow's allocator keeps the pages the columns were decoded into for reuse: they are
    # given back now, not at the first block of vectors read (minutes later at 10M rows).
    del table, first
    pa.default_memory_pool().release_unused()
    return RawSplit(path, ParquetRows(path, vector_name, width, group_sizes), ids, labels)


def _check_vector_type(path: Path, kind: Any, name: str) -> None:
    import pyarrow as pa

    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise DataError(
            f"{path}: vector column {name!r} holds {kind}; expected a list of numbers per row"
        )
    if not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise DataError(f"{path}: vector column {name!r} holds lists of {kind.value_type}")


def _column(
    path: Path,
    names: list[str],
    given: str | None,
    defaults: Sequence[str],
    role: str,
    required: bool = True,
) -> str | None:
    candidates = (given,) if given else defaults
    found = next((name for name in candidates if name in names), None)
    if found is None and (required or given):
        raise DataError(
            f"{path}: no {role} column {' or '.join(map(repr, candidates))} "
            f"(columns: {', '.join(names)}); name it with the {role}_column option"
        )
    return found


def _required_column(
    path: Path, names: list[str], given: str | None, defaults: Sequence[str], role: str
) -> str:
    found = _column(path, names, given, defaults, role)
    assert found is not None  # _column raises when a required column is absent
    return found


def _first_null_row(array: Any) -> int | None:
    import pyarrow.compute as pc

    if array.null_count == 0:
        return None
    return int(pc.index(pc.is_null(array), True).as_py())


def _parquet_ids(path: Path, array: Any, name: str) -> npt.NDArray[Any]:
    import pyarrow as pa

    missing = _first_null_row(array)
    if missing is not None:
        raise DataError(f"{path}: row {missing}: id is missing (column {name!r})")
    if not pa.types.is_integer(array.type):
        raise DataError(
            f"{path}: id column {name!r} holds {array.type}; ids must be non-negative integers"
        )
    return np.asarray(array.to_numpy(zero_copy_only=False))


def parquet_vectors(
    path: Path, array: Any, name: str, start: int = 0, width: int | None = None
) -> npt.NDArray[Any]:
    """The (rows, width) numbers of a batch of a vector column whose first row is row `start`
    of the file; every vector must have `width` values (the first one's when None)."""
    import pyarrow.compute as pc

    _check_vector_type(path, array.type, name)
    missing = _first_null_row(array)
    if missing is not None:
        raise DataError(f"{path}: row {start + missing}: vector is missing (column {name!r})")
    lengths = np.asarray(pc.list_value_length(array).to_numpy(zero_copy_only=False))
    expected = width if width is not None else (int(lengths[0]) if lengths.size else 0)
    if lengths.size and (ragged := np.flatnonzero(lengths != expected)).size:
        row = int(ragged[0])
        raise DataError(
            f"{path}: row {start + row}: vector has {lengths[row]} values but row 0 has "
            f"{expected}; all vectors must have the same length"
        )
    # A sliced list array's flatten() holds only its own rows' values.
    values = array.flatten()
    if values.null_count:
        parents = pc.list_parent_indices(array).to_numpy()
        row = int(parents[_first_null_row(values)])
        raise DataError(f"{path}: row {start + row}: vector has a missing value")
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    return flat.reshape(len(array), expected)


def _parquet_labels(path: Path, array: Any, name: str) -> npt.NDArray[Any]:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
        kind = array.type
    if pa.types.is_integer(kind):
        try:  # int64 first: -1 marks a missing label, which an unsigned column cannot hold
            array = array.cast(pa.int64())
        except pa.ArrowInvalid:
            raise DataError(
                f"{path}: label column {name!r} holds class indices too large to be classes"
            ) from None
        return np.asarray(array.fill_null(-1).to_numpy(zero_copy_only=False))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.array(array.to_pylist(), dtype=object)
    raise DataError(f"{path}: label column {name!r} holds {kind}; use class names or class indices")


def _read_csv(
    path: Path, id_column: str | None, vector_column: str | None, label_column: str | None
) -> RawSplit:
    """A header line, then one row per vector; the vector cell holds all its numbers."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # 1,536 numbers make long cells
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; the first line must name the columns")
            id_name = _required_column(path, header, id_column, ID_COLUMNS, "id")
            vector_name = _required_column(path, header, vector_column, VECTOR_COLUMNS, "vector")
            label_name = _column(path, header, label_column, LABEL_COLUMNS, "label", required=False)
            at = {name: header.index(name) for name in (id_name, vector_name, label_name) if name}
            ids: list[int] = []
            vectors: list[npt.NDArray[np.float64]] = []
            labels: list[str] = []
            lines: list[int] = []
            start = reader.line_num + 1
            for record in reader:
                if record:
                    line = start
                    if len(record) != len(header):
                        raise DataError(
                            f"{path}: line {line}: {len(record)} fields but the header has "
                            f"{len(header)}; quote vector cells that hold commas"
                        )
                    ids.append(_csv_id(path, line, record[at[id_name]]))
                    vector = _csv_vector(path, line, record[at[vector_name]])
                    if vectors and len(vector) != len(vectors[0]):
                        raise DataError(
                            f"{path}: line {line}: vector has {len(vector)} values but line "
                            f"{lines[0]} has {len(vectors[0])}; all vectors must have the same "
                            "length"
                        )
                    vectors.append(vector)
                    if label_name is not None:
                        labels.append(record[at[label_name]])
                    lines.append(line)
                start = reader.line_num + 1
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error}); save the file as UTF-8") from None
    except csv.Error as error:
        raise DataError(f"{path}: line {start}: not valid CSV ({error})") from None
    if not vectors:
        raise DataError(f"{path}: holds no vectors")
    numbers = np.array(lines, dtype=np.int64)
    return RawSplit(
        path,
        array_rows(path, np.stack(vectors), lambda row: f"line {int(numbers[row])}"),
        np.array(ids, dtype=np.int64),
        None if label_name is None else np.array(labels, dtype=object),
        numbers,
    )


def _csv_id(path: Path, line: int, cell: str) -> int:
    text = cell.strip()
    if not text:
        raise DataError(f"{path}: line {line}: id is missing; give every row an integer id >= 0")
    # ASCII digits only: str.isdigit also accepts '²', which int() refuses; and at most 19
    # of them, since longer ones exceed int64 (and int() refuses over 4,300 digits).
    if (
        not (text.isascii() and text.isdigit())
        or len(text.lstrip("0")) > 19
        or (int(text) > np.iinfo(np.int64).max)
    ):
        raise DataError(f"{path}: line {line}: id {cell[:30]!r} is not an integer >= 0")
    return int(text)


def _csv_vector(path: Path, line: int, cell: str) -> npt.NDArray[np.float64]:
    """'[0.1, 0.2]', '0.1 0.2' or '0.1,0.2' as numbers; DataError naming the line."""
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    parts = text.replace(",", " ").split()
    if not parts:
        raise DataError(f"{path}: line {line}: vector is missing")
    try:
        return np.array(parts, dtype=np.float64)
    except ValueError:
        bad = next(p for p in parts if not _is_number(p))
        raise DataError(f"{path}: line {line}: vector value {bad!r} is not a number") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
