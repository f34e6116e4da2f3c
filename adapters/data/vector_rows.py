"""The vectors of a vector file, read a block of rows at a time and validated as read.

A pool of ten million 384-wide vectors is 15 GB: it is never read whole. NPY files and the
uncompressed members of NPZ archives are read a block of rows at a time from where the rows
lie in the file: plain reads rather than a memory map, because the pages of a map that a pass
has touched count as the process's memory until the kernel needs them back, so a pass over a
15 GB map would show 15 GB resident (a Fortran-ordered array, whose rows are not contiguous,
is memory-mapped all the same). Parquet files are read a batch of one row group at a time.
Every block is checked as it is converted to float32 (numbers, finite, the same width), and a
bad row is named by its row number in the file, however far into the file it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import DataError

FloatRows = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]
BLOCK_ROWS = 16_384  # rows per block read: 25 MB of 384-wide float32 vectors
# A Parquet column chunk is read through a buffer of this many bytes, page by page: unbuffered,
# pyarrow reads a row group's whole column first (100 MB for 65,536 vectors of 384).
_READ_BUFFER = 1 << 20


def row_name(row: int) -> str:
    return f"row {row}"


class VectorRows(Protocol):
    """A file's vectors in file order: `count` rows of `width` numbers."""

    path: Path
    count: int
    width: int

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, FloatRows]]:
        """(first row, float32 block) over the whole file in order, each block validated."""
        ...

    def take(self, file_rows: IndexArray) -> FloatRows:
        """The validated float32 vectors of `file_rows` (ascending file rows), in that order."""
        ...


def checked(
    path: Path,
    block: npt.NDArray[Any],
    file_rows: Callable[[npt.NDArray[np.intp]], IndexArray],
    where: Callable[[int], str] = row_name,
) -> FloatRows:
    """`block` as float32, refused with the file row of its first non-finite vector;
    `file_rows` maps positions in the block to rows of the file."""
    if block.dtype.kind not in "fiu":
        raise DataError(f"{path}: vectors are {block.dtype}; expected numbers")
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.asarray(block, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = int(file_rows(np.flatnonzero(~finite)[:1])[0])
        raise DataError(
            f"{path}: {where(row)}: vector has NaN or infinite values "
            "(or values too large for float32)"
        )
    return x


class ArrayRows:
    """Vectors held by a 2-D array: in memory (CSV, compressed NPZ) or memory-mapped (NPY,
    stored NPZ members), where slicing reads only the rows sliced."""

    def __init__(
        self, path: Path, array: npt.NDArray[Any], where: Callable[[int], str] = row_name
    ) -> None:
        self.path = path
        self.array = array
        self.count, self.width = int(array.shape[0]), int(array.shape[1])
        self.where = where

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, FloatRows]]:
        for start in range(0, self.count, rows):
            yield start, self._checked(self.array[start : start + rows], start)

    def take(self, file_rows: IndexArray) -> FloatRows:
        return checked(self.path, self.array[file_rows], lambda at: file_rows[at], self.where)

    def _checked(self, block: npt.NDArray[Any], start: int) -> FloatRows:
        return checked(self.path, block, lambda at: at + start, self.where)


def _shifted(start: int) -> Callable[[npt.NDArray[np.intp]], IndexArray]:
    """Positions in a block that starts at file row `start`, as file rows."""
    return lambda at: np.asarray(at, np.int64) + start


@contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """`path` open for reading; a file gone or unreadable since it was described is one line."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise DataError(
            f"{path}: cannot be read any more ({error.strerror}); it was moved or deleted "
            "after the dataset was opened: put it back, or point to where it is now"
        ) from None
    with handle:
        yield handle


class NpyFileRows:
    """The rows of a C-ordered 2-D array whose data starts at byte `offset` of `path`."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, int], dtype: Any) -> None:
        self.path = path
        self.offset = offset
        self.count, self.width = int(shape[0]), int(shape[1])
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.width * self.dtype.itemsize

    def _read(self, handle: Any, start: int, stop: int) -> npt.NDArray[Any]:
        handle.seek(self.offset + start * self.row_bytes)
        data = handle.read((stop - start) * self.row_bytes)
        if len(data) != (stop - start) * self.row_bytes:
            raise DataError(
                f"{self.path}: ends inside row {start + len(data) // self.row_bytes}; "
                "the file was truncated"
            )
        return np.frombuffer(data, self.dtype).reshape(stop - start, self.width)

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, FloatRows]]:
        with _opened(self.path) as handle:
            for start in range(0, self.count, rows):
                block = self._read(handle, start, min(start + rows, self.count))
                yield start, checked(self.path, block, _shifted(start))

    def take(self, file_rows: IndexArray) -> FloatRows:
        """Runs of consecutive rows are read at once, so a whole pool is read in a few reads
        and a batch of scattered rows in one read each."""
        out = np.empty((len(file_rows), self.width), np.float32)
        if len(file_rows) == 0:
            return out
        breaks = np.flatnonzero(np.diff(file_rows) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(file_rows)]])
        with _opened(self.path) as handle:
            for first, last in zip(starts.tolist(), stops.tolist(), strict=True):
                for at in range(first, last, BLOCK_ROWS):
                    upto = min(at + BLOCK_ROWS, last)
                    row = int(file_rows[at])
                    block = self._read(handle, row, row + upto - at)
                    out[at:upto] = checked(self.path, block, _shifted(row))
        return out


class ParquetRows:
    """The vector column of a Parquet file, read in batches within one row group at a time
    (pyarrow decodes a batch, not the file); `groups` holds each row group's first row."""

    def __init__(self, path: Path, column: str, width: int, group_sizes: list[int]) -> None:
        self.path = path
        self.column = column
        self.width = width
        self.group_starts = np.concatenate([[0], np.cumsum(group_sizes, dtype=np.int64)])
        self.count = int(self.group_starts[-1])

    def _batches(self, groups: list[int], rows: int) -> Iterator[Any]:
        """Batches of `rows` rows of the row groups `groups`, one group at a time: given many
        groups at once, pyarrow reads ahead across them (pre-buffering), which held 12 GB of
        a 15 GB file.

        pyarrow's allocator (mimalloc or jemalloc) keeps the pages of freed batches for reuse
        and gives them back later, if at all (up to 0.2 GB stayed resident after a pass over
        a million vectors of 384): they are given back after each row group, so that what the
        reader of the batches keeps (a query's latent means) is not joined by them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with pq.ParquetFile(self.path, pre_buffer=False, buffer_size=_READ_BUFFER) as handle:
                for group in groups:
                    yield from handle.iter_batches(
                        batch_size=rows, row_groups=[group], columns=[self.column]
                    )
                    pa.default_memory_pool().release_unused()
        except (OSError, ValueError, pa.ArrowException) as error:
            from ssvae.domain.echo import one_line

            raise DataError(
                f"{self.path}: not a readable Parquet file ({one_line(error, 160)})"
            ) from None

    def _block(self, batch: Any, start: int) -> FloatRows:
        from ssvae.adapters.data.vector_files import parquet_vectors

        values = parquet_vectors(self.path, batch.column(0), self.column, start, self.width)
        return checked(self.path, values, lambda at: at + start)

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, FloatRows]]:
        start = 0
        for batch in self._batches(list(range(len(self.group_starts) - 1)), rows):
            yield start, self._block(batch, start)
            start += batch.num_rows

    def take(self, file_rows: IndexArray) -> FloatRows:
        """Only the row groups that hold a wanted row are read, one batch at a time."""
        out = np.empty((len(file_rows), self.width), np.float32)
        groups = np.unique(np.searchsorted(self.group_starts, file_rows, side="right") - 1)
        done = 0
        for group in groups.tolist():
            start = int(self.group_starts[group])
            for batch in self._batches([group], BLOCK_ROWS):
                stop = start + batch.num_rows
                upto = int(np.searchsorted(file_rows, stop))
                if upto > done:
                    block = self._block(batch, start)
                    out[done:upto] = block[file_rows[done:upto] - start]
                    done = upto
                start = stop
        return out
