"""Acquisition policies: closed forms, ranges, ranking properties and top-k selection."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssvae.domain.acquisition import (
    POLICIES,
    AcquisitionError,
    entropy,
    least_confidence,
    margin,
    policy,
    random_scores,
    select_top_k,
    validate_probabilities,
)
from ssvae.domain.errors import SsvaeError

FAST = settings(max_examples=60, deadline=None)

UNCERTAINTY: dict[str, Callable[[npt.ArrayLike], np.ndarray]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}


def _upper_bound(name: str, classes: int) -> float:
    return {
        "least_confidence": 1.0 - 1.0 / classes,
        "margin": 1.0,
        "entropy": math.log(classes),
        "random": 1.0,
    }[name]


@st.composite
def probabilities(draw: st.DrawFn, min_rows: int = 0) -> np.ndarray:
    """Rows of class probabilities, with exact zeros and one-hot rows among them."""
    rows = draw(st.integers(min_rows, 12))
    classes = draw(st.integers(2, 8))
    raw = draw(
        hnp.arrays(
            np.float64,
            (rows, classes),
            elements=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)),
        )
    )
    raw[raw.sum(axis=1) == 0, 0] = 1.0  # an all-zero row becomes one-hot
    return raw / raw.sum(axis=1, keepdims=True)


def _one_hot(classes: int, hot: int = 0) -> np.ndarray:
    row = np.zeros((1, classes))
    row[0, hot] = 1.0
    return row


# Closed forms.


@pytest.mark.parametrize("classes", [2, 3, 10, 1000])
def test_uniform_rows_reach_each_upper_bound(classes: int) -> None:
    uniform = np.full((1, classes), 1.0 / classes)
    assert entropy(uniform)[0] == pytest.approx(math.log(classes), rel=1e-12)
    assert least_confidence(uniform)[0] == pytest.approx(1.0 - 1.0 / classes, rel=1e-12)
    assert margin(uniform)[0] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("classes", [2, 5])
def test_one_hot_rows_score_zero(classes: int) -> None:
    for score in UNCERTAINTY.values():
        assert score(_one_hot(classes, hot=classes - 1))[0] == 0.0


def test_worked_examples() -> None:
    probs = np.array([[0.5, 0.5]])
    assert margin(probs)[0] == 1.0
    assert entropy(probs)[0] == pytest.approx(math.log(2))
    three = np.array([[0.1, 0.7, 0.2]])
    assert least_confidence(three)[0] == pytest.approx(0.3)
    assert margin(three)[0] == pytest.approx(1.0 - (0.7 - 0.2))
    expected = -(0.1 * math.log(0.1) + 0.7 * math.log(0.7) + 0.2 * math.log(0.2))
    assert entropy(three)[0] == pytest.approx(expected, rel=1e-12)


def test_entropy_ignores_zero_probabilities_without_warnings() -> None:
    with np.errstate(all="raise"):
        scores = entropy(np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(scores, [math.log(2), 0.0])


def test_margin_uses_the_two_largest_probabilities_whatever_their_columns() -> None:
    probs = np.array([[0.1, 0.6, 0.05, 0.25], [0.25, 0.05, 0.6, 0.1]])
    np.testing.assert_allclose(margin(probs), [0.65, 0.65])


def test_float32_rows_within_tolerance_are_accepted_and_renormalised() -> None:
    probs = np.array([[0.6, 0.4005]], dtype=np.float32)  # sums to 1.0005
    np.testing.assert_allclose(validate_probabilities(probs).sum(axis=1), [1.0])
    assert 0.0 <= least_confidence(probs)[0] <= 0.5


# Properties of the uncertainty scores.


@FAST
@given(probabilities(), st.randoms(use_true_random=False))
def test_scores_follow_their_rows_when_rows_are_permuted(probs: np.ndarray, rng: Any) -> None:
    order = list(range(probs.shape[0]))
    rng.shuffle(order)
    for name, scorer in POLICIES.items():
        if name == "random":  # a draw per position, not per row: nothing to follow
            continue
        np.testing.assert_array_equal(scorer(probs[order], 0), scorer(probs, 0)[order])


@FAST
@given(probabilities())
def test_scores_stay_in_their_documented_ranges(probs: np.ndarray) -> None:
    classes = probs.shape[1]
    for name, scorer in POLICIES.items():
        scores = scorer(probs, 3)
        assert scores.shape == (probs.shape[0],)
        assert scores.dtype == np.float64
        assert np.all(scores >= 0.0)
        if name == "random":
            assert np.all(scores < 1.0)
        else:
            assert np.all(scores <= _upper_bound(name, classes))


@FAST
@given(probabilities(), st.integers(0, 7))
def test_a_one_hot_row_never_outranks_a_uniform_row(probs: np.ndarray, hot: int) -> None:
    classes = probs.shape[1]
    pool = np.vstack([probs, _one_hot(classes, hot % classes), np.full((1, classes), 1 / classes)])
    for name, score in UNCERTAINTY.items():
        scores = score(pool)
        one_hot, uniform = scores[-2], scores[-1]
        assert one_hot == 0.0 < uniform, name
        assert np.all(scores >= one_hot) and np.all(scores <= uniform + 1e-12), name
        serials = np.arange(pool.shape[0])
        ranked = list(select_top_k(scores, serials, pool.shape[0], []))
        assert ranked.index(serials[-1]) < ranked.index(serials[-2]), name


# The random policy.


@FAST
@given(st.integers(0, 50), st.integers(0, 2**32))
def test_random_scores_repeat_for_a_seed(n: int, seed: int) -> None:
    first = random_scores(n, seed)
    np.testing.assert_array_equal(first, random_scores(n, seed))
    assert first.shape == (n,) and np.all((first >= 0.0) & (first < 1.0))


def test_random_scores_differ_between_seeds_and_the_policy_matches_them() -> None:
    assert not np.array_equal(random_scores(20, 0), random_scores(20, 1))
    probs = np.full((20, 4), 0.25)
    np.testing.assert_array_equal(policy("random")(probs, 5), random_scores(20, 5))


def test_uncertainty_policies_ignore_the_seed() -> None:
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    for name in UNCERTAINTY:
        np.testing.assert_array_equal(policy(name)(probs, 0), policy(name)(probs, 99))
        np.testing.assert_array_equal(policy(name)(probs, 0), UNCERTAINTY[name](probs))


# select_top_k.


@st.composite
def pools(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Scores with ties, unique serials in any order, a labelled subset (with strangers), k."""
    size = draw(st.integers(0, 30))
    serials = np.array(draw(st.permutations(range(0, 3 * size, 3))), dtype=np.int64)
    scores = np.array(
        draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=size, max_size=size))
    )
    labelled = draw(
        st.lists(st.sampled_from([*serials.tolist(), 1, 10**6]), unique=True)
        if size
        else st.just([1])
    )
    k = draw(st.integers(0, size + 5))
    return scores, serials, labelled, k


def _reference_top_k(
    scores: np.ndarray, serials: np.ndarray, k: int, labelled: list[int]
) -> list[int]:
    pool = [(-float(s), int(i)) for s, i in zip(scores, serials, strict=True) if i not in labelled]
    return [serial for _, serial in sorted(pool)[:k]]


@FAST
@given(pools())
def test_select_top_k_matches_a_slow_reference(pool: Any) -> None:
    scores, serials, labelled, k = pool
    chosen = select_top_k(scores, serials, k, labelled)
    unlabelled = int(np.sum(~np.isin(serials, labelled)))
    assert chosen.dtype == np.int64
    assert len(chosen) == min(k, unlabelled)
    assert not set(chosen.tolist()) & set(labelled)
    assert chosen.tolist() == _reference_top_k(scores, serials, k, labelled)


@FAST
@given(pools())
def test_select_top_k_accepts_labelled_serials_as_set_array_or_generator(pool: Any) -> None:
    scores, serials, labelled, k = pool
    expected = select_top_k(scores, serials, k, labelled)
    for given_as in (set(labelled), np.array(labelled, dtype=np.int64), iter(labelled)):
        np.testing.assert_array_equal(select_top_k(scores, serials, k, given_as), expected)


def test_ties_go_to_the_lower_serial() -> None:
    chosen = select_top_k([0.5, 0.9, 0.5, 0.5], [7, 3, 2, 5], 3, labelled_serials=[5])
    assert chosen.tolist() == [3, 2, 7]


def test_a_fully_labelled_pool_selects_nothing() -> None:
    assert select_top_k([0.1, 0.2], [0, 1], 5, [0, 1]).tolist() == []
    assert select_top_k([], [], 3, []).tolist() == []


# Errors a caller can make.


def test_an_unknown_policy_is_named_with_the_choices() -> None:
    with pytest.raises(AcquisitionError, match=r"'entropie'.*random, least_confidence, margin"):
        policy("entropie")
    assert issubclass(AcquisitionError, SsvaeError)
    assert set(POLICIES) == {"random", "least_confidence", "margin", "entropy"}


@pytest.mark.parametrize(
    ("probs", "complaint"),
    [
        (np.array([0.5, 0.5]), "2-D"),
        (np.array([[1.0]]), "at least 2 classes"),
        (np.array([[0.5, np.nan]]), "NaN"),
        (np.array([[1.5, -0.5]]), "negative"),
        (np.array([[0.5, 0.5], [2.0, 3.0]]), "row 1 sum to 5"),
        (np.array([["a", "b"]]), "real numbers"),
    ],
)
def test_invalid_probabilities_are_rejected_clearly(probs: np.ndarray, complaint: str) -> None:
    for scorer in POLICIES.values():
        with pytest.raises(AcquisitionError, match=complaint):
            scorer(probs, 0)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (([0.1, 0.2], [1, 2, 3], 1, []), "2 scores for 3 serials"),
        (([0.1, 0.2], [1, 2], -1, []), "k = -1"),
        (([0.1, 0.2], [1, 2], True, []), "k = True"),
        (([0.1, 0.2], [1, 1], 1, []), "unique"),
        (([0.1, np.nan], [1, 2], 1, []), "NaN"),
        (([[0.1, 0.2]], [1, 2], 1, []), "1-D array of numbers"),
        (([0.1, 0.2], [1.5, 2.5], 1, []), "serials must be a 1-D array of integers"),
        (([0.1, 0.2], [1, 2], 1, ["a"]), "labelled serials"),
    ],
)
def test_select_top_k_rejects_bad_arguments_clearly(arguments: Any, complaint: str) -> None:
    with pytest.raises(AcquisitionError, match=complaint):
        select_top_k(*arguments)


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (3, -1), (3, True), (2.5, 0)])
def test_random_scores_reject_bad_sizes_and_seeds(n: Any, seed: Any) -> None:
    with pytest.raises(AcquisitionError, match="integer >= 0"):
        random_scores(n, seed)
