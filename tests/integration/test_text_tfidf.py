"""TfidfEmbedder on Loghub messages: scikit-learn's TF-IDF exactly, seeded, saved and reloaded."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from reference_data import LOGHUB_MESSAGES
from sklearn.feature_extraction.text import TfidfVectorizer

from ssvae.adapters.text.tfidf import TfidfEmbedder, TfidfWidthError, _tfidf_matrix
from ssvae.domain.errors import DataError

MESSAGES = LOGHUB_MESSAGES
TRICKY = [
    "",
    "   ",
    "a",
    "I  am\tHERE\n now",
    "Ünïcödé façade — naïve café ÅÄÖ",
    "x=1 y=22 zzz=333 /var/log/messages:42",
    "日志 错误 error error error",
    "İstanbul ǅemal ﬃ",  # lower() changes the length of these
]


@pytest.fixture(scope="module")
def pool() -> list[str]:
    with MESSAGES.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return texts[::10]  # 2,000 messages from every system


@pytest.fixture(scope="module")
def fitted(pool: list[str]) -> TfidfEmbedder:
    return TfidfEmbedder(dim=32, seed=3).fit(pool)


def test_shapes_dtype_and_unit_rows(fitted: TfidfEmbedder, pool: list[str]) -> None:
    vectors = fitted.embed(pool[:300] + TRICKY)
    assert vectors.shape == (300 + len(TRICKY), 32) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[:300], 1.0, atol=1e-5)
    assert norms[300] == 0.0  # the empty text has no n-gram at all
    assert fitted.embed([]).shape == (0, 32)


def test_matches_scikit_learn_transform(fitted: TfidfEmbedder, pool: list[str]) -> None:
    state = fitted.state
    texts = pool[:500] + TRICKY + [t.upper() for t in pool[:20]]
    lowered = [t.lower() for t in texts]
    assert fitted._word is not None and fitted._char is not None
    for part, counter, vocabulary, idf, options in [
        ("word", fitted._word, state.word_vocabulary, state.word_idf, {"ngram_range": (1, 2)}),
        ("char", fitted._char, state.char_vocabulary, state.char_idf,
         {"analyzer": "char_wb", "ngram_range": (3, 5)}),
    ]:  # fmt: skip
        reference = TfidfVectorizer(
            vocabulary=list(vocabulary), sublinear_tf=True, dtype=np.float32, **options
        ).fit(texts[:1])
        reference.idf_ = idf
        expected = reference.transform(texts).toarray()
        ours = _tfidf_matrix(counter.count(lowered), len(texts), state, part).toarray()
        np.testing.assert_allclose(ours, expected, atol=1e-6)
        assert np.count_nonzero(expected) > 1000


def test_same_seed_same_vectors_other_seed_other_basis(
    fitted: TfidfEmbedder, pool: list[str]
) -> None:
    first = fitted  # seed 3
    again = TfidfEmbedder(dim=32, seed=3).fit(pool)
    np.testing.assert_array_equal(first.embed(pool[:200]), again.embed(pool[:200]))
    assert first.fingerprint() == again.fingerprint()
    other = TfidfEmbedder(dim=32, seed=4).fit(pool)
    assert other.fingerprint() != first.fingerprint()


def test_repeats_and_order(fitted: TfidfEmbedder, pool: list[str]) -> None:
    vectors = fitted.embed([pool[7], pool[3], pool[7]])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_allclose(vectors[1], fitted.embed([pool[3]])[0], atol=1e-6)


def test_save_and_load_give_identical_vectors(
    fitted: TfidfEmbedder, pool: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "workspace" / "tfidf.npz"
    fitted.save(path)
    loaded = TfidfEmbedder.load(path)
    texts = pool[::3] + TRICKY
    np.testing.assert_array_equal(loaded.embed(texts), fitted.embed(texts))
    assert loaded.fingerprint() == fitted.fingerprint()
    assert loaded.settings == fitted.settings
    assert [p.name for p in path.parent.iterdir()] == ["tfidf.npz"]  # no temporary left over


def test_unfitted_missing_and_corrupt_models_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not fitted"):
        TfidfEmbedder().embed(["x"])
    with pytest.raises(DataError, match="does not exist"):
        TfidfEmbedder.load(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="unreadable"):
        TfidfEmbedder.load(tmp_path / "bad.npz")


def test_too_small_pools_are_data_errors_in_terms_a_user_controls() -> None:
    texts = ["disk full on node one", "disk full on node two"] * 10
    with pytest.raises(TfidfWidthError, match="--embedder-dim 20 or less") as wide:
        TfidfEmbedder(dim=64).fit(texts)
    assert wide.value.widest == 20  # 20 messages: the SVD is at most as wide as the pool
    assert TfidfEmbedder(dim=wide.value.widest).fit(texts).embed(texts).shape == (20, 20)
    with pytest.raises(DataError, match="cannot learn from these 3 messages") as tiny:
        TfidfEmbedder(dim=2).fit(["alpha", "beta", "gamma"])
    # min_df is no option of the CLI or the settings: the message must not send users to it.
    assert "min_df" not in str(tiny.value) and "give more messages" in str(tiny.value)
