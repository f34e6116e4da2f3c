"""cached_embed: a second call with the same texts and settings reads the stored vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssvae.adapters.text.cache import cache_key, cached_embed


class CountingEmbedder:
    """Hash-seeded random vectors; counts the texts it embeds."""

    def __init__(self, settings: str = "a", dimension: int = 4) -> None:
        self.settings = settings
        self.dimension = dimension
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [np.random.default_rng(sum(map(ord, t))).random(self.dimension) for t in texts]
        return np.array(rows, np.float32).reshape(len(texts), self.dimension)

    def fingerprint(self) -> str:
        return f"counting-{self.settings}-{self.dimension}"


def test_hit_returns_identical_vectors_without_recomputing(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    texts = ["disk full", "link down", "disk full"]
    first = cached_embed(embedder, texts, tmp_path)
    second = cached_embed(embedder, texts, tmp_path)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32 and embedder.calls == [3]
    assert [p.name for p in tmp_path.iterdir()] == [f"{cache_key(embedder, texts)}.npy"]


def test_other_texts_or_settings_miss(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    cached_embed(embedder, ["a", "b"], tmp_path)
    cached_embed(embedder, ["b", "a"], tmp_path)
    cached_embed(embedder, ["ab"], tmp_path)
    other = CountingEmbedder(settings="b")
    cached_embed(other, ["a", "b"], tmp_path)
    assert embedder.calls == [2, 2, 1] and other.calls == [2]
    assert len(list(tmp_path.iterdir())) == 4


def test_corrupt_or_wrong_shape_file_is_recomputed(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    texts = ["x", "y"]
    path = tmp_path / f"{cache_key(embedder, texts)}.npy"
    path.write_bytes(b"garbage")
    good = cached_embed(embedder, texts, tmp_path)
    np.save(path, np.zeros((3, 4), np.float32))
    again = cached_embed(embedder, texts, tmp_path)
    np.testing.assert_array_equal(good, again)
    assert embedder.calls == [2, 2]
    assert np.load(path).shape == (2, 4)
