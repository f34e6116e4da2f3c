"""The text port: an `Embedder` turns messages into fixed-size vectors the SSVAE can read.

Adapters (a pretrained sentence encoder, a TF-IDF + SVD reduction) implement it; a cache keys
stored vectors by `texts_fingerprint(texts)` together with the embedder's `fingerprint()`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:  # annotations only: the CLI reads the names below without loading numpy
    from pathlib import Path

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


class EmbeddedFile(Protocol):
    """What embedding a file of messages wrote: the CLI reports it to the user."""

    @property
    def out(self) -> Path: ...

    @property
    def rows(self) -> int: ...

    @property
    def dimension(self) -> int: ...

    @property
    def labelled(self) -> int: ...

    @property
    def seconds(self) -> float: ...

    @property
    def note(self) -> str | None:
        """One line for the user when the vectors are narrower than asked, else None."""
        ...


class TextFileEmbedder(Protocol):
    """Writes every message of a text file as a vector (and its label) to a vectors file."""

    def __call__(
        self,
        input_path: Path,
        out_path: Path,
        *,
        embedder: str = ...,
        embedder_dim: int | None = ...,
        embedder_folder: Path | None = ...,
        id_column: str | None = ...,
        text_column: str | None = ...,
        label_column: str | None = ...,
        cache_dir: Path | None = ...,
        stage: Callable[[str], None] = ...,
        progress: Callable[[int, int], None] = ...,
        restart: bool = ...,
        chunk_rows: int = ...,
    ) -> EmbeddedFile: ...


def texts_fingerprint(texts: Sequence[str]) -> str:
    """The sha256 hex digest of `texts` in order (length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    digest.update(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
