"""A pass over a Parquet pool leaves no more resident than its reader keeps: pyarrow's
allocator keeps freed batches' pages for reuse (three to four row groups' columns), which at
10M rows sat beside a query's 1.4 GB of kept rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PASS_SCRIPT = """
import sys
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import pyarrow.compute  # imported by the reader: its pages are not the batches'
from ssvae.adapters.data.vector_rows import ParquetRows

def resident():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

path, rows, width, groups = Path(sys.argv[1]), 65_536, 128, 8
x = np.random.default_rng(0).standard_normal((rows * groups, width), dtype=np.float32)
vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width)
pq.write_table(pa.table({"id": np.arange(rows * groups), "vector": vectors}), path,
               row_group_size=rows)
del x, vectors
reader = ParquetRows(path, "vector", width, [rows] * groups)
pa.default_memory_pool().release_unused()
before = resident()
total = 0.0
for _, block in reader.blocks(8192):
    total += float(block[:, 0].sum())
print(resident() - before, rows * width * 4)
"""


def test_a_pass_over_a_parquet_pool_gives_the_read_batches_back(tmp_path: Path) -> None:
    """Measured in a child process, whose resident memory is its own: after reading 8 row
    groups of 32 MB a batch at a time, keeping nothing, less than two groups' worth stays
    (under one with the pages given back; pyarrow kept three to four)."""
    result = subprocess.run(
        [sys.executable, "-c", _PASS_SCRIPT, str(tmp_path / "pool.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    growth, group = (int(value) for value in result.stdout.split())
    assert growth < 2 * group, f"{growth / group:.1f} row groups' worth stayed resident"
