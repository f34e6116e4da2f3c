"""Reading vector files (NPY, NPZ, Parquet, CSV) into raw columns, before validation.

Each reader checks what a file declares (array headers, member sizes, column types) against
the bytes that follow before anything is sized by it, so a damaged or hostile file is one
`DataError` line, never a huge allocation. `vectors.py` validates the columns read here.
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
    """A file's columns as read, before validation; `labels` may be names or indices."""

    path: Path
    vectors: npt.NDArray[Any]
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
        return RawSplit(path, _load_npy(path), None, None)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, *columns)
    if suffix == ".csv":
        return _read_csv(path, *columns)
    raise DataError(f"{path}: unknown vector file type {suffix!r}; use {', '.join(SUFFIXES)}")


def _load_npy(path: Path) -> npt.NDArray[Any]:
    try:
        with path.open("rb") as handle:
            return _read_npy(handle, path.stat().st_size, str(path))
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({one_line(error, 160)})") from None


def _read_npz(path: Path) -> RawSplit:
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): info
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
            # Only the arrays a vector dataset uses are read: others may be of any size.
            arrays = {
                key: _read_npz_member(archive, info, path)
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
    return RawSplit(
        path, vectors, _first(arrays, ("ids", "serials")), _first(arrays, ("y", "labels"))
    )


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
    version = np.lib.format.read_magic(handle)
    read_header = _NPY_HEADERS.get(version)
    if read_header is None:
        raise ValueError(f".npy format version {version} is not supported; save with numpy")
    try:
        shape, _, dtype = read_header(handle)
    except (SyntaxError, TypeError, KeyError, OverflowError, tokenize.TokenError) as error:
        # numpy parses the header as a Python literal: a damaged one fails in these ways too.
        raise ValueError(f"damaged header ({type(error).__name__})") from None
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which are not read; save numbers or text")
    needed = math.prod(shape) * dtype.itemsize
    if needed > size - handle.tell():
        raise DataError(
            f"{where}: header declares shape {shown_shape(shape)} of {dtype}, {needed} bytes, but "
            f"only {max(size - handle.tell(), 0)} follow (truncated or corrupt)"
        )
    handle.seek(0)
    return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))


def shown_shape(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:76] + " ...)"


def _first(arrays: dict[str, npt.NDArray[Any]], keys: Sequence[str]) -> npt.NDArray[Any] | None:
    return next((arrays[key] for key in keys if key in arrays), None)


def _read_parquet(
    path: Path, id_column: str | None, vector_column: str | None, label_column: str | None
) -> RawSplit:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        names = table.column_names  # decoded here: a damaged name is not UTF-8
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({one_line(error, 160)})") from None
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than once; "
            "give every column its own name"
        )
    id_name = _required_column(path, names, id_column, ID_COLUMNS, "id")
    vector_name = _required_column(path, names, vector_column, VECTOR_COLUMNS, "vector")
    label_name = _column(path, names, label_column, LABEL_COLUMNS, "label", required=False)
    ids = _parquet_ids(path, table.column(id_name).combine_chunks(), id_name)
    vectors = _parquet_vectors(path, table.column(vector_name).combine_chunks(), vector_name)
    labels = None
    if label_name is not None:
        labels = _parquet_labels(path, table.column(label_name).combine_chunks(), label_name)
    return RawSplit(path, vectors, ids, labels)


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


def _parquet_vectors(path: Path, array: Any, name: str) -> npt.NDArray[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise DataError(
            f"{path}: vector column {name!r} holds {kind}; expected a list of numbers per row"
        )
    if not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise DataError(f"{path}: vector column {name!r} holds lists of {kind.value_type}")
    missing = _first_null_row(array)
    if missing is not None:
        raise DataError(f"{path}: row {missing}: vector is missing (column {name!r})")
    lengths = np.asarray(pc.list_value_length(array).to_numpy(zero_copy_only=False))
    if lengths.size and (ragged := np.flatnonzero(lengths != lengths[0])).size:
        row = int(ragged[0])
        raise DataError(
            f"{path}: row {row}: vector has {lengths[row]} values but row 0 has {lengths[0]}; "
            "all vectors must have the same length"
        )
    values = array.flatten()
    if values.null_count:
        parents = pc.list_parent_indices(array).to_numpy()
        row = int(parents[_first_null_row(values)])
        raise DataError(f"{path}: row {row}: vector has a missing value")
    width = int(lengths[0]) if lengths.size else 0
    flat = np.asarray(values.to_numpy(zero_copy_only=False))
    return flat.reshape(len(array), width)


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
    return RawSplit(
        path,
        np.stack(vectors),
        np.array(ids, dtype=np.int64),
        None if label_name is None else np.array(labels, dtype=object),
        np.array(lines, dtype=np.int64),
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
