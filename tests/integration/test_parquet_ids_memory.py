"""Reading a Parquet pool's ids and labels leaves only them resident: pyarrow's allocator
keeps the pages it decoded the columns into for reuse, and a workspace's command, which reads
no vector before its scan, would hold them while it builds its model (0.3 GB more at the
peak of a 10M-row query)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 2_000_000

CHILD = """
import sys
from pathlib import Path
from ssvae.adapters.data.vector_files import read_vector_file

def resident_mb():
    status = open("/proc/self/status").read().splitlines()
    return int(next(line for line in status if line.startswith("RssAnon")).split()[1]) / 1024

import pyarrow as pa

# What pyarrow keeps for itself once started (thread pools, its allocator's own state) is
# not counted: a first read, then its freed pages given back.
read_vector_file(Path(sys.argv[1]), (None, None, None))
pa.default_memory_pool().release_unused()
before = resident_mb()
raw = read_vector_file(Path(sys.argv[1]), (None, None, None))
print(resident_mb() - before, (raw.ids.nbytes + raw.labels.nbytes) / 2**20)
"""


def test_reading_the_ids_keeps_no_more_than_the_ids_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(ROWS, np.float32)), 1)
    table = pa.table({"id": np.arange(ROWS), "vector": vectors, "label": np.arange(ROWS) % 3})
    pq.write_table(table, path, row_group_size=20_000)  # many chunks to combine
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    growth, kept = map(float, result.stdout.split())
    assert kept > 20  # 31 MB of ids and labels
    assert growth < 2 * kept, f"{growth:.0f} MB resident for {kept:.0f} MB of ids and labels"
