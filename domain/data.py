"""What a dataset is, independent of where it is stored."""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.labels import ClassVocabulary


@attrs.frozen
class DatasetInfo:
    """A dataset's shape: its pool, its splits and its class vocabulary."""

    name: str
    sample_shape: tuple[int, ...]
    vocabulary: ClassVocabulary
    split_sizes: tuple[tuple[str, int], ...]  # e.g. (("train", 60000), ("test", 10000))
    has_true_labels: bool
    kind: str = "image"  # "image", "vector" or "text"
    # Where the data came from, one line per place, for people: not part of the dataset's
    # identity (the same files copied elsewhere are the same dataset).
    sources: tuple[str, ...] = attrs.field(default=(), eq=False)
    # What a person should know about how the data was read (e.g. a vector width narrowed to
    # what a small file allows), one line each.
    notes: tuple[str, ...] = attrs.field(default=(), eq=False)

    def size(self, split: str) -> int:
        for name, count in self.split_sizes:
            if name == split:
                return count
        known = ", ".join(n for n, _ in self.split_sizes)
        from ssvae.domain.errors import DataError

        raise DataError(f"dataset {self.name!r} has no split {split!r}; splits: {known}")


@attrs.frozen(eq=False)
class Samples:
    """Arrays for some samples of one split: inputs, their serials and true labels if known.

    `x` is float32 with the dataset's sample shape (images scaled to [0, 1]); `y` holds class
    indices into the vocabulary, or -1 where the truth is unknown.
    """

    serials: npt.NDArray[np.int64]
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(self.serials.shape[0])

    def subset(self, rows: npt.NDArray[np.integer]) -> Samples:
        """The samples at `rows` (positions in this set), in that order."""
        y = None if self.y is None else self.y[rows]
        return Samples(serials=self.serials[rows], x=self.x[rows], y=y)
