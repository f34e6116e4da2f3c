"""Where the trainer reads each batch's rows: an array in memory, or a file read on the fly.

Training asks a `RowSource` for the rows of many batches at once, in the order it will use
them (`gather`), and gets each batch's rows back in turn. An array answers by indexing. A file
cannot hold the pool in memory, and a batch of a shuffled epoch touches rows all over it, so
`ChunkedRows` reads a *window* of upcoming batches per pass over the file: it sorts the
window's rows, reads the file chunk by chunk (Parquet row groups, or slices of a memory-mapped
NPY that are unmapped again once copied), keeps the rows the window needs and drops the rest.
Memory then stays at one window plus one chunk whatever the pool's size, and the batches are
exactly the in-memory ones: the same rows in the same order, since the epoch's order is drawn
before any row is read. A window of `window_rows` rows costs one pass over the file, so an
epoch of N rows reads the file about N / window_rows times; the rows of a pass are decoded
once and most are dropped, which is what bounded memory costs (benchmarks/README.md,
"Training from a file").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ssvae.domain.echo import one_line
from ssvae.domain.errors import DataError

WINDOW_ROWS = 131_072  # rows gathered per pass over a file: 200 MB of 384-wide float32
NPY_CHUNK_ROWS = 65_536  # rows mapped at a time from an NPY file


class RowSource(Protocol):
    """The pool's inputs, read by row."""

    @property
    def shape(self) -> tuple[int, ...]:
        """(rows, *sample shape)."""
        ...

    def gather(self, batches: Iterable[npt.NDArray[np.integer]]) -> Iterator[npt.NDArray[Any]]:
        """Each batch's rows (float32, in the batch's order), one array per batch, in turn."""
        ...


class ArrayRows:
    """A pool held in memory (or an array numpy maps itself): each batch is one indexing."""

    def __init__(self, x: npt.NDArray[Any]) -> None:
        self.x = x

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape)

    def gather(self, batches: Iterable[npt.NDArray[np.integer]]) -> Iterator[npt.NDArray[Any]]:
        for rows in batches:
            yield np.asarray(self.x[rows], dtype=np.float32)


def as_row_source(x: Any) -> RowSource:
    """`x` itself when it reads rows already, else the array wrapped."""
    if hasattr(x, "gather") and hasattr(x, "shape"):
        return x  # type: ignore[no-any-return]
    return ArrayRows(np.asarray(x))


def take(source: RowSource, rows: npt.NDArray[np.integer]) -> npt.NDArray[Any]:
    """The rows `rows` of `source`, in one array."""
    return next(iter(source.gather([np.asarray(rows, np.int64)])))


class ChunkedRows:
    """A pool in a file read chunk by chunk; `file_rows[i]` is the file row of pool row i.

    Subclasses say how many rows the file has, where its chunks start and how to read one.
    """

    def __init__(
        self,
        path: Path,
        file_rows: npt.NDArray[np.integer] | None = None,
        window_rows: int = WINDOW_ROWS,
    ) -> None:
        self.path = Path(path)
        self.window_rows = max(int(window_rows), 1)
        self._file_rows = None if file_rows is None else np.asarray(file_rows, np.int64)
        self.passes = 0  # passes over the file so far (a test reads it)

    # What a format supplies.

    def _file_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _chunk_starts(self) -> npt.NDArray[np.int64]:
        """The first file row of each chunk, then the file's row count."""
        raise NotImplementedError

    def _read_chunk(self, index: int) -> npt.NDArray[Any]:
        raise NotImplementedError

    # The window gather.

    @property
    def shape(self) -> tuple[int, ...]:
        file_shape = self._file_shape()
        rows = file_shape[0] if self._file_rows is None else len(self._file_rows)
        return (rows, *file_shape[1:])

    def __getitem__(self, rows: npt.NDArray[np.integer]) -> npt.NDArray[Any]:
        """The rows `rows` (an index array), in one pass: what a subset of the pool reads."""
        return take(self, np.asarray(rows, np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def gather(self, batches: Iterable[npt.NDArray[np.integer]]) -> Iterator[npt.NDArray[Any]]:
        window: list[npt.NDArray[np.int64]] = []
        size = 0
        for rows in batches:
            window.append(np.asarray(rows, np.int64))
            size += len(window[-1])
            if size >= self.window_rows:
                yield from self._window(window)
                window, size = [], 0
        if window:
            yield from self._window(window)

    def _window(self, batches: Sequence[npt.NDArray[np.int64]]) -> Iterator[npt.NDArray[Any]]:
        rows = np.concatenate(batches)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise DataError(
                f"{self.path}: row {int(rows.max())} asked of a pool of {self.shape[0]} rows; "
                "the pool file changed since the workspace was created: point it at the original"
            )
        wanted = rows if self._file_rows is None else self._file_rows[rows]
        order = np.argsort(wanted, kind="stable")
        ordered = wanted[order]
        out = np.empty((len(rows), *self._file_shape()[1:]), np.float32)
        self.passes += 1
        self._fill(out, order, ordered)
        offset = 0
        for batch in batches:
            yield out[offset : offset + len(batch)]
            offset += len(batch)

    def _fill(
        self, out: npt.NDArray[Any], order: npt.NDArray[np.intp], file_rows: npt.NDArray[np.int64]
    ) -> None:
        """out[order[i]] = file row file_rows[i] (ascending): the chunks holding any, in turn."""
        starts = self._chunk_starts()
        for index in range(len(starts) - 1):
            lo, hi = np.searchsorted(file_rows, starts[index : index + 2])
            if hi > lo:
                chunk = self._read_chunk(index)
                out[order[lo:hi]] = chunk[file_rows[lo:hi] - starts[index]]
                del chunk


class VectorFileRows(ChunkedRows):
    """A vector file as the data adapters read it (`VectorRows`: NPY, NPZ or Parquet, each
    block checked for NaN and width as read), a window at a time through its `take`."""

    def __init__(
        self,
        rows: Any,
        file_rows: npt.NDArray[np.integer] | None = None,
        window_rows: int = WINDOW_ROWS,
    ) -> None:
        super().__init__(rows.path, file_rows, window_rows)
        self.rows = rows

    def _file_shape(self) -> tuple[int, ...]:
        return (int(self.rows.count), int(self.rows.width))

    def _fill(
        self, out: npt.NDArray[Any], order: npt.NDArray[np.intp], file_rows: npt.NDArray[np.int64]
    ) -> None:
        out[order] = self.rows.take(file_rows)


class NpyRows(ChunkedRows):
    """A 2-D float NPY file, mapped NPY_CHUNK_ROWS rows at a time and unmapped once copied, so
    the pages read do not stay counted in the process's memory."""

    def __init__(
        self,
        path: Path,
        file_rows: npt.NDArray[np.integer] | None = None,
        window_rows: int = WINDOW_ROWS,
        chunk_rows: int = NPY_CHUNK_ROWS,
    ) -> None:
        super().__init__(path, file_rows, window_rows)
        try:
            mapped = np.load(self.path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npy array ({one_line(error, 160)})") from None
        if mapped.ndim < 2 or mapped.dtype.kind != "f" or mapped.dtype.hasobject:
            raise DataError(
                f"{path}: holds a {mapped.dtype} array of shape {mapped.shape}; the pool needs "
                "rows of floats (2-D or more)"
            )
        self._dtype = mapped.dtype
        self._shape_in_file: tuple[int, ...] = tuple(mapped.shape)
        self._offset = int(mapped.offset)
        self._fortran = bool(mapped.flags.f_contiguous and not mapped.flags.c_contiguous)
        del mapped
        if self._fortran:
            raise DataError(f"{path}: a Fortran-ordered array; save it in C order (np.save)")
        self.chunk_rows = max(int(chunk_rows), 1)

    def _file_shape(self) -> tuple[int, ...]:
        return self._shape_in_file

    def _chunk_starts(self) -> npt.NDArray[np.int64]:
        rows = self._shape_in_file[0]
        return np.append(np.arange(0, rows, self.chunk_rows, dtype=np.int64), rows)

    def _read_chunk(self, index: int) -> npt.NDArray[Any]:
        start = index * self.chunk_rows
        count = min(self.chunk_rows, self._shape_in_file[0] - start)
        per_row = int(np.prod(self._shape_in_file[1:])) * self._dtype.itemsize
        mapped = np.memmap(
            self.path,
            dtype=self._dtype,
            mode="r",
            offset=self._offset + start * per_row,
            shape=(count, *self._shape_in_file[1:]),
        )
        try:
            return np.array(mapped, dtype=np.float32)
        finally:
            mapped._mmap.close()  # type: ignore[attr-defined]  # unmap now, not at collection


class ParquetRows(ChunkedRows):
    """A Parquet file's vector column (a list of floats per row), one row group at a time."""

    def __init__(
        self,
        path: Path,
        column: str = "vector",
        file_rows: npt.NDArray[np.integer] | None = None,
        window_rows: int = WINDOW_ROWS,
    ) -> None:
        super().__init__(path, file_rows, window_rows)
        import pyarrow.parquet as pq

        try:
            self._file = pq.ParquetFile(self.path)
        except Exception as error:  # pyarrow raises its own types for damaged files
            shown = one_line(error, 160)
            raise DataError(f"{path}: not a readable Parquet file ({shown})") from None
        names = self._file.schema_arrow.names
        if column not in names:
            raise DataError(
                f"{path}: no column {column!r} (it has {', '.join(names)}); name the vector column"
            )
        self.column = column
        meta = self._file.metadata
        counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._width = self._first_width()

    def _first_width(self) -> int:
        if len(self._starts) < 2 or self._starts[-1] == 0:
            return 0
        return int(self._read_chunk(0).shape[1])

    def _file_shape(self) -> tuple[int, ...]:
        return (int(self._starts[-1]), self._width)

    def _chunk_starts(self) -> npt.NDArray[np.int64]:
        return self._starts

    def _read_chunk(self, index: int) -> npt.NDArray[Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self._file.read_row_group(index, columns=[self.column]).column(0)
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        rows = len(array)
        if array.null_count:
            raise DataError(f"{self.path}: a null vector in row group {index}; fill or drop it")
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        width = getattr(self, "_width", int(lengths[0]) if rows else 0)
        bad = np.flatnonzero(lengths != width)
        if len(bad):
            row = int(self._starts[index] + bad[0])
            raise DataError(
                f"{self.path}: row {row} has {int(lengths[bad[0]])} values, the first row "
                f"{width}; give every row the same width"
            )
        values: npt.NDArray[Any] = pc.list_flatten(array).to_numpy(zero_copy_only=False)
        return values.astype(np.float32, copy=False).reshape(rows, width)


def file_rows_source(path: Path, file_rows: npt.NDArray[np.integer] | None = None) -> RowSource:
    """A row source reading `path` (.npy or .parquet) on the fly."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return NpyRows(path, file_rows)
    if suffix in (".parquet", ".pq"):
        return ParquetRows(path, file_rows=file_rows)
    raise DataError(f"{path}: cannot train from a {suffix} file on the fly; use .npy or .parquet")
