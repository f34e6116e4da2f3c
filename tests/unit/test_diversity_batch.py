"""Batch-diverse uncertainty selection and cold start on constructed latent spaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.diversity import (
    cold_start,
    cold_start_scored,
    diverse_top_uncertain,
    k_center_greedy,
)

FAST = settings(max_examples=30, deadline=None)


def clustered_pool(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 near-duplicates of one confusing sample (most uncertain) and 25 other uncertain
    clusters of 8, 10 apart on a grid: features, uncertainty scores, cluster of each row."""
    rng = np.random.default_rng(seed)
    duplicates = rng.normal(scale=0.01, size=(60, 2))
    centres = np.array([(10.0 * (i % 5) + 30.0, 10.0 * (i // 5)) for i in range(25)])
    others = np.repeat(centres, 8, axis=0) + rng.normal(scale=0.3, size=(200, 2))
    features = np.concatenate([duplicates, others])
    scores = np.concatenate([rng.uniform(0.95, 1.0, 60), rng.uniform(0.8, 0.9, 200)])
    clusters = np.concatenate([np.zeros(60, int), 1 + np.repeat(np.arange(25), 8)])
    order = rng.permutation(features.shape[0])  # rows in no particular order
    return features[order], scores[order], clusters[order]


def min_pairwise_distance(points: np.ndarray) -> float:
    differences = points[:, None, :] - points[None, :, :]
    distances = np.sqrt((differences**2).sum(axis=-1))
    return float(distances[np.triu_indices(points.shape[0], 1)].min())


@FAST
@given(st.integers(0, 2**32 - 1))
def test_a_diverse_batch_is_more_spread_out_than_plain_top_k(seed: int) -> None:
    features, scores, clusters = clustered_pool(seed)
    top_k = np.lexsort((np.arange(scores.size), -scores))[:20]
    diverse = diverse_top_uncertain(scores, features, 20, candidate_factor=10)
    assert min_pairwise_distance(features[diverse]) > min_pairwise_distance(features[top_k])
    assert np.unique(clusters[top_k]).size == 1  # 20 copies of one confusing sample
    assert np.unique(clusters[diverse]).size == 20  # one per cluster
    assert min_pairwise_distance(features[diverse]) > 5.0


def test_diverse_picks_stay_among_the_most_uncertain_candidates() -> None:
    features, scores, _ = clustered_pool(0)
    rows = diverse_top_uncertain(scores, features, 5, candidate_factor=3)
    candidates = np.lexsort((np.arange(scores.size), -scores))[:15]
    assert set(rows.tolist()) <= set(candidates.tolist())
    assert rows[0] == candidates[0]  # without labels the most uncertain goes first


def test_candidate_factor_one_is_plain_top_k_as_a_set() -> None:
    features, scores, _ = clustered_pool(1)
    rows = diverse_top_uncertain(scores, features, 7, candidate_factor=1)
    top_k = np.lexsort((np.arange(scores.size), -scores))[:7]
    assert sorted(rows.tolist()) == sorted(top_k.tolist())


def test_tied_scores_prefer_lower_rows_as_candidates() -> None:
    features = np.arange(10.0)[:, None]
    rows = diverse_top_uncertain(np.ones(10), features, 2, candidate_factor=2)
    assert sorted(rows.tolist()) == [0, 3]  # candidates 0..3; 0 first, then the farthest


def test_labelled_rows_are_fixed_centres_and_never_picked() -> None:
    features = np.array([[0.0], [0.1], [5.0], [5.1], [9.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    labelled = np.array([True, False, False, False, False])
    rows = diverse_top_uncertain(scores, features, 2, candidate_factor=2, labelled=labelled)
    # k * factor = 4 candidates: all unlabelled rows 1 to 4.
    assert rows.tolist() == [4, 2]  # 9.0 is farthest from the labelled 0.0, then 5.0


@FAST
@given(st.integers(0, 40), st.integers(0, 45), st.integers(1, 5), st.integers(0, 10**6))
def test_diverse_batches_are_unique_unlabelled_and_sized(
    n: int, k: int, factor: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 3))
    scores = rng.random(n).round(1)  # many ties
    labelled = rng.random(n) < 0.3
    rows = diverse_top_uncertain(scores, features, k, factor, labelled, seed)
    assert len(set(rows.tolist())) == rows.size == min(k, int((~labelled).sum()))
    assert not labelled[rows].any()
    np.testing.assert_array_equal(
        rows, diverse_top_uncertain(scores, features, k, factor, labelled, seed)
    )


def test_bad_scores_and_factor_are_reported() -> None:
    features = np.zeros((3, 2))
    with pytest.raises(AcquisitionError, match="got 2 scores for 3 samples"):
        diverse_top_uncertain(np.zeros(2), features, 1)
    with pytest.raises(AcquisitionError, match="candidate_factor"):
        diverse_top_uncertain(np.zeros(3), features, 1, candidate_factor=0)
    with pytest.raises(AcquisitionError, match="NaN"):
        diverse_top_uncertain(np.array([0.0, np.nan, 1.0]), features, 1)


# Cold start.


def mixture_pool() -> tuple[np.ndarray, np.ndarray]:
    """Three blobs; component 2 is the most used, component 3 owns no sample."""
    rng = np.random.default_rng(5)
    sizes = [10, 20, 40]
    features = np.concatenate(
        [rng.normal(loc=10.0 * c, size=(size, 2)) for c, size in enumerate(sizes)]
    )
    owner = np.repeat(np.arange(3), sizes)
    responsibilities = np.full((70, 4), 0.02)
    responsibilities[np.arange(70), owner] = rng.uniform(0.5, 0.9, 70)
    responsibilities[:, 3] = 0.05  # spread thinly: a dead component
    return features, responsibilities / responsibilities.sum(axis=1, keepdims=True)


def test_cold_start_takes_the_most_typical_sample_of_each_component_by_usage() -> None:
    features, resp = mixture_pool()
    rows, scores = cold_start_scored(features, 5, seed=0, responsibilities=resp)
    typical = [int(np.argmax(resp[:, c])) for c in (2, 1, 0)]
    assert rows[:3].tolist() == typical
    np.testing.assert_allclose(
        scores[:3], [resp[typical[0], 2], resp[typical[1], 1], resp[typical[2], 0]]
    )
    # The rest is k-center greedy with the typical rows as centres.
    centres = np.zeros(70, dtype=bool)
    centres[typical] = True
    assert rows[3:].tolist() == k_center_greedy(features, 2, centres).tolist()


def test_cold_start_with_fewer_picks_than_components_keeps_the_most_used() -> None:
    features, resp = mixture_pool()
    rows = cold_start(features, 2, responsibilities=resp)
    assert rows.tolist() == [int(np.argmax(resp[:, 2])), int(np.argmax(resp[:, 1]))]


def test_cold_start_without_responsibilities_is_k_center_greedy() -> None:
    features, _ = mixture_pool()
    for seed in range(3):
        np.testing.assert_array_equal(
            cold_start(features, 6, seed), k_center_greedy(features, 6, seed=seed)
        )


def test_a_sample_typical_of_two_components_is_taken_once() -> None:
    features = np.arange(4.0)[:, None]
    resp = np.array([[0.5, 0.5], [0.4, 0.6], [0.6, 0.4], [0.5, 0.5]])
    rows = cold_start(features, 2, responsibilities=resp)
    assert len(set(rows.tolist())) == 2


@FAST
@given(st.integers(0, 30), st.integers(0, 35), st.integers(1, 6), st.integers(0, 10**6))
def test_cold_starts_are_unique_unlabelled_and_sized(
    n: int, k: int, components: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 2))
    resp = rng.dirichlet(np.ones(components), size=n)
    labelled = rng.random(n) < 0.2
    rows = cold_start(features, k, seed, resp, labelled)
    assert len(set(rows.tolist())) == rows.size == min(k, int((~labelled).sum()))
    assert not labelled[rows].any()
    np.testing.assert_array_equal(rows, cold_start(features, k, seed, resp, labelled))


def test_bad_responsibilities_are_reported() -> None:
    with pytest.raises(AcquisitionError, match="responsibilities must have shape"):
        cold_start(np.zeros((3, 2)), 1, responsibilities=np.ones((2, 2)))
    with pytest.raises(AcquisitionError, match=">= 0"):
        cold_start(np.zeros((2, 2)), 1, responsibilities=-np.ones((2, 2)))
