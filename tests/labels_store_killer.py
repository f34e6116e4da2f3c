"""One label write, in a fresh interpreter, that dies at a chosen step.

    python tests/labels_store_killer.py STEP csv|parquet PATH apply|undo

The process exits with `KILLED` through `os._exit` where it was told to die (no cleanup, no
`finally`, as a SIGKILL or a power cut leaves it), with 1 if the write raised first. A fresh
interpreter rather than `os.fork()`: the test process has JAX and Arrow threads running, and a
fork copies their locks in whatever state they are, which may deadlock the child.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ssvae.adapters import files
from ssvae.adapters.labels import _store
from ssvae.domain.labels import ClassVocabulary, LabelChange

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
KILLED = 73  # the exit status when the write died where it was told to

# Only the store used is imported in the child: pyarrow alone takes a second to import.
STORES = {"csv": ("csv_store", "CsvLabelStore"), "parquet": ("parquet_store", "ParquetLabelStore")}

# The killed writes: a set that adds a class, changes, adds and removes labels; an undo.
WRITES: dict[str, Callable[[_store.LabelFileStore], object]] = {
    "apply": lambda store: store.apply(
        [LabelChange(1005, "fox"), LabelChange(1001, "fox"), LabelChange(1000, None)],
        source="killed",
        new_classes=("fox",),
    ),
    "undo": lambda store: store.undo(source="killed"),
}


def _die() -> None:
    os._exit(KILLED)


def arm(step: str, store: _store.LabelFileStore) -> None:
    """Make the next write of `store` die at `step` (patches this process's modules)."""
    if step == "after the vocabulary":
        real_write_vocabulary = _store.write_vocabulary

        def write_vocabulary_then_die(*args: Any) -> None:
            real_write_vocabulary(*args)
            _die()

        _store.write_vocabulary = write_vocabulary_then_die  # type: ignore[assignment]
    elif step == "halfway through the history append":
        real_open = _store._open_for_update

        @contextlib.contextmanager
        def open_and_tear(path: Path):  # type: ignore[no-untyped-def]
            with real_open(path) as log:
                real_write = log.write

                def write_half(data: bytes) -> int:
                    real_write(data[: max(1, len(data) // 2)])
                    log.flush()
                    os.fsync(log.fileno())
                    _die()
                    return 0

                log.write = write_half  # type: ignore[method-assign]
                yield log

        _store._open_for_update = open_and_tear
    elif step == "after the history append":
        real_sync = _store._sync

        def sync_then_die(handle: Any) -> None:
            real_sync(handle)
            _die()

        _store._sync = sync_then_die
    elif step in ("before the label file's rename", "after the label file's rename"):
        real_replace = os.replace

        def replace(source: Any, target: Any) -> None:
            if Path(str(target)) != store.path:
                real_replace(source, target)  # the vocabulary's rename
                return
            if step == "after the label file's rename":
                real_replace(source, target)
            _die()

        files.os.replace = replace  # type: ignore[assignment]
    elif step != "after returning":
        raise ValueError(f"unknown step {step!r}")


def main(step: str, kind: str, path: str, write: str) -> None:
    module, name = STORES[kind]
    store_class = getattr(importlib.import_module(f"ssvae.adapters.labels.{module}"), name)
    store = store_class(Path(path), VOCABULARY, SERIALS)
    arm(step, store)
    WRITES[write](store)
    _die()  # "after returning": acknowledged, then killed


if __name__ == "__main__":
    main(*sys.argv[1:])
