"""In-memory fakes of the ports, with the same validation rules as the real adapters."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError
from ssvae.domain.labels import (
    ClassVocabulary,
    HistoryEntry,
    LabelChange,
    LabelSet,
    record_changes,
    validate_changes,
)


class InMemoryLabelStore:
    """A LabelStore kept in memory: validates and records changes like the file stores."""

    def __init__(
        self,
        vocabulary: ClassVocabulary,
        valid_serials: npt.NDArray[np.int64],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vocabulary = vocabulary
        self._valid_serials = np.asarray(valid_serials, dtype=np.int64)
        self._clock = clock
        self._labels = LabelSet(vocabulary)
        self._history: list[HistoryEntry] = []

    def load(self) -> LabelSet:
        return self._labels

    def apply(self, changes: Sequence[LabelChange], source: str) -> LabelSet:
        changes = list(changes)
        validate_changes(changes, self.vocabulary, self._valid_serials)
        self._labels, entries = record_changes(
            self._labels,
            changes,
            source=source,
            first_index=len(self._history),
            timestamp=self._clock(),
        )
        self._history.extend(entries)
        return self._labels

    def history(self) -> Sequence[HistoryEntry]:
        return tuple(self._history)


class InMemoryDataSource:
    """A DataSource over arrays held in memory: a train pool and an optional test split."""

    def __init__(
        self,
        vocabulary: ClassVocabulary,
        train_x: npt.NDArray[np.float32],
        train_y: npt.NDArray[np.int64] | None = None,
        test_x: npt.NDArray[np.float32] | None = None,
        test_y: npt.NDArray[np.int64] | None = None,
        name: str = "fake",
    ) -> None:
        self._vocabulary = vocabulary
        self._splits = {"train": (train_x, train_y)}
        if test_x is not None:
            self._splits["test"] = (test_x, test_y)
        self._name = name

    def describe(self) -> DatasetInfo:
        train_x, train_y = self._splits["train"]
        return DatasetInfo(
            name=self._name,
            sample_shape=tuple(train_x.shape[1:]),
            vocabulary=self._vocabulary,
            split_sizes=tuple((name, len(x)) for name, (x, _) in self._splits.items()),
            has_true_labels=train_y is not None,
            kind="vector" if train_x.ndim == 2 else "image",
        )

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        return np.arange(len(self._split(split)[0]), dtype=np.int64)

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        x, y = self._split(split)
        chosen = self.serials(split) if serials is None else np.asarray(serials, np.int64)
        return Samples(chosen, x[chosen], None if y is None else y[chosen])

    def _split(self, split: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
        if split not in self._splits:
            raise DataError(f"fake dataset has no split {split!r}")
        return self._splits[split]
