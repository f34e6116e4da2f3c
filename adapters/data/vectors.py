"""Your own vectors (embeddings, features) as a dataset: NPY, NPZ, Parquet or CSV.

- NPY: one 2-D numeric array (rows, features); serials are the row numbers 0..n-1.
- NPZ: the vectors in `x` or `embeddings`; optional `ids` (or `serials`) and optional true
  labels in `y` (or `labels`), as class names or class indices (-1: unknown).
- Parquet: an integer id column (`id` or `serial`), a vector column (`vector`, `embedding`,
  `embeddings` or `x`; list<float> or fixed_size_list<float>) and an optional label column
  (`label`, `labels`, `y` or `class`); other names can be given.
- CSV: a header line, then the same columns as Parquet; each vector cell holds the numbers as
  a JSON list (`"[0.1, 0.2]"`) or separated by spaces (`0.1 0.2`); labels are class names.

Vectors may have any width (the same in every row). Each file is validated once, in full,
when the dataset is first described: a malformed row is reported as the file shows it, by its
line (CSV, the header is line 1) or its row number counting from 0 (the other formats), so
that it can be found and fixed. A file given among `checked_files` (a workspace's files as
its init validated them) that still has that fingerprint is not read through again: at 10M
Parquet rows that pass took 15 s of every query, and it buys nothing, since every block is
checked again as it is read; its ids and labels are still checked.

Only the ids and labels stay in memory (a few numbers a row): NPY, uncompressed NPZ and
Parquet vectors are read from the file when asked for, a block at a time, and checked again
as they are read. `iter_chunks` walks a split in file order in bounded memory, which is how a
pool larger than memory is scored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.adapters.data.file_fingerprint import file_fingerprint
from ssvae.adapters.data.vector_files import RawSplit, read_vector_file
from ssvae.adapters.data.vector_rows import BLOCK_ROWS, VectorRows
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import DataError, LabelError
from ssvae.domain.labels import ClassVocabulary, ascending_unique
from ssvae.domain.workspace import FileFingerprint

MAX_CLASS_INDEX = 100_000  # class indices without names: far more classes than any labelling


@attrs.frozen(eq=False)
class _Split:
    """A validated split: `serials` ascending, `file_rows` the row of each in the file,
    `labels` class indices (-1 where unknown) in serial order; the vectors stay in `rows`."""

    serials: npt.NDArray[np.int64]
    file_rows: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64] | None
    rows: VectorRows
    file_serials: npt.NDArray[np.int64]  # the serial of each file row

    def vectors(self, positions: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
        """The vectors at `positions` (of the sorted serials), read in file order."""
        wanted = self.file_rows[positions]
        order = np.argsort(wanted, kind="stable")
        x = np.empty((len(wanted), self.rows.width), np.float32)
        x[order] = self.rows.take(wanted[order])
        return x


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
        checked_files: Sequence[FileFingerprint] = (),
    ) -> None:
        self._paths = {"train": Path(train_path).expanduser()}
        if test_path is not None:
            self._paths["test"] = Path(test_path).expanduser()
        self.name = name or self._paths["train"].stem
        self._classes = tuple(classes) if classes is not None else None
        self._columns = (id_column, vector_column, label_column)
        self._checked_files = frozenset(checked_files)
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
        return Samples(serials=data.serials[rows], x=data.vectors(rows), y=y)

    def row_samples(self, split: str, serials: npt.NDArray[np.int64]) -> Samples:
        """The samples of `serials`, in that order, their vectors read from the file as the
        trainer asks for them (a window of batches per pass), never all at once."""
        from ssvae.adapters.model.batches import VectorFileRows

        data = self._split(split)
        rows = _positions(data.serials, serials, split)
        y = data.labels[rows] if data.labels is not None else None
        x = VectorFileRows(data.rows, file_rows=data.file_rows[rows])
        return Samples(serials=data.serials[rows], x=x, y=y)  # type: ignore[arg-type]

    def iter_chunks(
        self, split: str, serials: npt.NDArray[np.int64] | None = None, rows: int = BLOCK_ROWS
    ) -> Iterator[Samples]:
        """The samples of `split` (only those of `serials` when given), in file order, at most
        `rows` at a time: one block of the file is in memory at once."""
        data = self._split(split)
        keep = None
        if serials is not None:
            keep = np.zeros(len(data.serials), np.bool_)
            keep[_positions(data.serials, serials, split)] = True
            keep = keep[np.argsort(data.file_rows, kind="stable")]  # by file row
        position_of_row = None
        for start, block in data.rows.blocks(rows):
            chosen = slice(None) if keep is None else keep[start : start + len(block)]
            file_serials = data.file_serials[start : start + len(block)][chosen]
            if file_serials.size == 0:
                continue
            y = None
            if data.labels is not None:
                if position_of_row is None:
                    position_of_row = _serial_positions(data.file_rows)
                rows_here = slice(start, start + len(block))
                at = rows_here if position_of_row is _IN_ORDER else position_of_row[rows_here]
                y = data.labels[at][chosen]
            yield Samples(serials=file_serials, x=block[chosen], y=y)

    def fingerprints(self) -> tuple[FileFingerprint, ...]:
        """The fingerprint of each split's file: the vectors are read from them when asked
        for, so a workspace checks that they are still the files it was created from."""
        return tuple(file_fingerprint(path) for path in self._paths.values())

    def _unchanged(self, path: Path) -> bool:
        """Whether `path` is one of the checked files, as it was when it was checked."""
        return bool(self._checked_files) and file_fingerprint(path) in self._checked_files

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
            raw = {
                split: read_vector_file(path, self._columns) for split, path in self._paths.items()
            }
            vocabulary, indices = _vocabulary(raw, self._classes)
            splits = {
                split: _validate(raw[split], indices[split], read_all=not self._unchanged(path))
                for split, path in self._paths.items()
            }
            widths = {split: data.rows.width for split, data in splits.items()}
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


# -- validation ------------------------------------------------------------------------------


def _validate(raw: RawSplit, labels: npt.NDArray[np.int64] | None, read_all: bool = True) -> _Split:
    """Check ids, then every vector a block at a time (so a bad row far into a file larger
    than memory is found) unless `read_all` is False (a file checked before and unchanged
    since: its blocks are checked as they are read); keep the order that sorts by id."""
    count = raw.rows.count
    ids = _check_ids(raw.path, raw.ids, count, raw.where)
    if read_all:
        for _ in raw.rows.blocks():
            pass  # each block is checked as it is read
    order = np.argsort(ids, kind="stable")
    sorted_labels = labels[order] if labels is not None else None
    return _Split(
        serials=ids[order],
        file_rows=order.astype(np.int64),
        labels=sorted_labels,
        rows=raw.rows,
        file_serials=ids,
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
    raw: dict[str, RawSplit], classes: tuple[str, ...] | None
) -> tuple[ClassVocabulary, dict[str, npt.NDArray[np.int64] | None]]:
    """The class vocabulary (given, or from the labels found) and each split's class indices."""
    labelled = {split: data for split, data in raw.items() if data.labels is not None}
    for data in labelled.values():
        assert data.labels is not None
        if data.labels.ndim != 1 or data.labels.shape[0] != data.rows.count:
            raise DataError(
                f"{data.path}: {data.rows.count} vectors but labels of shape "
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


def _classes_found(labelled: dict[str, RawSplit], train_path: Path) -> tuple[str, ...]:
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
        # Class indices without names: the classes are named by their index, so an index must
        # be small (a stray 10**18 would otherwise name a quintillion classes).
        if max(integers) >= MAX_CLASS_INDEX:
            raise DataError(
                f"{train_path}: a label is class index {short_repr(max(integers))}; class "
                f"indices run from 0 to at most {MAX_CLASS_INDEX - 1:,}: correct the labels, "
                "or store class names instead"
            )
        return tuple(str(i) for i in range(max(integers) + 1))
    return tuple(sorted(names))


def _is_name(value: object) -> bool:
    return value is not None and str(value) != ""


def _class_indices(
    raw: RawSplit, labels: npt.NDArray[Any], vocabulary: ClassVocabulary
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


_IN_ORDER = np.zeros(0, np.intp)  # see _serial_positions


def _serial_positions(file_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """For each file row, its position among the sorted serials (the inverse of `file_rows`),
    or `_IN_ORDER` for a file in serial order, whose positions are its rows: their argsort
    would be 80 MB at 10M rows, held through a pass over the file."""
    if ascending_unique(file_rows):
        return _IN_ORDER
    return np.argsort(file_rows, kind="stable")


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
