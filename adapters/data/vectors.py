"""Your own vectors (embeddings, features) as a dataset: NPY, NPZ, Parquet or CSV.

- NPY: one 2-D numeric array (rows, features); serials are the row numbers 0..n-1.
- NPZ: the vectors in `x` or `embeddings`; optional `ids` (or `serials`) and optional true
  labels in `y` (or `labels`), as class names or class indices (-1: unknown).
- Parquet: an integer id column (`id` or `serial`), a vector column (`vector`, `embedding`,
  `embeddings` or `x`; list<float> or fixed_size_list<float>) and an optional label column
  (`label`, `labels`, `y` or `class`); other names can be given.
- CSV: a header line, then the same columns as Parquet; each vector cell holds the numbers as
  a JSON list (`"[0.1, 0.2]"`) or separated by spaces (`0.1 0.2`); labels are class names.

Vectors may have any width (the same in every row). Each file is read and validated once, in
full: a malformed row is reported as the file shows it, by its line (CSV, the header is line
1) or its row number counting from 0 (the other formats), so that it can be found and fixed.
"""

from __future__ import annotations

import csv
import math
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError, LabelError
from ssvae.domain.labels import ClassVocabulary

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
class _RawSplit:
    """A file's columns as read, before validation; `labels` may be names or indices."""

    path: Path
    vectors: npt.NDArray[Any]
    ids: npt.NDArray[Any] | None
    labels: npt.NDArray[Any] | None
    lines: npt.NDArray[np.int64] | None = None  # CSV: the line of each row

    def where(self, row: int) -> str:
        """How the file shows row `row`: 'line N' (CSV) or 'row N' counting from 0."""
        return f"line {int(self.lines[row])}" if self.lines is not None else f"row {row}"


@attrs.frozen(eq=False)
class _Split:
    """A validated split, sorted by serial; `labels` are class indices, -1 where unknown."""

    serials: npt.NDArray[np.int64]
    x: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64] | None


class VectorDataSource:
    """A DataSource for vector datasets: split 'train' (the pool) and optionally 'test'."""

    def __init__(
        self,
        train_path: Path | str,
        test_path: Path | str | None = None,
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
        id_column: str | None = None,
        vector_column: str | None = None,
        label_column: str | None = None,
    ) -> None:
        self._paths = {"train": Path(train_path).expanduser()}
        if test_path is not None:
            self._paths["test"] = Path(test_path).expanduser()
        self.name = name or self._paths["train"].stem
        self._classes = tuple(classes) if classes is not None else None
        self._columns = (id_column, vector_column, label_column)
        self._lock = threading.Lock()
        self._info: DatasetInfo | None = None
        self._splits: dict[str, _Split] = {}

    def describe(self) -> DatasetInfo:
        """Name, vector length, split sizes and classes (reads and validates the files once)."""
        self._read_all()
        assert self._info is not None
        return self._info

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        """The ids of `split`, ascending."""
        return self._split(split).serials.copy()

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        """The vectors (float32, shape (n, D)) of `split`, in the order of `serials`."""
        data = self._split(split)
        if serials is None:
            rows = np.arange(len(data.serials))
        else:
            rows = _positions(data.serials, serials, split)
        y = data.labels[rows] if data.labels is not None else None
        return Samples(serials=data.serials[rows], x=data.x[rows], y=y)

    def _split(self, split: str) -> _Split:
        self._read_all()
        if split not in self._splits:
            assert self._info is not None
            self._info.size(split)  # DataError naming the known splits
        return self._splits[split]

    def _read_all(self) -> None:
        with self._lock:
            if self._info is not None:
                return
            raw = {split: _read(path, self._columns) for split, path in self._paths.items()}
            for data in raw.values():
                _check_2d(data)  # labels are matched to rows next
            vocabulary, indices = _vocabulary(raw, self._classes)
            splits = {split: _validate(raw[split], indices[split]) for split in raw}
            widths = {split: data.x.shape[1] for split, data in splits.items()}
            if len(set(widths.values())) > 1:
                raise DataError(
                    f"{self._paths['test']}: vectors have {widths['test']} values but those in "
                    f"{self._paths['train']} have {widths['train']}; both splits must match"
                )
            self._splits = splits
            self._info = DatasetInfo(
                name=self.name,
                sample_shape=(widths["train"],),
                vocabulary=vocabulary,
                split_sizes=tuple((split, len(data.serials)) for split, data in splits.items()),
                has_true_labels=any(
                    data.labels is not None and bool((data.labels >= 0).any())
                    for data in splits.values()
                ),
                kind="vector",
            )


# -- reading each format ---------------------------------------------------------------------


def _read(path: Path, columns: tuple[str | None, str | None, str | None]) -> _RawSplit:
    if not path.is_file():
        raise DataError(f"{path}: vector file not found; check train_path/test_path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _RawSplit(path, _load_npy(path), None, None)
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
        raise DataError(f"{path}: not a readable .npy array ({_short(error)})") from None


def _read_npz(path: Path) -> _RawSplit:
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
        raise DataError(f"{path}: not a readable .npz archive ({_short(error)})") from None
    except (NotImplementedError, RuntimeError) as error:  # compression or encryption
        raise DataError(f"{path}: .npz archive cannot be read ({_short(error)})") from None
    vectors = _first(arrays, ("x", "embeddings"))
    if vectors is None:
        raise DataError(
            f"{path}: no array 'x' or 'embeddings' (found: {', '.join(members) or 'none'})"
        )
    return _RawSplit(
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
            f"{where}: header declares shape {_shown(shape)} of {dtype}, {needed} bytes, but "
            f"only {max(size - handle.tell(), 0)} follow (truncated or corrupt)"
        )
    handle.seek(0)
    return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))


def _short(error: BaseException) -> str:
    """An error's text cut to one short line: library messages may quote whole headers."""
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _shown(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:76] + " ...)"


def _first(arrays: dict[str, npt.NDArray[Any]], keys: Sequence[str]) -> npt.NDArray[Any] | None:
    return next((arrays[key] for key in keys if key in arrays), None)


def _read_parquet(
    path: Path, id_column: str | None, vector_column: str | None, label_column: str | None
) -> _RawSplit:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        names = table.column_names  # decoded here: a damaged name is not UTF-8
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({_short(error)})") from None
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
    return _RawSplit(path, vectors, ids, labels)


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
) -> _RawSplit:
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
    return _RawSplit(
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


# -- validation ------------------------------------------------------------------------------


def _validate(raw: _RawSplit, labels: npt.NDArray[np.int64] | None) -> _Split:
    """Check vectors and ids row by row; sort everything by id."""
    path, vectors = raw.path, raw.vectors
    _check_2d(raw)
    if vectors.dtype.kind not in "fiu":
        raise DataError(f"{path}: vectors are {vectors.dtype}; expected numbers")
    count, width = vectors.shape
    if count == 0 or width == 0:
        raise DataError(f"{path}: holds no vectors (shape {vectors.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        x = vectors.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise DataError(
            f"{path}: {raw.where(int(bad[0]))}: vector has NaN or infinite values "
            "(or values too large for float32)"
        )
    ids = _check_ids(path, raw.ids, count, raw.where)
    order = np.argsort(ids, kind="stable")
    sorted_labels = labels[order] if labels is not None else None
    return _Split(serials=ids[order], x=x[order], labels=sorted_labels)


def _check_2d(raw: _RawSplit) -> None:
    if raw.vectors.ndim != 2:
        raise DataError(
            f"{raw.path}: vectors have shape {_shown(raw.vectors.shape)}; expected a 2-D array "
            "(rows, features)"
        )


def _check_ids(
    path: Path,
    ids: npt.NDArray[Any] | None,
    count: int,
    where: Callable[[int], str] = lambda row: f"row {row}",
) -> npt.NDArray[np.int64]:
    if ids is None:
        return np.arange(count, dtype=np.int64)
    if ids.ndim != 1 or ids.shape[0] != count:
        raise DataError(f"{path}: {count} vectors but ids of shape {ids.shape}; need one id each")
    if ids.dtype.kind not in "iu":
        raise DataError(f"{path}: ids are {ids.dtype}; ids must be non-negative integers")
    if ids.dtype.kind == "u" and ids.dtype.itemsize == 8 and (ids > np.iinfo(np.int64).max).any():
        row = int(np.flatnonzero(ids > np.iinfo(np.int64).max)[0])
        raise DataError(f"{path}: {where(row)}: id {int(ids[row])} is too large")
    values = ids.astype(np.int64)
    negative = np.flatnonzero(values < 0)
    if negative.size:
        row = int(negative[0])
        raise DataError(f"{path}: {where(row)}: id {int(values[row])} is negative")
    order = np.argsort(values, kind="stable")
    repeats = np.flatnonzero(values[order][1:] == values[order][:-1])
    if repeats.size:
        # The pair with the earliest second occurrence names the row to fix.
        seconds = order[repeats + 1]
        at = int(np.argmin(seconds))
        row, first = int(seconds[at]), int(order[repeats[at]])
        raise DataError(
            f"{path}: {where(row)}: id {int(values[row])} repeats {where(first)}; "
            "give every row its own id"
        )
    return values


def _vocabulary(
    raw: dict[str, _RawSplit], classes: tuple[str, ...] | None
) -> tuple[ClassVocabulary, dict[str, npt.NDArray[np.int64] | None]]:
    """The class vocabulary (given, or from the labels found) and each split's class indices."""
    labelled = {split: data for split, data in raw.items() if data.labels is not None}
    for data in labelled.values():
        assert data.labels is not None
        if data.labels.ndim != 1 or data.labels.shape[0] != data.vectors.shape[0]:
            raise DataError(
                f"{data.path}: {data.vectors.shape[0]} vectors but labels of shape "
                f"{data.labels.shape}; need one label each"
            )
    if classes is None:
        classes = _classes_found(labelled, raw["train"].path)
    try:
        vocabulary = ClassVocabulary(classes)
    except LabelError as error:
        raise DataError(f"invalid classes for {raw['train'].path}: {error}") from None
    indices: dict[str, npt.NDArray[np.int64] | None] = {split: None for split in raw}
    for split, data in labelled.items():
        assert data.labels is not None
        indices[split] = _class_indices(data, data.labels, vocabulary)
    return vocabulary, indices


def _classes_found(labelled: dict[str, _RawSplit], train_path: Path) -> tuple[str, ...]:
    if not labelled:
        raise DataError(
            f"{train_path}: no labels in the vector files, so the classes are unknown; "
            "give the class names (classes option)"
        )
    names: set[str] = set()
    integers: set[int] = set()
    for data in labelled.values():
        assert data.labels is not None
        if data.labels.dtype.kind in "iu":
            integers.update(int(v) for v in np.unique(data.labels) if v >= 0)
        else:
            names.update(str(v) for v in data.labels if _is_name(v))
    if names and integers:
        raise DataError("labels mix class names and class indices across splits; use one kind")
    if integers:
        # Class indices without names: the classes are named by their index.
        return tuple(str(i) for i in range(max(integers) + 1))
    return tuple(sorted(names))


def _is_name(value: object) -> bool:
    return value is not None and str(value) != ""


def _class_indices(
    raw: _RawSplit, labels: npt.NDArray[Any], vocabulary: ClassVocabulary
) -> npt.NDArray[np.int64]:
    path = raw.path
    if labels.dtype.kind in "iu":
        values = labels.astype(np.int64)
        bad = np.flatnonzero((values < -1) | (values >= len(vocabulary)))
        if bad.size:
            row = int(bad[0])
            raise DataError(
                f"{path}: {raw.where(row)}: label {int(values[row])} is not a class index "
                f"0..{len(vocabulary) - 1} (or -1 for unknown)"
            )
        return values
    if labels.dtype.kind not in "USO":
        raise DataError(f"{path}: labels are {labels.dtype}; use class names or class indices")
    result = np.full(labels.shape[0], -1, dtype=np.int64)
    for row, value in enumerate(labels):
        if not _is_name(value):
            continue
        if str(value) not in vocabulary:
            shown = ", ".join(vocabulary.names[:20])
            raise DataError(
                f"{path}: {raw.where(row)}: label {value!r} is not a class ({shown}); fix the "
                "label or give the class names (classes option)"
            )
        result[row] = vocabulary.index(str(value))
    return result


def _positions(
    serials: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64], split: str
) -> npt.NDArray[np.intp]:
    """Where each wanted serial sits in the sorted `serials`; DataError for an unknown one."""
    asked = np.asarray(wanted)
    if asked.ndim != 1 or (asked.size and asked.dtype.kind not in "iu"):
        raise DataError(f"serials must be a 1-D array of integers, got {asked.dtype} {asked.shape}")
    asked = asked.astype(np.int64)
    positions = np.searchsorted(serials, asked)
    clipped = np.minimum(positions, len(serials) - 1)
    unknown = np.flatnonzero(serials[clipped] != asked)
    if unknown.size:
        raise DataError(f"serial {int(asked[unknown[0]])} is not in split {split!r}")
    return clipped
