"""TF-IDF text vectors reduced by a seeded truncated SVD: a fast embedder needing no model files.

`fit(texts)` learns, with scikit-learn, a word (1-2 gram) and a character (char_wb 3-5 gram)
TF-IDF vocabulary on the pool and an SVD of their concatenation; `embed(texts)` then maps any
text the same way. `embed` does not call scikit-learn's analyzers (about 7,000 texts/s): it
encodes every n-gram as one integer (a number in base "alphabet size + 1") and looks all of
them up at once with numpy, which gives the same TF-IDF matrix many times faster. `save` and
`load` use one .npz file holding arrays and a JSON document (no pickle).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ssvae.adapters.files import atomic_writer
from ssvae.adapters.json_limits import load_json_bounded
from ssvae.domain.errors import DataError

FORMAT = "ssvae-tfidf-1"
WORD_PATTERN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
CHAR_NGRAMS = (3, 4, 5)
# Codes of up to five characters must fit in int64: (alphabet + 1) ** 5 < 2 ** 63.
MAX_ALPHABET = 6207

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@attrs.frozen
class TfidfSettings:
    """Everything that decides the vectors besides the pool."""

    dim: int = 256
    seed: int = 0
    min_df: int = 2
    max_word_features: int = 16384
    max_char_features: int = 16384
    sublinear_tf: bool = True


class _MissingIsMinusOne(dict[str, int]):
    """A token-to-id map whose lookups of unknown tokens give -1, at C speed for known ones."""

    def __missing__(self, key: str) -> int:
        return -1


# 2**64 divided by the golden ratio: multiplying by it spreads codes evenly over the slots.
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_SLOTS_PER_CODE = 8  # few codes share a slot, and the table stays small enough for the cache


@attrs.frozen
class _CodeTable:
    """Integer codes of a vocabulary's n-grams and the feature index of each.

    A code is looked up in a hash table (a slot per code, the code's top bits after a
    multiplication), which is several times faster than a binary search of millions of codes
    a batch; the few codes that share a slot with another are found by the binary search.
    """

    codes: IntArray  # sorted
    features: IntArray
    shift: np.uint64
    slot_codes: IntArray  # the code in each slot; -2 (never a code) where none is alone
    slot_features: IntArray  # its feature; -1 where the slot is empty, -2 where it is shared

    @classmethod
    def build(cls, codes: IntArray) -> _CodeTable:
        valid = np.flatnonzero(codes >= 0)  # n-grams that cannot be encoded never match
        order = np.argsort(codes[valid], kind="stable")
        codes, features = codes[valid][order], valid[order].astype(np.int64)
        bits = max(10, int(np.ceil(np.log2(max(1, len(codes)) * _SLOTS_PER_CODE))))
        shift = np.uint64(64 - bits)
        slots = _slots(codes, shift)
        shared = np.bincount(slots, minlength=1 << bits) > 1
        slot_codes = np.full(1 << bits, -2, np.int64)
        slot_features = np.full(1 << bits, -1, np.int64)
        slot_codes[slots], slot_features[slots] = codes, features
        slot_codes[shared], slot_features[shared] = -2, -2
        return cls(codes, features, shift, slot_codes, slot_features)

    def lookup(self, codes: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """(feature index, found) of each code."""
        if len(self.codes) == 0:
            return np.zeros(len(codes), np.int64), np.zeros(len(codes), bool)
        slots = _slots(codes, self.shift)
        features = self.slot_features[slots]
        found = (self.slot_codes[slots] == codes) & (features >= 0)
        shared = np.flatnonzero(features == -2)
        if len(shared):
            wanted = codes[shared]
            at = np.minimum(np.searchsorted(self.codes, wanted), len(self.codes) - 1)
            features[shared] = self.features[at]
            found[shared] = self.codes[at] == wanted
        return features, found


def _slots(codes: IntArray, shift: np.uint64) -> npt.NDArray[np.intp]:
    """The hash-table slot of each code: the top bits of code times the multiplier (mod 2**64)."""
    return ((codes.astype(np.uint64) * _HASH_MULTIPLIER) >> shift).astype(np.intp)


class WordNgrams:
    """Counts a word vocabulary's unigrams and bigrams in many texts at once."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        tokens = sorted({t for entry in vocabulary for t in entry.split(" ")})
        self.token_ids = _MissingIsMinusOne({t: i for i, t in enumerate(tokens)})
        self.base = len(tokens) + 1
        codes = np.array([self._code(entry.split(" ")) for entry in vocabulary], np.int64)
        self.table = _CodeTable.build(codes)
        self.size = len(vocabulary)

    def _code(self, parts: list[str]) -> int:
        ids = [self.token_ids[p] for p in parts]
        return ids[0] if len(ids) == 1 else (ids[0] + 1) * self.base + ids[1]

    def count(self, lowered: Sequence[str]) -> tuple[IntArray, IntArray]:
        """(text index, feature index) of every vocabulary n-gram occurrence."""
        tokens_per_text = [WORD_PATTERN.findall(text) for text in lowered]
        counts = np.fromiter(map(len, tokens_per_text), np.int64, len(tokens_per_text))
        flat = chain.from_iterable(tokens_per_text)
        ids = np.fromiter(map(self.token_ids.__getitem__, flat), np.int64, int(counts.sum()))
        text_of = np.repeat(np.arange(len(lowered), dtype=np.int64), counts)
        pair = (text_of[:-1] == text_of[1:]) & (ids[:-1] >= 0) & (ids[1:] >= 0)
        unigram = ids >= 0
        codes = np.concatenate([ids[unigram], (ids[:-1][pair] + 1) * self.base + ids[1:][pair]])
        owners = np.concatenate([text_of[unigram], text_of[:-1][pair]])
        features, found = self.table.lookup(codes)
        return owners[found], features[found]


class CharNgrams:
    """Counts a char_wb vocabulary's 3-5 grams (within space-padded words) in many texts."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        frequency: dict[str, int] = {}
        for gram in vocabulary:
            for ch in gram:
                frequency[ch] = frequency.get(ch, 0) + 1
        # Beyond MAX_ALPHABET characters the rarest ones are dropped: their n-grams never match.
        kept = sorted(frequency, key=lambda ch: (-frequency[ch], ch))[:MAX_ALPHABET]
        self.digit_of = np.zeros(max((ord(ch) for ch in kept), default=0) + 1, np.int64)
        self.digit_of[[ord(ch) for ch in kept]] = np.arange(1, len(kept) + 1)
        self.base = len(kept) + 1
        digit = {ch: i + 1 for i, ch in enumerate(kept)}
        codes = np.array([self._gram_code(gram, digit) for gram in vocabulary], np.int64)
        self.table = _CodeTable.build(codes)
        self.size = len(vocabulary)

    def _gram_code(self, gram: str, digit: dict[str, int]) -> int:
        """Σ digit(gram[i]) * base**i, as `_codes` computes it for text windows; -1 if unknown."""
        code = 0
        for ch in reversed(gram):
            if ch not in digit:
                return -1
            code = code * self.base + digit[ch]
        return code

    def _digits(self, text: str) -> IntArray:
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        points = points.astype(np.int64)
        inside = points < len(self.digit_of)
        return np.where(inside, self.digit_of[np.where(inside, points, 0)], 0)

    def _codes(self, digits: IntArray, n: int) -> IntArray:
        """The code of every length-n window of `digits`; -1 where a character is unknown."""
        windows = len(digits) - n + 1
        if windows <= 0:
            return np.zeros(0, np.int64)
        code = np.zeros(windows, np.int64)
        valid = np.ones(windows, bool)
        for i in range(n - 1, -1, -1):
            part = digits[i : i + windows]
            code = code * self.base + part
            valid &= part > 0
        return np.where(valid, code, -1)

    def count(self, lowered: Sequence[str]) -> tuple[IntArray, IntArray]:
        """(text index, feature index) of every vocabulary n-gram occurrence."""
        # " w1  w2 " is the concatenation of scikit-learn's padded words " w1 " and " w2 ". A
        # window across two words or two texts holds two spaces in a row, which no char_wb
        # n-gram has, so it never matches and no separator is needed.
        padded = [
            " " + "  ".join(words) + " " if words else "" for words in map(str.split, lowered)
        ]
        lengths = np.fromiter(map(len, padded), np.int64, len(padded))
        digits = self._digits("".join(padded))
        text_of = np.repeat(np.arange(len(padded), dtype=np.int64), lengths)
        owners, features = [], []
        for n in CHAR_NGRAMS:
            codes = self._codes(digits, n)
            index, found = self.table.lookup(codes)
            found &= codes >= 0
            owners.append(text_of[: len(codes)][found])
            features.append(index[found])
        return np.concatenate(owners), np.concatenate(features)


@attrs.frozen
class TfidfState:
    """A fitted model: vocabularies and idf weights of both analyzers, and the SVD components."""

    settings: TfidfSettings
    word_vocabulary: tuple[str, ...]
    char_vocabulary: tuple[str, ...]
    word_idf: FloatArray
    char_idf: FloatArray
    components: FloatArray  # (dim, word features + char features)


class TfidfEmbedder:
    """Word and character n-gram TF-IDF, reduced by a seeded truncated SVD, rows L2-normalised."""

    def __init__(
        self,
        dim: int = 256,
        seed: int = 0,
        min_df: int = 2,
        max_word_features: int = 16384,
        max_char_features: int = 16384,
        sublinear_tf: bool = True,
    ) -> None:
        if dim < 1 or min_df < 1 or max_word_features < 1 or max_char_features < 1:
            raise DataError("tfidf dim, min_df and feature limits must be at least 1")
        self.settings = TfidfSettings(
            dim, seed, min_df, max_word_features, max_char_features, sublinear_tf
        )
        self._state: TfidfState | None = None
        self._fingerprint: str | None = None
        self._projection: FloatArray = np.zeros((0, dim), np.float32)
        self._word: WordNgrams | None = None
        self._char: CharNgrams | None = None

    @property
    def dimension(self) -> int:
        """The SVD dimension."""
        return self.settings.dim

    @property
    def state(self) -> TfidfState:
        """The fitted model; DataError before `fit` or `load`."""
        if self._state is None:
            raise DataError("the tfidf embedder is not fitted; call fit(texts) on the pool first")
        return self._state

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        """Learn vocabularies, idf weights and the SVD from the pool `texts`; returns self."""
        self._set_state(fit_state(self.settings, texts))
        return self

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """A (len(texts), dim) float32 array; repeated texts are computed once."""
        state = self.state
        unique: dict[str, int] = {}
        where = np.fromiter(
            (unique.setdefault(t, len(unique)) for t in texts), np.int64, len(texts)
        )
        lowered = [t.lower() for t in unique]
        assert self._word is not None and self._char is not None
        word = _tfidf_matrix(self._word.count(lowered), len(lowered), state, "word")
        char = _tfidf_matrix(self._char.count(lowered), len(lowered), state, "char")
        vectors = np.asarray(sp.hstack([word, char], format="csr") @ self._projection)
        return _normalise_rows(vectors.astype(np.float32))[where]

    def fingerprint(self) -> str:
        """sha256 of the settings, vocabularies, idf weights and components."""
        if self._fingerprint is None:
            digest = hashlib.sha256(FORMAT.encode())
            digest.update(_metadata_json(self.state).encode())
            for array in (self.state.word_idf, self.state.char_idf, self.state.components):
                digest.update(np.ascontiguousarray(array).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def save(self, path: Path) -> None:
        """Write the fitted model to `path` (.npz: arrays plus a JSON document) atomically."""
        state = self.state
        buffer = io.BytesIO()
        # Uncompressed: the SVD components (dim x 32,768 floats) barely compress (34 MB to 31
        # at 256 values) and deflating them took about 3 s a save.
        np.savez(
            buffer,
            metadata=np.frombuffer(_metadata_json(state).encode("utf-8"), np.uint8),
            word_idf=state.word_idf,
            char_idf=state.char_idf,
            components=state.components,
        )
        with atomic_writer(Path(path)) as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> TfidfEmbedder:
        """A fitted embedder read from a file written by `save`."""
        state = _read_state(Path(path))
        embedder = cls(**attrs.asdict(state.settings))
        embedder._set_state(state)
        return embedder

    def _set_state(self, state: TfidfState) -> None:
        self._state = state
        self._fingerprint = None
        # The SVD components transposed, in C order: scipy copies a transposed view into C
        # order on every product, 32 MB a batch at 256 values.
        self._projection = np.ascontiguousarray(state.components.T)
        self._word = WordNgrams(state.word_vocabulary)
        self._char = CharNgrams(state.char_vocabulary)


# Values per message unless a width is given: fewer when a small file's messages do not allow
# as many (`fitted_tfidf` with no width, in adapters/data/text_source.py).
DEFAULT_DIM = 256


def narrowed_note(texts: int, dimension: int) -> str:
    """The one line that tells a user the default width was narrowed to fit their messages."""
    return (
        f"{texts} messages allow at most {dimension} tfidf values, so the vectors have "
        f"{dimension} instead of {DEFAULT_DIM} (--embedder-dim sets the width)"
    )


def widest_dim(texts: int, features: int) -> int:
    """The widest SVD that `texts` messages with `features` n-grams allow."""
    return min(texts, features - 1)


class TfidfWidthError(DataError):
    """The tfidf width asked for is wider than the messages allow; `widest` is what they do."""

    def __init__(self, dim: int, widest: int, texts: int, features: int) -> None:
        self.dim, self.widest = dim, widest
        fix = (
            f"use --embedder-dim {widest} or less, or give more messages"
            if widest >= 2
            else "give more messages"
        )
        super().__init__(
            f"tfidf width {dim} (--embedder-dim) needs at least {dim} messages and more than "
            f"{dim} distinct word and character n-grams; these {texts} messages give "
            f"{features} n-grams: {fix}"
        )


def fit_state(settings: TfidfSettings, texts: Sequence[str]) -> TfidfState:
    """Fit both TF-IDF vectorizers and the truncated SVD (scikit-learn) on `texts`."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    common: dict[str, Any] = {
        "lowercase": True,
        "min_df": settings.min_df,
        "sublinear_tf": settings.sublinear_tf,
        "dtype": np.float32,
    }
    word = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), max_features=settings.max_word_features, **common
    )
    char = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), max_features=settings.max_char_features, **common
    )
    texts = list(texts)
    try:
        matrix = sp.hstack([word.fit_transform(texts), char.fit_transform(texts)], format="csr")
    except ValueError:  # "empty vocabulary", or no n-gram in min_df of the texts
        raise DataError(
            f"tfidf cannot learn from these {len(texts)} messages: no word or 3-5 character "
            f"fragment occurs in {settings.min_df} or more of them; give more messages"
        ) from None
    widest = widest_dim(len(texts), matrix.shape[1])
    if settings.dim > widest:
        raise TfidfWidthError(settings.dim, widest, len(texts), matrix.shape[1])
    svd = TruncatedSVD(settings.dim, random_state=settings.seed).fit(matrix)
    return TfidfState(
        settings=settings,
        word_vocabulary=tuple(str(t) for t in word.get_feature_names_out()),
        char_vocabulary=tuple(str(t) for t in char.get_feature_names_out()),
        word_idf=np.asarray(word.idf_, np.float32),
        char_idf=np.asarray(char.idf_, np.float32),
        components=np.ascontiguousarray(svd.components_, np.float32),
    )


def _tfidf_matrix(
    occurrences: tuple[IntArray, IntArray], rows: int, state: TfidfState, part: str
) -> sp.csr_matrix:
    """Counts to TF-IDF rows as scikit-learn computes them: (1 + log) tf, times idf, L2 rows."""
    idf = state.word_idf if part == "word" else state.char_idf
    owners, features = occurrences
    counts = sp.csr_matrix(
        (np.ones(len(owners), np.float32), (owners, features)), shape=(rows, len(idf))
    )
    counts.sum_duplicates()
    data = counts.data
    if state.settings.sublinear_tf:
        data = np.log(data) + np.float32(1.0)
    data = data * idf[counts.indices]
    row_of = np.repeat(np.arange(rows), np.diff(counts.indptr))
    norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=rows)).astype(np.float32)
    counts.data = (data / norms[row_of]).astype(np.float32)
    return counts


def _normalise_rows(x: FloatArray) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)


def _metadata_json(state: TfidfState) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "settings": attrs.asdict(state.settings),
            "word_vocabulary": list(state.word_vocabulary),
            "char_vocabulary": list(state.char_vocabulary),
        },
        sort_keys=True,
    )


def _read_state(path: Path) -> TfidfState:
    """Parse and validate a saved model; DataError says what is wrong with the file."""
    if not path.is_file():
        raise DataError(f"tfidf model {path} does not exist; fit the embedder and save it first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = load_json_bounded(arrays["metadata"].tobytes())
        if meta.get("format") != FORMAT:
            raise DataError(f"tfidf model {path} has format {meta.get('format')!r}, not {FORMAT}")
        state = TfidfState(
            settings=TfidfSettings(**meta["settings"]),
            word_vocabulary=tuple(meta["word_vocabulary"]),
            char_vocabulary=tuple(meta["char_vocabulary"]),
            word_idf=arrays["word_idf"].astype(np.float32),
            char_idf=arrays["char_idf"].astype(np.float32),
            components=arrays["components"].astype(np.float32),
        )
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"tfidf model {path} is unreadable ({exc}); fit and save it again") from exc
    expected = (state.settings.dim, len(state.word_vocabulary) + len(state.char_vocabulary))
    consistent = (
        state.components.shape == expected
        and state.word_idf.shape == (len(state.word_vocabulary),)
        and state.char_idf.shape == (len(state.char_vocabulary),)
    )
    if not consistent:
        raise DataError(f"tfidf model {path} has inconsistent array shapes; fit and save it again")
    return state
