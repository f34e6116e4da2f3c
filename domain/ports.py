"""Ports: what the application needs from the outside world, as typing.Protocols.

Each port has one to three methods. Adapters in `ssvae.adapters` implement them; tests
replace them with in-memory fakes through the container.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.labels import ClassVocabulary, HistoryEntry, LabelChange, LabelSet, Undone


class LabelStore(Protocol):
    """Where a model's labels live; every change is durable once `apply` returns."""

    def load(self) -> LabelSet:
        """The current labels."""
        ...

    def apply(
        self, changes: Sequence[LabelChange], source: str, *, new_classes: Sequence[str] = ()
    ) -> LabelSet:
        """Validate and persist `changes` atomically, append them to the history.

        `new_classes` join the stored vocabulary (after its classes) before any change is
        persisted, so that no stored label ever names a class the vocabulary lacks; the
        returned labels carry the grown vocabulary."""
        ...

    def history(self) -> Sequence[HistoryEntry]:
        """Every change ever applied, oldest first."""
        ...

    def undo(self, source: str) -> Undone:
        """Revert the latest batch not undone yet (`domain.labels.undo_batch`), deciding what
        to revert and persisting it as one new batch in one step, so that no other writer's
        change slips between the two."""
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


@runtime_checkable
class ChunkedDataSource(Protocol):
    """A DataSource that walks a split a bounded number of samples at a time, in its own
    order, so that a pool larger than memory can be scored."""

    def iter_chunks(
        self, split: str, serials: npt.NDArray[np.int64] | None = None, rows: int = 8192
    ) -> Iterator[Samples]:
        """The samples of `split` (only those of `serials` when given), each once, at most
        `rows` at a time, in an order of the source's choosing."""
        ...


def iter_samples(
    source: DataSource, split: str, serials: npt.NDArray[np.int64] | None, rows: int
) -> Iterator[Samples]:
    """`source`'s samples of `serials` (all of `split` when None), at most `rows` at a time:
    by its own `iter_chunks` when it has one, else loaded `rows` serials at a time."""
    if isinstance(source, ChunkedDataSource):
        yield from source.iter_chunks(split, serials, rows)
        return
    wanted = source.serials(split) if serials is None else serials
    for start in range(0, len(wanted), rows):
        yield source.load(split, wanted[start : start + rows])


@runtime_checkable
class TextCatalog(Protocol):
    """The messages behind a text dataset's vectors, for people to read.

    A DataSource of kind "text" also implements this; views, queries and reports show the
    text (and the extra columns) where an image dataset shows the image.
    """

    def texts(self, split: str, serials: npt.NDArray[np.int64]) -> list[str]:
        """The message of each serial of `split`, in the order given."""
        ...

    def extras(self, split: str, serials: npt.NDArray[np.int64]) -> dict[str, list[str]]:
        """Extra display columns (name -> one string per serial); empty when there are none."""
        ...


def text_catalog(source: object) -> TextCatalog | None:
    """`source` as a TextCatalog when it holds texts, else None (image or vector data)."""
    return source if isinstance(source, TextCatalog) else None


MODEL_SCORES: tuple[str, ...] = ("bald", "negative_elbo")
"""The per-sample scores a ModelScorer computes (named as the AcquisitionRequest fields)."""
DEFAULT_SCORE_SAMPLES = 16  # latent draws per sample for the Monte Carlo scores


@runtime_checkable
class ModelScorer(Protocol):
    """Per-sample acquisition scores that need the model itself, not only its predictions.

    "bald": the mutual information between the class and the latent z, in nats (>= 0);
    "negative_elbo": the unlabelled part of the training loss per sample (higher = the model
    explains the sample worse). Both average `samples` draws of z from a key made of `seed`,
    so the same inputs and seed give the same scores.
    """

    def model_scores(
        self,
        x: npt.NDArray[np.float32],
        names: Sequence[str],
        *,
        samples: int = DEFAULT_SCORE_SAMPLES,
        seed: int = 0,
    ) -> Mapping[str, npt.NDArray[np.float32]]:
        """One array of shape (len(x),) per name of `names` (each one of MODEL_SCORES)."""
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
