"""Vector pools read a block at a time: the same samples as a whole read, bad rows named far
into the file, and memory that does not grow with the file."""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.vector_rows import BLOCK_ROWS
from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.domain.errors import DataError

ROWS = 3 * BLOCK_ROWS + 123  # past several blocks, the last one short
FAR = 2 * BLOCK_ROWS + 77  # a row in the third block


def _vectors(rows: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


def _npz_stored(path: Path, **arrays: np.ndarray) -> Path:
    """np.savez writes members uncompressed (ZIP_STORED), so they are read in place."""
    np.savez(path, **arrays)
    return path


def _npz_compressed(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def _parquet(path: Path, x: np.ndarray, ids: np.ndarray, row_group: int) -> Path:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    table = pa.table({"id": pa.array(ids), "vector": vectors, "label": pa.array(ids % 3)})
    pq.write_table(table, path, row_group_size=row_group)
    return path


def _write(fmt: str, folder: Path, x: np.ndarray, ids: np.ndarray) -> Path:
    if fmt == "npy":
        np.save(folder / "p.npy", x)
        return folder / "p.npy"
    if fmt == "npz":
        return _npz_stored(folder / "p.npz", x=x, ids=ids, y=ids % 3)
    if fmt == "npz_compressed":
        return _npz_compressed(folder / "p.npz", x=x, ids=ids, y=ids % 3)
    return _parquet(folder / "p.parquet", x, ids, row_group=10_000)


FORMATS = ("npy", "npz", "npz_compressed", "parquet")


def _ids(fmt: str) -> np.ndarray:
    """Shuffled ids, so file order and serial order differ (NPY's serials are its rows)."""
    if fmt == "npy":
        return np.arange(ROWS, dtype=np.int64)
    return np.random.default_rng(1).permutation(ROWS).astype(np.int64) * 3 + 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_hold_the_samples_a_whole_read_gives(tmp_path: Path, fmt: str) -> None:
    x, ids = _vectors(ROWS, 6), _ids(fmt)
    source = VectorDataSource(_write(fmt, tmp_path, x, ids), classes=["0", "1", "2"])
    whole = source.load("train")
    assert np.array_equal(whole.serials, np.sort(ids))
    np.testing.assert_array_equal(whole.x, x[np.argsort(ids)])
    chunks = list(source.iter_chunks("train", rows=BLOCK_ROWS))
    # A Parquet chunk never spans two row groups (of 10,000 rows here).
    assert len(chunks) == (5 if fmt == "parquet" else 4)
    assert all(len(chunk) <= BLOCK_ROWS for chunk in chunks)
    serials = np.concatenate([c.serials for c in chunks])
    np.testing.assert_array_equal(serials, ids)  # file order
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    if fmt != "npy":
        labels = np.concatenate([c.y for c in chunks if c.y is not None])
        np.testing.assert_array_equal(labels, ids % 3)
    # A subset: only its samples come back, each once, with their own vectors.
    wanted = np.sort(ids[::7])
    subset = list(source.iter_chunks("train", wanted, rows=5000))
    got = np.concatenate([c.serials for c in subset])
    assert np.array_equal(np.sort(got), wanted)
    positions = np.searchsorted(np.sort(ids), got)
    np.testing.assert_array_equal(np.concatenate([c.x for c in subset]), whole.x[positions])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_nan_far_into_the_file_is_named_by_its_row(tmp_path: Path, fmt: str) -> None:
    x = _vectors(ROWS, 4)
    x[FAR, 2] = np.nan
    path = _write(fmt, tmp_path, x, _ids(fmt))
    message = f"{path}: row {FAR}: vector has NaN or infinite values"
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        VectorDataSource(path, classes=["0", "1", "2"]).describe()
    assert "\n" not in str(caught.value)


def test_a_vector_of_another_width_far_into_a_parquet_file_is_named(tmp_path: Path) -> None:
    """List columns let each row have its own length: a short row in a late row group."""
    rows = [[0.5, 1.0, 2.0]] * ROWS
    rows[FAR] = [0.5, 1.0]
    table = pa.table({"id": pa.array(np.arange(ROWS)), "vector": rows})
    path = tmp_path / "ragged.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    message = f"{path}: row {FAR}: vector has 2 values but row 0 has 3"
    with pytest.raises(DataError, match=re.escape(message)):
        VectorDataSource(path, classes=["a", "b"]).describe()


def test_a_file_that_shrinks_after_it_was_described_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.npy"
    np.save(path, _vectors(ROWS, 4))
    source = VectorDataSource(path, classes=["a", "b"])
    source.describe()
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(DataError, match=r"ends inside row .* truncated") as caught:
        list(source.iter_chunks("train"))
    assert "\n" not in str(caught.value)


def test_an_npz_member_that_claims_bytes_past_the_archive_end_is_refused(tmp_path: Path) -> None:
    path = _npz_stored(tmp_path / "p.npz", x=_vectors(100, 4))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x.npy")
    data = bytearray(path.read_bytes())
    # Cut the member's data short but keep the central directory: sizes now lie.
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    damaged = data[:start] + data[start + 800 :]
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError) as caught:
        VectorDataSource(path, classes=["a", "b"]).describe()
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_reading_a_pool_holds_a_few_numbers_a_row_not_its_vectors(tmp_path: Path, fmt: str) -> None:
    """A 77 MB pool is described and walked with a few MB: one block, and the ids."""
    rows, width = 100_000, 192
    x = _vectors(rows, width)
    path = _write(fmt, tmp_path, x, np.arange(rows, dtype=np.int64))
    del x
    tracemalloc.start()
    try:
        source = VectorDataSource(path, classes=["0", "1", "2"])
        source.describe()
        total = sum(float(chunk.x.sum()) for chunk in source.iter_chunks("train"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(total)
    block_bytes = BLOCK_ROWS * width * 4
    assert peak < 3 * block_bytes + 48 * rows, f"peak {peak / 1e6:.1f} MB"
    assert peak < rows * width * 4 / 2


def test_walking_a_parquet_file_buffers_one_row_group_not_the_file(tmp_path: Path) -> None:
    """Arrow's own memory (which tracemalloc does not see) stays within a few row groups
    (the ids, a batch) while a file of 40 groups is described and walked; measured in a
    fresh process, whose high-water mark no other test has raised."""
    rows, width, group = 40 * 2048, 64, 2048
    path = _parquet(tmp_path / "p.parquet", _vectors(rows, width), np.arange(rows), group)
    script = (
        "import sys, pyarrow as pa\n"
        "from ssvae.adapters.data.vectors import VectorDataSource\n"
        "source = VectorDataSource(sys.argv[1], classes=['0', '1', '2'])\n"
        "source.describe()\n"
        "assert sum(len(c) for c in source.iter_chunks('train', rows=1024)) == int(sys.argv[2])\n"
        "print(pa.default_memory_pool().max_memory())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak = int(done.stdout.split()[-1])
    group_bytes = group * width * 4
    assert peak < 16 * group_bytes, f"arrow peak {peak / 1e6:.1f} MB"
    assert peak < rows * width * 4 / 2  # the file: pyarrow buffered twice that, read ahead
