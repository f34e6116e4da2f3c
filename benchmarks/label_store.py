"""The label store's speed: undoing a 10,000-point batch, and 4 writers as the history grows.

1. A store holds one label, then a batch of `--batch` labels (a lasso): the time of one
   `undo` of that batch (target: at most 1 s for 10,000 points), median of `--repeats`.
2. `--writers` processes write through the LabelService at once for `--seconds` each, on a
   store whose history is first filled to `--history` lines (several sizes): every fifth
   operation an undo, the others a `set` of one serial. The figure is the operations per
   second of all writers together; a write's cost should not grow with the history.

    .venv/bin/python benchmarks/label_store.py [--format csv] [--history 100 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from benchmarks_common import cpu_model

from ssvae.application.labeling import LabelService
from ssvae.domain.labels import ClassVocabulary, LabelChange

VOCABULARY = ClassVocabulary.digits(10)
SERIALS = np.arange(60_000, dtype=np.int64)


def open_store(kind: str, path: Path):  # type: ignore[no-untyped-def]
    if kind == "csv":
        from ssvae.adapters.labels.csv_store import CsvLabelStore

        return CsvLabelStore(path, VOCABULARY, SERIALS, lock_timeout=120)
    from ssvae.adapters.labels.parquet_store import ParquetLabelStore

    return ParquetLabelStore(path, VOCABULARY, SERIALS, lock_timeout=120)


def undo_seconds(kind: str, batch: int, repeats: int) -> list[float]:
    """Seconds of one undo of a `batch`-point batch, once per repeat on a fresh store."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            service = LabelService(open_store(kind, Path(folder) / f"labels.{kind}"))
            service.set([59_999], "3", source="bench")
            service.set(range(batch), "1", source="lasso")
            start = time.perf_counter()
            service.undo(source="bench")
            times.append(time.perf_counter() - start)
            labels = service.labels()
            assert len(labels) == 1 and labels.get(59_999) == "3", "the batch was not undone"
    return times


def fill_history(kind: str, path: Path, lines: int) -> None:
    """`lines` history lines in batches of 100 sets that relabel the same 100 serials (30,000
    on) each time: the history grows, the label file stays at 100 labels, so the figure
    measures the history's length alone."""
    store = open_store(kind, path)
    for round_, start in enumerate(range(0, lines, 100)):
        count = min(100, lines - start)
        store.apply(
            [LabelChange(30_000 + i, str((i + round_) % 10)) for i in range(count)],
            source="fill",
        )


def writer(kind: str, path: str, worker: int, seconds: float, start_at: float, out) -> None:  # type: ignore[no-untyped-def]
    service = LabelService(open_store(kind, Path(path)))
    while time.time() < start_at:
        time.sleep(0.001)
    done, step = 0, 0
    end = start_at + seconds
    while time.time() < end:
        step += 1
        if step % 5 == 0:
            service.undo(source=f"w{worker}")
        else:
            service.set([worker * 5_000 + step], str(step % 10), source=f"w{worker}")
        done += 1
    out.put(done)


def throughput(kind: str, history: int, writers: int, seconds: float) -> float:
    """Operations a second of `writers` processes on a store with `history` lines."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"labels.{kind}"
        fill_history(kind, path, history)
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        start_at = time.time() + 1.0  # every process started before the clock runs
        processes = [
            context.Process(target=writer, args=(kind, str(path), w, seconds, start_at, out))
            for w in range(writers)
        ]
        for process in processes:
            process.start()
        total = sum(out.get(timeout=seconds + 120) for _ in processes)
        for process in processes:
            process.join()
        with open(str(path) + ".history.jsonl", "rb") as log:
            lines = sum(1 for _ in log)
        print(f"  history {history:>6} -> {lines:>6} lines after the run")
        return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--history", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    times = undo_seconds(args.format, args.batch, args.repeats)
    runs = ", ".join(f"{t:.3f}" for t in times)
    median = statistics.median(times)
    print(f"{args.format}: undo of a {args.batch}-point batch: median {median:.3f} s ({runs})")
    for history in args.history:
        rate = throughput(args.format, history, args.writers, args.seconds)
        print(
            f"{args.format}: {args.writers} writers, history {history} lines: "
            f"{rate:.1f} operations/s (1 in 5 an undo)"
        )
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
