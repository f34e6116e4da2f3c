"""Four processes setting labels and undoing at once on one store: no acknowledged label is
lost, no undo is applied twice, and every undo reverts a label that was current."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelStore
from ssvae.domain.labels import ClassVocabulary, HistoryEntry, replay

# One class per operation (4 workers x at most 1000): every set changes every serial it
# names (no label can already hold its class), so every acknowledged set must be recorded.
VOCABULARY = ClassVocabulary(tuple(f"c{k}" for k in range(4000)))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
FORMATS = {"csv": (CsvLabelStore, "labels.csv"), "parquet": (ParquetLabelStore, "labels.parquet")}

# Each worker: `operations` random sets (1-3 serials of 12 shared ones, so writers collide)
# and undos (one in four), each set with its own source and class; prints what was
# acknowledged.
WORKER = textwrap.dedent(
    """
    import importlib, json, pathlib, random, sys, time
    import numpy as np
    from ssvae.domain.labels import ClassVocabulary, LabelChange

    kind, path, worker, operations, sync = sys.argv[1:6]
    # Only the store used is imported: pyarrow alone takes a second to import.
    module, name = {"csv": ("csv_store", "CsvLabelStore"),
                    "parquet": ("parquet_store", "ParquetLabelStore")}[kind]
    store_class = getattr(importlib.import_module(f"ssvae.adapters.labels.{module}"), name)
    store = store_class(pathlib.Path(path), ClassVocabulary([f"c{k}" for k in range(4000)]),
                        np.arange(1000, 1200), lock_timeout=120)
    rng = random.Random(int(worker))
    pathlib.Path(sync, worker).touch()
    deadline = time.monotonic() + 60
    while len(list(pathlib.Path(sync).iterdir())) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)  # start together, once every process has imported
    acknowledged = []
    for step in range(int(operations)):
        if rng.random() < 0.25:
            undone = store.undo(source=f"w{worker}-{step}")
            acknowledged.append(["undo", [e.index for e in undone.entries]])
        else:
            serials = rng.sample(range(1000, 1012), rng.randint(1, 3))
            name = f"c{int(worker) * 1000 + step}"
            store.apply([LabelChange(s, name) for s in serials], source=f"w{worker}-{step}")
            acknowledged.append(["set", [f"w{worker}-{step}", sorted(serials)]])
    print(json.dumps(acknowledged))
    """
)


def _run_workers(tmp_path: Path, kind: str, operations: int) -> tuple[list, Path]:
    path = tmp_path / FORMATS[kind][1]
    sync = tmp_path / "sync"
    sync.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, str(path), str(w), str(operations), str(sync)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    acknowledged = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr.decode()
        acknowledged.extend(json.loads(stdout))
    return acknowledged, path


def _check(history: list[HistoryEntry], acknowledged: list) -> None:
    by_index = {e.index: e for e in history}
    reverted = [e.undoes for e in history if e.undoes is not None]
    assert len(reverted) == len(set(reverted)), "an undo was applied twice"
    labels: dict[int, str | None] = {}
    for entry in history:
        # Each entry starts from the label as it was: no write slipped in unrecorded.
        assert entry.previous == labels.get(entry.serial)
        if entry.undoes is not None:
            # An undo reverts a change whose label is still current.
            assert entry.previous == by_index[entry.undoes].new
            assert entry.new == by_index[entry.undoes].previous
        labels[entry.serial] = entry.new
    recorded: dict[str, list[int]] = {}
    for entry in history:
        recorded.setdefault(entry.source, []).append(entry.serial)
    for kind, what in acknowledged:
        if kind == "set":
            source, serials = what
            assert sorted(recorded.get(source, [])) == serials, f"{source} was lost"
        else:
            assert all(by_index[i].undoes is not None for i in what)
    undone_entries = sum(len(what) for kind, what in acknowledged if kind == "undo")
    assert undone_entries == len(reverted)  # every acknowledged undo entry is in the history


def _check_store(path: Path, kind: str, acknowledged: list) -> None:
    store_class, _ = FORMATS[kind]
    store = store_class(path, VOCABULARY, SERIALS)
    history = list(store.history())
    assert replay(VOCABULARY, history) == store.load()
    assert [e.index for e in history] == list(range(len(history)))
    _check(history, acknowledged)


def test_four_writers_with_undo_lose_nothing_and_undo_nothing_twice(tmp_path):
    acknowledged, path = _run_workers(tmp_path, "csv", 30)
    assert sum(kind == "undo" for kind, _ in acknowledged) > 10  # undos did run among sets
    _check_store(path, "csv", acknowledged)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_four_writers_with_undo_soak(tmp_path, kind):
    acknowledged, path = _run_workers(tmp_path, kind, 1000)
    _check_store(path, kind, acknowledged)
