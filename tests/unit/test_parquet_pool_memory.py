"""A pass over a Parquet pool holds a batch of pages at a time, not a row group's whole
column: read unbuffered, pyarrow allocated one and a half columns at its peak (0.15 GB for
row groups of 65,536 vectors of 384), beside a 10M-row query's 1.4 GB of kept rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_PASS_SCRIPT = """
import sys
from pathlib import Path
from typing import Any

import pytest
import numpy as np, pyarrow as pa
import pyarrow.compute  # imported by the reader: its pages are not the batches'
from ssvae.adapters.data.vector_rows import ParquetRows

path, rows, width, groups = Path(sys.argv[1]), 65_536, 128, 3
reader = ParquetRows(path, "vector", width, [rows] * groups)
total = 0.0
for _, block in reader.blocks(8192):
    total += float(block[:, 0].sum())
print(rows * width * 4, pa.default_memory_pool().max_memory())
"""


def _pass(tmp_path: Path) -> tuple[int, int]:
    """A row group's vector bytes, and pyarrow's peak allocation in a pass over 3 row groups
    of 32 MB a batch at a time, measured in a child process, whose allocations are its own."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, rows, width = tmp_path / "pool.parquet", 65_536, 128
    rng = np.random.default_rng(0)
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), width))])
    with pq.ParquetWriter(path, schema) as writer:
        for group in range(3):
            x = rng.standard_normal(rows * width, dtype=np.float32)
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(x), width)
            ids = np.arange(group * rows, (group + 1) * rows)
            writer.write_table(pa.table({"id": ids, "vector": vectors}, schema=schema))
    result = subprocess.run(
        [sys.executable, "-c", _PASS_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    group, peak = (int(value) for value in result.stdout.split())
    return group, peak


def test_a_pass_over_a_parquet_pool_reads_pages_not_whole_columns(tmp_path: Path) -> None:
    """pyarrow reads a row group's column through a small buffer, page by page: its peak
    allocation stays under one column (it was 1.7, read whole)."""
    group, peak = _pass(tmp_path)
    assert peak < group, f"pyarrow allocated {peak / group:.1f} row groups' columns"


def _labelled_pool(path: Path, ids: Any) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = len(ids)
    labels = (np.asarray(ids) * 7) % 3  # each row's label follows from its id
    x = np.repeat(np.asarray(ids, np.float32)[:, None], 2, axis=1)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)
    table = pa.table({"id": np.asarray(ids), "vector": vectors, "label": labels})
    pq.write_table(table, path, row_group_size=rows // 4)
    from ssvae.adapters.data.vectors import VectorDataSource

    source = VectorDataSource(path, classes=("a", "b", "c"))
    source.describe()
    return source


@pytest.mark.parametrize("shuffled", [False, True])
def test_walking_a_pool_in_id_order_needs_no_inverse_of_its_rows(
    tmp_path: Path, shuffled: bool
) -> None:
    """A chunk's labels are looked up by its rows' positions among the sorted ids; a file in
    id order (a generated or embedded pool) has its rows as positions, where an argsort of
    them was 8 bytes a row through the pass. Every chunk's labels are its rows' own."""
    import tracemalloc

    import numpy as np

    rows = 200_000
    ids = np.arange(rows) * 2
    if shuffled:
        ids = np.random.default_rng(0).permutation(ids)
    source = _labelled_pool(tmp_path / "pool.parquet", ids)
    seen = 0
    tracemalloc.start()
    try:
        for chunk in source.iter_chunks("train", None, 4096):
            assert np.array_equal(chunk.y, (chunk.serials * 7) % 3)
            assert np.array_equal(chunk.x[:, 0], chunk.serials)
            seen += len(chunk.serials)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == rows
    if not shuffled:
        assert peak < 4 * rows, f"peak {peak / rows:.1f} bytes a row"
