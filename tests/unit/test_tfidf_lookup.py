"""The tfidf n-gram lookup: a hash table that finds exactly what a dictionary finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.adapters.text.tfidf import _CodeTable


def expected(table_codes: np.ndarray, queries: np.ndarray) -> list[int]:
    """The feature of each query (-1 when absent), as a dictionary gives it."""
    features = {int(code): index for index, code in enumerate(table_codes) if code >= 0}
    return [features.get(int(q), -1) for q in queries]


def found_features(table: _CodeTable, queries: np.ndarray) -> list[int]:
    features, found = table.lookup(queries)
    return [int(f) if hit else -1 for f, hit in zip(features, found, strict=True)]


def test_codes_sharing_a_slot_are_still_found() -> None:
    rng = np.random.default_rng(0)
    codes = rng.choice(2**62, 20_000, replace=False).astype(np.int64)
    codes[::97] = -1  # n-grams that cannot be encoded
    table = _CodeTable.build(codes)
    assert np.count_nonzero(table.slot_features == -2) > 50  # some slots are shared
    queries = np.concatenate([codes, rng.integers(-1, 2**62, 20_000), codes[:3] + 1])
    assert found_features(table, queries) == expected(codes, queries)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-1, 2**63 - 1), max_size=300, unique=True),
    st.lists(st.integers(-1, 2**63 - 1), max_size=300),
)
def test_the_lookup_matches_a_dictionary(codes: list[int], others: list[int]) -> None:
    table_codes = np.array(codes, np.int64)
    table = _CodeTable.build(table_codes)
    queries = np.array(codes + others, np.int64)
    assert found_features(table, queries) == expected(table_codes, queries)
