"""What `ssvae embed` (adapters/text/embed_file.py) writes, and the processes it embeds with.

- The first pass keeps each chunk's ids, messages and classes as an Arrow IPC file, from
  which the chunk is embedded: the input is read and checked once.
- An embedded chunk is committed as an Arrow IPC file too: nothing is encoded, so it is
  written several times faster than Parquet, and it is read back (memory-mapped) as fast
  when copied to the output.
- `Output` assembles the output, one Parquet row group per chunk, and renames it into place
  once whole.
- `worker_pool` starts processes that embed tfidf chunks; they start while the main process
  fits tfidf and load the fitted model, saved in the work folder, with their first chunk.
  They are spawned, not forked (a forked child would inherit whatever threads the parent
  runs), so each imports the main module of the program again: a script that calls
  `embed_text_file` outside an `if __name__ == "__main__":` block would start a second
  embedding in every worker. `refuse_in_a_starting_worker` ends such a worker at once, and the
  main process says what to change.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np

from ssvae.adapters.data.text_table import TextTable
from ssvae.adapters.files import atomic_writer, publish
from ssvae.domain.echo import one_line
from ssvae.domain.errors import DataError

_MAX_WORKERS = 2  # the main process reads and copies too; more workers mostly add memory
POOL_ROWS = 131_072  # fewer rows to embed are embedded in the main process

UNGUARDED = (
    'a script that calls embed_text_file must call it under `if __name__ == "__main__":` '
    "(the processes that embed its chunks import the script again); add the guard and run "
    "again"
)


def refuse_in_a_starting_worker() -> None:
    """End this process quietly when it is a worker importing the main module of a script that
    calls `embed_text_file` without the `__main__` guard: it would embed the whole file again.
    The main process sees its pool broken before any worker started, and says so."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(1)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused, then restored as it was.

    Reading a file makes a list for every row and tokenising one for every message: millions
    of short-lived objects, which the collector would walk again and again (about a third of
    the time of a pass over a CSV file). They hold no reference cycles: reference counting
    frees each as soon as it is dropped, so memory stays bounded.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class WorkerPool(ProcessPoolExecutor):
    """Spawned worker processes; each sets `started` once past importing the main module, so
    that a pool broken before any did names the missing `__main__` guard."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.started: Event = context.Event()
        super().__init__(
            workers, context, initializer=_start_worker, initargs=(os.getpid(), self.started)
        )


def died_importing_the_script(pool: ProcessPoolExecutor) -> bool:
    """Whether the broken `pool`'s workers all died before they started."""
    return isinstance(pool, WorkerPool) and not pool.started.is_set()


def worker_pool(
    embedder: str, work: Path, workers: int | None, rows: int
) -> ProcessPoolExecutor | None:
    """Processes that embed chunks with the tfidf saved in `work`, or None to embed here.

    By default a pool is used on a machine of several cores for at least `POOL_ROWS` rows: a
    worker takes about a second to start. minilm embeds here (it uses every core itself).
    The workers are started now: they import numpy, scipy and pyarrow while the main process
    reads the file and fits.
    """
    if embedder != "tfidf":
        return None
    if workers is None:
        workers = min(_MAX_WORKERS, len(os.sched_getaffinity(0))) if rows >= POOL_ROWS else 1
    if workers < 2:
        return None
    pool = WorkerPool(workers)
    for _ in range(workers):
        pool.submit(_warm)  # a process is spawned by each submit while none is idle
    return pool


def _start_worker(parent: int, started: Event) -> None:
    started.set()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _warm() -> None:
    import pyarrow.parquet  # noqa: F401
    import scipy.sparse  # noqa: F401


def _exit_with(parent: int) -> None:
    """End this worker once `parent` is gone: a main process killed with SIGKILL cannot shut
    its pool down, and its workers would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


_WORKER_MODEL: dict[Path, Any] = {}  # the tfidf this worker loaded, by the file it read


def worker_model(path: Path) -> Any:
    """The tfidf saved at `path`, loaded by this worker's first chunk (it is fitted while the
    worker starts)."""
    from ssvae.adapters.text.tfidf import TfidfEmbedder

    if path not in _WORKER_MODEL:
        _WORKER_MODEL[path] = TfidfEmbedder.load(path)
    return _WORKER_MODEL[path]


def arrow_table(table: TextTable, vectors: np.ndarray) -> Any:
    """id, vector (fixed-size lists of float32) and, when the file has classes, label."""
    import pyarrow as pa

    # The values are named "element", as Parquet names them: the output's schema is the same
    # whether its chunks were embedded now or read back from an earlier run's Parquet.
    kind = pa.list_(pa.field("element", pa.float32()), vectors.shape[1])
    columns = {
        "id": pa.array(table.ids, pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vectors, np.float32).ravel()), type=kind
        ),
    }
    if table.labels is not None:
        columns["label"] = pa.array([label or None for label in table.labels], pa.string())
    return pa.table(columns)


def write_messages(path: Path, table: TextTable) -> None:
    """Keep a chunk's ids, messages and classes at `path` (Arrow IPC), whole or not at all:
    the chunks are embedded from these, without reading and checking the input again."""
    import pyarrow as pa

    columns = {
        "id": pa.array(table.ids, pa.int64()),
        "text": pa.array(table.texts, pa.large_string()),
    }
    if table.labels is not None:
        columns["label"] = pa.array(table.labels, pa.large_string())
    _write_ipc(path, pa.table(columns))


def read_messages(path: Path, source: Path) -> TextTable:
    """The chunk `write_messages` kept at `path`, as rows of the input file `source`."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as mapped:
            arrow = pa.ipc.open_file(mapped).read_all()
            ids = arrow["id"].to_numpy().astype(np.int64)
            texts = arrow["text"].to_pylist()
            labels = arrow["label"].to_pylist() if "label" in arrow.column_names else None
    except (OSError, pa.ArrowException, KeyError) as error:
        raise DataError(
            f"{path}: the messages of an unfinished embedding are missing or damaged "
            f"({one_line(error, 200)}); rerun with --restart"
        ) from None
    return TextTable(source, ids, texts, labels, {}, None)


def write_part(path: Path, table: TextTable, vectors: np.ndarray) -> None:
    """Commit a chunk's rows at `path` (Arrow IPC), whole or not at all."""
    _write_ipc(path, arrow_table(table, vectors))


def _write_ipc(path: Path, arrow: Any) -> None:
    """`arrow` (a table) at `path` as an Arrow IPC file, whole or not at all."""
    import pyarrow as pa

    with atomic_writer(path) as handle, pa.ipc.new_file(handle, arrow.schema) as writer:
        writer.write_table(arrow)


class Output:
    """The output file being assembled, a committed chunk at a time, one row group each, in
    the work folder; renamed to the output once whole, so that the output appears only
    complete. A failure to write it is one line naming the output."""

    def __init__(self, staging: Path, out_path: Path) -> None:
        self.staging = staging
        self.out_path = out_path
        self.writer: Any = None
        self.labelled = 0

    def append(self, part: Path) -> int:
        """Copy the chunk committed at `part` to the end of the output; its rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._one_line(), pa.memory_map(str(part)) as source:
            table = pa.ipc.open_file(source).read_all()
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.staging, table.schema)
            if "label" in table.column_names:
                self.labelled += table.num_rows - table["label"].null_count
            self.writer.write_table(table, row_group_size=table.num_rows)
            return int(table.num_rows)

    def commit(self) -> None:
        """Close the output and rename it into place."""
        with self._one_line():
            assert self.writer is not None
            self.writer.close()
            publish(self.staging, self.out_path)

    def discard(self) -> None:
        """Drop the unfinished output."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.staging.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _one_line(self) -> Iterator[None]:
        import pyarrow as pa

        try:
            yield
        except (OSError, pa.ArrowException) as error:
            raise DataError(
                f"--out {self.out_path}: cannot be written ({one_line(error, 200)}); choose a "
                "path in a folder you can write to"
            ) from None
