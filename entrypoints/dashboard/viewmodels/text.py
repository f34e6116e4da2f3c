"""The messages behind a text dataset's map points: looked up by map row and searched.

Row-aligned with the map (`PoolMap.serials`, ascending), read once per model from the data
source's `TextCatalog`, so a hover, a click or a search costs no trip to the data files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ssvae.domain.labels import ascending_unique
from ssvae.domain.ports import TextCatalog
from ssvae.domain.text_examples import TextExamples, text_examples
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, PoolMap

IntArray = npt.NDArray[np.int64]
POOL_EXAMPLES = 3  # messages per mixture component beside the queue
POOL_SPLIT = "train"  # a workspace's pool is drawn from this split
SEARCH_LIMIT = 100_000  # more matches than any pool holds: a query never truncates silently


class PoolTexts:
    """The message and extra columns of every pool point, by map row."""

    def __init__(
        self,
        serials: npt.ArrayLike,
        texts: Sequence[str],
        extras: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.serials = np.asarray(serials, np.int64)
        if not ascending_unique(self.serials):
            raise DashboardError("pool serials must be ascending and unique, as the map holds them")
        self._texts = [str(t) for t in texts]
        self._folded = [t.casefold() for t in self._texts]
        self._extras = {
            str(name): [str(v) for v in values] for name, values in (extras or {}).items()
        }
        sizes = {len(self._texts), *(len(v) for v in self._extras.values())}
        if sizes != {len(self.serials)}:
            raise DashboardError(
                f"{len(self.serials)} pool serials but texts or extra columns of lengths "
                f"{sorted(sizes)}; the dataset must give one value per serial"
            )

    @classmethod
    def from_catalog(
        cls, catalog: TextCatalog, serials: npt.ArrayLike, split: str = POOL_SPLIT
    ) -> PoolTexts:
        """The messages of `serials` (ascending) of `split`, read once from the catalog."""
        chosen = np.asarray(serials, np.int64)
        return cls(chosen, catalog.texts(split, chosen), catalog.extras(split, chosen))

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def texts(self) -> list[str]:
        """Every message, by map row."""
        return list(self._texts)

    @property
    def extra_names(self) -> tuple[str, ...]:
        """The names of the extra display columns."""
        return tuple(self._extras)

    def text(self, row: int) -> str:
        """The message at map row `row`."""
        return self._texts[row]

    def texts_of(self, rows: npt.ArrayLike) -> list[str]:
        """The messages at map rows `rows`, in that order."""
        return [self._texts[int(r)] for r in np.atleast_1d(np.asarray(rows, np.int64))]

    def listed(self, rows: npt.ArrayLike, width: int) -> list[tuple[str, int]]:
        """(serial and message on one line of about `width` characters, serial) for each of
        map rows `rows`, in that order: a list of matches to choose from."""
        chosen = np.atleast_1d(np.asarray(rows, np.int64))
        return [
            (f"{serial}: {shortened(text, width)}", serial)
            for serial, text in zip(
                self.serials[chosen].tolist(), self.texts_of(chosen), strict=True
            )
        ]

    def extras_of(self, row: int) -> tuple[tuple[str, str], ...]:
        """(column, value) of every extra column at map row `row`."""
        return tuple((name, values[row]) for name, values in self._extras.items())

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> IntArray:
        """Map rows whose message contains `query` (case-insensitive), ascending; at most
        `limit`. An empty or blank query matches nothing."""
        needle = query.strip().casefold()
        if not needle:
            return np.zeros(0, np.int64)
        found = [row for row, text in enumerate(self._folded) if needle in text]
        return np.asarray(found[:limit], np.int64)


def shortened(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis when longer."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: max(limit - 1, 0)] + "…"


def pool_examples(pool_map: PoolMap, texts: PoolTexts, count: int = POOL_EXAMPLES) -> TextExamples:
    """What the model holds in its pool: per class and per mixture component, the `count`
    messages it is surest of (the queue page shows them where image data shows generated
    samples)."""
    if not np.array_equal(texts.serials, pool_map.serials):
        raise DashboardError("the texts must be row-aligned with the map's serials")
    return text_examples(
        pool_map.serials,
        pool_map.class_probs,
        pool_map.responsibilities,
        pool_map.true_classes,
        pool_map.vocabulary.names,
        lambda serials: texts.texts_of(pool_map.rows_of(serials)),
        source=f"the {len(pool_map):,} pool messages",
        count=count,
    )
