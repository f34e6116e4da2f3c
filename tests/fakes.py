"""In-memory fakes of the ports, with the same validation rules as the real adapters."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

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
