"""Use case: look at a dataset (the whole data path, end to end); and the labelled samples
that the services which measure accuracy (compare, simulate) draw from a dataset."""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.comparison import select_subset
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError
from ssvae.domain.ports import DataSource


def true_classes(samples: Samples, split: str, dataset: str, why: str) -> npt.NDArray[np.int64]:
    """The class of each sample (-1: unknown); DataError where `split` has none, saying `why`
    the caller needs them (e.g. "a comparison measures accuracy")."""
    if samples.y is None or not np.any(samples.y >= 0):
        raise DataError(
            f"dataset {dataset!r} has no true classes in its {split!r} split; {why}, so use a "
            "dataset with labels (mnist, fashion_mnist)"
        )
    return samples.y


def stratified_sample(samples: Samples, count: int, seed: int) -> Samples:
    """`count` of `samples` stratified by class, chosen by `seed`; all of them where `count`
    is 0 or covers them. The samples' classes must be known (see `true_classes`)."""
    if not 0 < count < len(samples):
        return samples
    assert samples.y is not None
    return samples.subset(select_subset(samples.y, count, "stratified", seed))


@attrs.frozen
class SplitSummary:
    """What one split holds once loaded."""

    split: str
    samples: int
    value_min: float
    value_max: float
    value_mean: float
    class_counts: dict[str, int] | None


@attrs.frozen
class DatasetSummary:
    """A dataset's description and what its splits hold."""

    info: DatasetInfo
    splits: tuple[SplitSummary, ...]


@attrs.frozen
class DatasetService:
    """Describes and summarises the configured dataset."""

    source: DataSource

    def describe(self) -> DatasetInfo:
        """The dataset's description, without loading samples."""
        return self.source.describe()

    def summarise(self) -> DatasetSummary:
        """Load every split and summarise it (checks the whole data path)."""
        info = self.source.describe()
        splits = tuple(self._split(info, name) for name, _ in info.split_sizes)
        # Loading checks every file in full and may replace one that fails: describe again,
        # so that where the data came from is told as it was read.
        return DatasetSummary(self.source.describe(), splits)

    def _split(self, info: DatasetInfo, split: str) -> SplitSummary:
        samples = self.source.load(split)
        counts = None
        if samples.y is not None:
            known = samples.y[samples.y >= 0]
            per_class = np.bincount(known, minlength=len(info.vocabulary))
            counts = {
                name: int(n) for name, n in zip(info.vocabulary.names, per_class, strict=True)
            }
        x = samples.x
        return SplitSummary(
            split=split,
            samples=len(samples),
            value_min=float(x.min()) if x.size else 0.0,
            value_max=float(x.max()) if x.size else 0.0,
            value_mean=float(x.mean()) if x.size else 0.0,
            class_counts=counts,
        )
