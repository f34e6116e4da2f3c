"""The text port: an `Embedder` turns messages into fixed-size vectors the SSVAE can read.

Adapters (a pretrained sentence encoder, a TF-IDF + SVD reduction) implement it; a cache keys
stored vectors by `texts_fingerprint(texts)` together with the embedder's `fingerprint()`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:  # annotations only: the CLI reads the names below without loading numpy
    import numpy as np
    import numpy.typing as npt

# The embedders and scalings a text dataset can use: the settings, the data source and the CLI
# all validate against these, so a new one is added here once.
EMBEDDERS: tuple[str, ...] = ("tfidf", "minilm")
SCALINGS: tuple[str, ...] = ("none", "standardise", "l2")


@attrs.frozen
class LoghubTask:
    """A labelling task on the built-in Loghub sample: which column labels a message, and how
    many messages a class needs to be one (a rarer template gives a classifier too little)."""

    name: str
    label_column: str
    min_class_size: int


LOGHUB_TASKS: Mapping[str, LoghubTask] = {
    task.name: task
    for task in (LoghubTask("system", "system", 1), LoghubTask("event", "event_id", 20))
}


class Embedder(Protocol):
    """Turns texts into float32 vectors, one row per text, in the order given."""

    @property
    def dimension(self) -> int:
        """The width d of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """A (len(texts), d) float32 array; the same text always gives the same row."""
        ...

    def fingerprint(self) -> str:
        """A stable hex id of all that decides the vectors (weights, vocabulary, settings)."""
        ...


def texts_fingerprint(texts: Sequence[str]) -> str:
    """The sha256 hex digest of `texts` in order (length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    digest.update(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
