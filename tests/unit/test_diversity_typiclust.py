"""TypiClust and its k-means: blobs recovered, typical rows picked, a slow reference density."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.diversity import (
    TYPICLUST_MAX_DIMS,
    TYPICLUST_NEIGHBOURS,
    kmeans,
    project_down,
    typicality,
    typiclust,
    typiclust_scored,
)
from ssvae.domain.query import TYPICAL_LABELS_PER_CLASS, AcquisitionRequest, select


def blobs(
    centres: int, per_blob: int, seed: int, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs 10 apart on a line in 3-D, with their true blob index."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(centres), per_blob)
    points = rng.normal(0.0, spread, (truth.size, 3))
    points[:, 0] += 10.0 * truth
    return points, truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_separated_blobs_and_repeats_for_a_seed() -> None:
    points, truth = blobs(5, 40, seed=1)
    found = kmeans(points, 5, seed=3)
    assert same_partition(found, truth)
    np.testing.assert_array_equal(found, kmeans(points, 5, seed=3))
    assert kmeans(points, 500, seed=0).max() < len(points)  # never more clusters than rows


def slow_typicality(points: np.ndarray) -> np.ndarray:
    out = []
    for i in range(len(points)):
        distances = sorted(
            float(np.linalg.norm(points[i] - points[j])) for j in range(len(points)) if j != i
        )
        out.append(1.0 / np.mean(distances[:TYPICLUST_NEIGHBOURS]))
    return np.asarray(out)


@pytest.mark.parametrize("size", [2, 7, 60])
def test_typicality_matches_a_slow_reference(size: int) -> None:
    points = np.random.default_rng(size).normal(size=(size, 4))
    members = np.arange(size, dtype=np.int64)
    np.testing.assert_allclose(typicality(points, members, seed=0), slow_typicality(points), 1e-9)


def test_one_pick_per_blob_each_its_densest_row() -> None:
    points, truth = blobs(4, 50, seed=2, spread=1.0)
    # Each blob gets a tight core of 25 rows around a known point: the typical rows.
    cores = np.array([[10.0 * b + 0.5, 0.2, -0.2] for b in range(4)])
    for b in range(4):
        rows = np.flatnonzero(truth == b)[:25]
        points[rows] = cores[b] + np.random.default_rng(b).normal(0.0, 0.01, (25, 3))
    rows, scores = typiclust_scored(points, 4, seed=0)
    assert sorted(truth[rows].tolist()) == [0, 1, 2, 3]
    for row in rows:
        assert np.linalg.norm(points[row] - cores[truth[row]]) < 0.1
    assert np.all(scores > 0)


def test_labelled_blobs_are_covered_so_picks_go_to_the_others() -> None:
    points, truth = blobs(4, 30, seed=4)
    labelled = np.flatnonzero(truth < 2)[::15]  # two labels in each of blobs 0 and 1
    rows = typiclust(points, 2, labelled, seed=0)
    assert sorted(truth[rows].tolist()) == [2, 3]


def test_the_batch_is_more_spread_than_plain_top_scores() -> None:
    points, truth = blobs(6, 40, seed=5)
    scores = -np.abs(points[:, 0] - 20.0)  # an uncertainty peaked on one blob
    top = np.argsort(-scores, kind="stable")[:6]
    picked = typiclust(points, 6, seed=0)

    def closest_pair(rows: np.ndarray) -> float:
        return min(
            float(np.linalg.norm(points[a] - points[b])) for a, b in itertools.combinations(rows, 2)
        )

    assert closest_pair(picked) > closest_pair(top)
    assert len(set(truth[picked].tolist())) == 6


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(0, 12),
    labelled=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_selection_contract(n: int, k: int, labelled: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 2))
    taken = rng.choice(n, min(labelled, n), replace=False)
    rows = typiclust(points, k, taken, seed=seed)
    assert rows.size == min(k, n - taken.size) == np.unique(rows).size
    assert not set(rows.tolist()) & set(taken.tolist())
    np.testing.assert_array_equal(rows, typiclust(points, k, taken, seed=seed))


def test_the_policy_returns_serials_with_their_typicality() -> None:
    points, _ = blobs(3, 20, seed=6)
    serials = np.arange(1000, 1060)
    request = AcquisitionRequest(serials=serials, k=3, encodings=points, labelled_serials=[1000])
    selection = select("typiclust", request)
    assert selection.policy == "typiclust" and len(selection) == 3
    assert 1000 not in selection.serials.tolist() and np.all(selection.scores > 0)


def test_bad_features_are_refused() -> None:
    with pytest.raises(AcquisitionError, match="NaN or infinity"):
        typiclust(np.array([[0.0], [np.nan]]), 1)
    with pytest.raises(AcquisitionError, match="clusters"):
        kmeans(np.zeros((3, 2)), -1)


def test_typiclust_margin_is_typiclust_until_3_labels_a_class_then_margin() -> None:
    points, _ = blobs(3, 40, seed=7)
    serials = np.arange(120)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=120)

    def request(labelled: np.ndarray) -> AcquisitionRequest:
        return AcquisitionRequest(
            serials=serials, k=4, encodings=points, probs=probs, labelled_serials=labelled
        )

    few = np.arange(0, 120, 6)[: TYPICAL_LABELS_PER_CLASS * 3 - 1]  # one short of 3 a class
    enough = np.arange(0, 120, 4)[: TYPICAL_LABELS_PER_CLASS * 3]
    early = select("typiclust_margin", request(few))
    assert early.policy == "typiclust_margin"
    np.testing.assert_array_equal(early.serials, select("typiclust", request(few)).serials)
    late = select("typiclust_margin", request(enough))
    np.testing.assert_array_equal(late.serials, select("margin", request(enough)).serials)
    np.testing.assert_allclose(late.scores, select("margin", request(enough)).scores)


def test_narrow_features_pass_unprojected_and_wide_ones_keep_their_distances() -> None:
    rng = np.random.default_rng(3)
    narrow = rng.normal(size=(50, 8))
    np.testing.assert_array_equal(project_down(narrow, 8, seed=1), narrow)
    wide = rng.normal(size=(60, 3000))
    projected = project_down(wide, 256, seed=1)
    assert projected.shape == (60, 256)
    np.testing.assert_array_equal(project_down(wide, 256, seed=1), projected)  # seeded
    pairs = np.triu_indices(60, 1)

    def distances(x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[:, None] - x[None], axis=-1)[pairs]

    ratio = distances(projected) / distances(wide)
    # Johnson-Lindenstrauss at 256 dimensions: each ratio within about 3 x sqrt(2 / 256).
    assert np.all(np.abs(ratio - 1.0) < 0.27) and abs(ratio.mean() - 1.0) < 0.02


def test_typiclust_on_features_wider_than_its_cap_still_covers_every_blob() -> None:
    points, truth = blobs(4, 30, seed=5)
    wide = np.repeat(points, TYPICLUST_MAX_DIMS // 3 + 10, axis=1)  # each column many times
    assert wide.shape[1] > TYPICLUST_MAX_DIMS
    rows = typiclust(wide, 4, seed=2)
    assert sorted(truth[rows].tolist()) == [0, 1, 2, 3]
