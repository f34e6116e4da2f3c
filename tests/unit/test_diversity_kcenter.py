"""Core-set k-center greedy: identical to a plain-loop reference, ties, seeds and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.diversity import k_center_greedy, k_center_greedy_scored

FAST = settings(max_examples=60, deadline=None)


def reference_k_center(
    features: np.ndarray, k: int, labelled: np.ndarray, first: int | None
) -> tuple[list[int], list[float]]:
    """Farthest-first traversal with plain loops; `first` is the pick when there is no centre."""
    rows = features.tolist()
    n = len(rows)

    def squared(i: int, j: int) -> float:
        return sum((a - b) ** 2 for a, b in zip(rows[i], rows[j], strict=True))

    centres = [i for i in range(n) if labelled[i]]
    picked: list[int] = []
    distances: list[float] = []
    for _ in range(min(k, n - len(centres))):
        if not centres:
            assert first is not None
            best_row, best = first, float("inf")
        else:
            best_row, best = -1, -1.0
            for i in range(n):
                if labelled[i] or i in picked:
                    continue
                nearest = min(squared(i, c) for c in centres)
                if nearest > best:  # strict: ties keep the lower row
                    best_row, best = i, nearest
        picked.append(best_row)
        distances.append(best**0.5)
        centres.append(best_row)
    return picked, distances


@st.composite
def grid_problems(draw: st.DrawFn) -> tuple[np.ndarray, int, np.ndarray]:
    """Quarter-integer points: every distance is exact, and ties are frequent."""
    n = draw(st.integers(1, 24))
    d = draw(st.integers(1, 4))
    features = draw(hnp.arrays(np.int64, (n, d), elements=st.integers(-8, 8))) / 4.0
    labelled = draw(hnp.arrays(np.bool_, n))
    k = draw(st.integers(0, n + 2))
    return features, k, labelled


@FAST
@given(grid_problems(), st.integers(0, 2**32 - 1))
def test_matches_the_plain_loop_reference_exactly_on_tied_grids(
    problem: tuple[np.ndarray, int, np.ndarray], seed: int
) -> None:
    features, k, labelled = problem
    rows, distances = k_center_greedy_scored(features, k, labelled, seed)
    first = int(rows[0]) if rows.size else None
    expected_rows, expected_distances = reference_k_center(features, k, labelled, first)
    assert rows.tolist() == expected_rows
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("labelled_count", [0, 1, 30])
def test_matches_the_reference_on_gaussian_data(seed: int, labelled_count: int) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(120, 5)) * rng.uniform(0.1, 10.0, size=5) + 50.0
    labelled = np.zeros(120, dtype=bool)
    labelled[rng.choice(120, labelled_count, replace=False)] = True
    rows, distances = k_center_greedy_scored(features, 15, labelled, seed)
    first = int(rows[0])
    expected_rows, expected_distances = reference_k_center(features, 15, labelled, first)
    assert rows.tolist() == expected_rows
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-9)


@FAST
@given(grid_problems(), st.integers(0, 1000))
def test_picks_are_unique_unlabelled_and_as_many_as_asked(
    problem: tuple[np.ndarray, int, np.ndarray], seed: int
) -> None:
    features, k, labelled = problem
    rows = k_center_greedy(features, k, labelled, seed)
    assert rows.dtype == np.int64
    assert len(set(rows.tolist())) == rows.size == min(k, int((~labelled).sum()))
    assert not labelled[rows].any()
    np.testing.assert_array_equal(rows, k_center_greedy(features, k, labelled, seed))


@FAST
@given(grid_problems(), st.integers(0, 1000))
def test_pick_distances_never_increase(
    problem: tuple[np.ndarray, int, np.ndarray], seed: int
) -> None:
    features, k, labelled = problem
    _, distances = k_center_greedy_scored(features, k, labelled, seed)
    assert np.all(np.diff(distances) <= 1e-12)


def test_a_worked_line_example() -> None:
    # Points on a line; the labelled 0 is a centre, so 10 is farthest, then 5, then 2 or 8.
    features = np.array([[0.0], [2.0], [5.0], [8.0], [10.0]])
    rows, distances = k_center_greedy_scored(features, 3, np.array([0]), seed=0)
    assert rows.tolist() == [4, 2, 1]  # 2 and 8 are both 2 from a centre: the lower row wins
    np.testing.assert_allclose(distances, [10.0, 5.0, 2.0])


def test_labelled_rows_accepted_as_indices_or_mask() -> None:
    features = np.random.default_rng(0).normal(size=(30, 3))
    mask = np.zeros(30, dtype=bool)
    mask[[3, 7, 11]] = True
    np.testing.assert_array_equal(
        k_center_greedy(features, 5, mask), k_center_greedy(features, 5, np.array([3, 7, 11]))
    )


def test_without_centres_the_first_pick_follows_the_seed() -> None:
    features = np.random.default_rng(1).normal(size=(500, 4))
    firsts = {int(k_center_greedy(features, 1, seed=seed)[0]) for seed in range(10)}
    assert len(firsts) > 1
    assert (
        k_center_greedy(features, 4, seed=7).tolist()
        == k_center_greedy(features, 4, seed=7).tolist()
    )


def test_float32_features_and_empty_pools() -> None:
    features = np.random.default_rng(2).normal(size=(10, 2)).astype(np.float32)
    assert k_center_greedy(features, 3).size == 3
    assert k_center_greedy(np.zeros((0, 2)), 3).size == 0
    assert k_center_greedy(features, 5, np.ones(10, dtype=bool)).size == 0


@pytest.mark.parametrize(
    ("features", "k", "labelled", "seed", "message"),
    [
        (np.zeros(5), 1, None, 0, "2-D"),
        (np.full((2, 2), np.nan), 1, None, 0, "NaN"),
        (np.zeros((3, 2)), -1, None, 0, "k = -1"),
        (np.zeros((3, 2)), 1, None, -2, "seed"),
        (np.zeros((3, 2)), 1, np.array([5]), 0, "in \\[0, 3\\)"),
        (np.zeros((3, 2)), 1, np.ones(4, dtype=bool), 0, "one value per sample"),
    ],
)
def test_bad_inputs_raise_acquisition_errors(
    features: np.ndarray, k: int, labelled: np.ndarray | None, seed: int, message: str
) -> None:
    with pytest.raises(AcquisitionError, match=message):
        k_center_greedy(features, k, labelled, seed)


def test_labelled_centres_processed_in_small_blocks_give_the_same_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssvae.domain.diversity as diversity

    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 3))
    labelled = rng.random(60) < 0.5
    expected = k_center_greedy(features, 10, labelled)
    monkeypatch.setattr(diversity, "_DISTANCE_BLOCK_ELEMENTS", 40)  # one centre per block
    np.testing.assert_array_equal(k_center_greedy(features, 10, labelled), expected)
    assert reference_k_center(features, 10, labelled, None)[0] == expected.tolist()
