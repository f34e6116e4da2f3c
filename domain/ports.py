"""Ports: what the application needs from the outside world, as typing.Protocols.

Each port has one to three methods. Adapters in `ssvae.adapters` implement them; tests
replace them with in-memory fakes through the container.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.labels import ClassVocabulary, HistoryEntry, LabelChange, LabelSet


class LabelStore(Protocol):
    """Where a model's labels live; every change is durable once `apply` returns."""

    def load(self) -> LabelSet:
        """The current labels."""
        ...

    def apply(self, changes: Sequence[LabelChange], source: str) -> LabelSet:
        """Validate and persist `changes` atomically, append them to the history."""
        ...

    def history(self) -> Sequence[HistoryEntry]:
        """Every change ever applied, oldest first."""
        ...


class DataSource(Protocol):
    """A dataset: its description and its samples."""

    def describe(self) -> DatasetInfo:
        """Name, sample shape, splits and class vocabulary, without loading the samples."""
        ...

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        """The serials of `split`, ascending, without loading the samples."""
        ...

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        """The samples of `split` (all of them when `serials` is None)."""
        ...


class LabelFileCodec(Protocol):
    """Reads and writes label sets in an exchange format (CSV or Parquet)."""

    def read(
        self, path: Path, vocabulary: ClassVocabulary, valid_serials: npt.NDArray[np.int64]
    ) -> LabelSet:
        """The labels in `path`, validated against the vocabulary and the dataset's serials."""
        ...

    def write(self, path: Path, labels: LabelSet) -> None:
        """Write `labels` to `path` atomically."""
        ...
