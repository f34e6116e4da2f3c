"""A disk cache of embeddings: one .npy file per (embedder fingerprint, texts fingerprint).

Embedding a pool with a sentence encoder takes minutes; the same texts with the same embedder
settings give the same vectors, so they are computed once and read back afterwards.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ssvae.adapters.files import atomic_write_bytes
from ssvae.domain.text import Embedder, texts_fingerprint


def cache_key(embedder: Embedder, texts: Sequence[str]) -> str:
    """The sha256 hex digest naming the cache file of `texts` embedded by `embedder`."""
    digest = hashlib.sha256()
    digest.update(embedder.fingerprint().encode())
    digest.update(texts_fingerprint(texts).encode())
    return digest.hexdigest()


def cached_embed(
    embedder: Embedder, texts: Sequence[str], cache_dir: Path
) -> npt.NDArray[np.float32]:
    """`embedder.embed(texts)`, read from `cache_dir` when an earlier call stored it.

    A cache file that is unreadable or has the wrong shape is recomputed and replaced; files
    are written atomically, so a crash never leaves half a file behind.
    """
    path = Path(cache_dir) / f"{cache_key(embedder, texts)}.npy"
    stored = _read(path, (len(texts), embedder.dimension))
    if stored is not None:
        return stored
    vectors = np.ascontiguousarray(embedder.embed(texts), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return vectors


def _read(path: Path, shape: tuple[int, int]) -> npt.NDArray[np.float32] | None:
    """The cached array, or None when absent, unreadable or not of `shape` float32."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.shape != shape or array.dtype != np.float32:
        return None
    return np.asarray(array, np.float32)


class ProgressEmbedder:
    """An Embedder that embeds in chunks and reports the texts done after each chunk.

    It gives the inner embedder's vectors and fingerprint, so cached results are shared.
    """

    def __init__(
        self, inner: Embedder, report: Callable[[int, int], None], chunk: int = 1024
    ) -> None:
        self.inner = inner
        self.report = report
        self.chunk = max(1, chunk)

    @property
    def dimension(self) -> int:
        """The inner embedder's width."""
        return self.inner.dimension

    def fingerprint(self) -> str:
        """The inner embedder's fingerprint."""
        return self.inner.fingerprint()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The inner embedder's vectors, computed `chunk` texts at a time."""
        parts = [np.zeros((0, self.dimension), np.float32)]
        for start in range(0, len(texts), self.chunk):
            part = texts[start : start + self.chunk]
            parts.append(np.asarray(self.inner.embed(part), np.float32))
            self.report(start + len(part), len(texts))
        return np.concatenate(parts)
