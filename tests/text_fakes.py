"""A fake text dataset for the text views' tests (tests/*/test_text_views_*.py)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from fakes import InMemoryDataSource

from ssvae.domain.data import DatasetInfo
from ssvae.domain.errors import DataError
from ssvae.domain.labels import ClassVocabulary

SYSTEMS = ClassVocabulary(("sshd", "kernel", "disk"))
WORDS = {
    "sshd": "Accepted password for user{i} from 10.0.0.{i} port 22",
    "kernel": "kernel: CPU{i} temperature above threshold, cpu clock throttled",
    "disk": "EXT4-fs error (device sda{i}): <bad block> at sector {i}",
}


class FakeTextSource(InMemoryDataSource):
    """An in-memory DataSource of kind "text" that also implements TextCatalog."""

    def __init__(
        self,
        vocabulary: ClassVocabulary,
        train_texts: list[str],
        train_x: npt.NDArray[np.float32],
        train_y: npt.NDArray[np.int64] | None = None,
        test_texts: list[str] | None = None,
        test_x: npt.NDArray[np.float32] | None = None,
        test_y: npt.NDArray[np.int64] | None = None,
    ) -> None:
        super().__init__(vocabulary, train_x, train_y, test_x, test_y, name="fake_text")
        self._texts = {"train": list(train_texts)}
        if test_texts is not None:
            self._texts["test"] = list(test_texts)

    def describe(self) -> DatasetInfo:
        info = super().describe()
        return DatasetInfo(
            name=info.name,
            sample_shape=info.sample_shape,
            vocabulary=info.vocabulary,
            split_sizes=info.split_sizes,
            has_true_labels=info.has_true_labels,
            kind="text",
        )

    def texts(self, split: str, serials: npt.NDArray[np.int64]) -> list[str]:
        if split not in self._texts:
            raise DataError(f"fake text dataset has no split {split!r}")
        return [self._texts[split][int(s)] for s in np.asarray(serials)]

    def extras(self, split: str, serials: npt.NDArray[np.int64]) -> dict[str, list[str]]:
        hosts = [f"host-{int(s) % 4}" for s in np.asarray(serials)]
        return {"host": hosts}


def system_messages(count: int, offset: int = 0) -> tuple[list[str], npt.NDArray[np.int64]]:
    """`count` messages cycling through the three systems, and their class indices."""
    names = SYSTEMS.names
    classes = np.arange(count, dtype=np.int64) % len(names)
    texts = [WORDS[names[c]].format(i=i + offset) for i, c in enumerate(classes.tolist())]
    return texts, classes


def system_source(train: int = 30, test: int = 12, dims: int = 4) -> FakeTextSource:
    """Messages whose vectors sit near their class index: a model separates them at once."""
    rng = np.random.default_rng(0)
    train_texts, train_y = system_messages(train)
    test_texts, test_y = system_messages(test, offset=1000)

    def vectors(classes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        noise = rng.random((len(classes), dims)) * 0.1
        return (noise + classes[:, None]).astype(np.float32)

    return FakeTextSource(
        SYSTEMS, train_texts, vectors(train_y), train_y, test_texts, vectors(test_y), test_y
    )
