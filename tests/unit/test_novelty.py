"""Novelty scores: nearest-labelled distances against a slow reference, the conformal
threshold's closed form and coverage, the weights, and the score on worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.novelty import (
    conformal_threshold,
    contrast,
    logistic_fit,
    nearest_labelled,
    novelty,
    space_weight,
)
from ssvae.domain.query import AcquisitionRequest, select

FAST = settings(max_examples=40, deadline=None)


def _slow_nearest(features: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, pair by pair: the cosine distance to the nearest (other) labelled row."""
    distances, nearest = [], []
    for i, row in enumerate(features):
        best, best_j = math.inf, -1
        for j in np.flatnonzero(labelled):
            if j == i:
                continue
            a, b = np.linalg.norm(row), np.linalg.norm(features[j])
            cosine = 0.0 if a == 0 or b == 0 else float(row @ features[j]) / (a * b)
            d = max(1.0 - cosine, 0.0)
            if d < best - 1e-12:
                best, best_j = d, j
        distances.append(best)
        nearest.append(best_j)
    return np.array(distances), np.array(nearest)


@FAST
@given(st.integers(2, 30), st.integers(1, 6), st.integers(0, 10**6))
def test_nearest_labelled_matches_the_slow_reference(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d)).round(1)
    labelled = rng.random(n) < 0.5
    labelled[rng.choice(n, 2, replace=False)] = True
    distance, nearest = nearest_labelled(features, labelled)
    slow_distance, slow_nearest = _slow_nearest(features, labelled)
    np.testing.assert_allclose(distance, slow_distance, atol=1e-9)
    # Ties may pick another row at the same distance; the distance is what counts.
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-300)
    chosen = np.maximum(1 - np.sum(unit * unit[nearest], axis=1), 0)
    zero = np.linalg.norm(features, axis=1) == 0
    chosen[zero | (np.linalg.norm(features[nearest], axis=1) == 0)] = 1.0
    np.testing.assert_allclose(chosen, slow_distance, atol=1e-9)
    assert np.all(nearest[labelled] != np.flatnonzero(labelled))  # leave-one-out
    assert np.all(labelled[slow_nearest])


def test_nearest_labelled_is_the_same_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 4))
    labelled = rng.random(50) < 0.3
    whole = nearest_labelled(features, labelled)
    monkeypatch.setattr("ssvae.domain.novelty._BLOCK_ELEMENTS", 7)
    blocked = nearest_labelled(features, labelled)
    np.testing.assert_allclose(whole[0], blocked[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_conformal_threshold_closed_form() -> None:
    values = np.arange(1.0, 20.0)  # 19 values: ceil(20 * 0.95) = 19 -> the largest
    assert conformal_threshold(values, 0.05) == 19.0
    assert conformal_threshold(values, 0.5) == 10.0  # ceil(20 * 0.5) = 10
    assert conformal_threshold(values[:5], 0.05) == math.inf  # too few to reach 95%
    with pytest.raises(AcquisitionError, match="alpha"):
        conformal_threshold(values, 1.0)


@FAST
@given(st.integers(1, 200), st.floats(0.01, 0.5), st.integers(0, 10**6))
def test_at_most_alpha_of_the_calibration_passes_the_threshold(
    count: int, alpha: float, seed: int
) -> None:
    values = np.random.default_rng(seed).normal(size=count)
    threshold = conformal_threshold(values, alpha)
    assert np.sum(values > threshold) <= math.floor(alpha * (count + 1))


def test_conformal_coverage_on_exchangeable_draws() -> None:
    # Fresh draws from the calibration's distribution pass the threshold at most about alpha
    # of the time (in expectation, over calibration sets).
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(300):
        threshold = conformal_threshold(rng.exponential(size=39), 0.1)
        rates.append(np.mean(rng.exponential(size=200) > threshold))
    assert np.mean(rates) <= 0.1 + 0.01
    assert np.mean(rates) > 0.05  # and not far below: the threshold is not trivially high


def test_space_weight_is_zero_at_chance_and_grows_above() -> None:
    assert space_weight(0.25, 4) == 0.0
    assert space_weight(0.1, 4) == 0.0
    assert space_weight(1.0, 4) == pytest.approx(0.75**2)
    assert space_weight(0.5, 4) < space_weight(0.9, 4)


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three known classes and one unseen, in 8-D directions; 10 labels per known class."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:4] * 5.0
    truth = np.repeat(np.arange(4), 60)
    features = centres[truth] + rng.normal(scale=0.8, size=(240, 8))
    labelled = np.zeros(240, bool)
    for c in range(3):
        labelled[rng.choice(np.flatnonzero(truth == c), 10, replace=False)] = True
    return features, labelled, truth


def test_an_unseen_cluster_scores_above_the_known_ones_and_passes_the_threshold() -> None:
    features, labelled, truth = _clusters()
    noise = np.random.default_rng(1).normal(size=features.shape)
    scored = novelty([features, noise], labelled, truth[labelled])
    unseen, known = truth == 3, (truth < 3) & ~labelled
    assert scored.scores[unseen].min() > np.median(scored.scores[known])
    assert scored.unknown[unseen].mean() > 0.9
    assert scored.unknown[known].mean() < 0.2
    # The space that separates the labelled classes gets (nearly) all the weight.
    assert scored.weights[0] > 0.9 and sum(scored.weights) == pytest.approx(1.0)
    p = scored.p_values()
    assert np.all((p > 0) & (p <= 1))
    assert p[unseen].max() <= p[known].min() + 1e-12 or np.median(p[unseen]) < np.median(p[known])


@FAST
@given(st.integers(0, 10**6), st.floats(0.01, 100.0))
def test_novelty_ignores_row_order_and_each_spaces_scale(seed: int, scale: float) -> None:
    features, labelled, truth = _clusters(seed % 50)
    other = np.random.default_rng(seed).normal(size=(240, 3))
    scored = novelty([features, other], labelled, truth[labelled])
    order = np.random.default_rng(seed).permutation(240)
    shuffled = novelty(
        [features[order] * scale, other[order]], labelled[order], truth[order][labelled[order]]
    )
    np.testing.assert_allclose(shuffled.scores, scored.scores[order], rtol=1e-9, atol=1e-12)
    assert shuffled.threshold == pytest.approx(scored.threshold)


def test_too_few_labels_to_calibrate_flag_nothing() -> None:
    # 19 calibration scores are the fewest that can put a threshold at the 95% level.
    features, labelled, truth = _clusters()
    few = labelled & (np.cumsum(labelled) <= 18)
    scored = novelty([features], few, truth[few])
    assert scored.threshold == math.inf and not scored.unknown.any()


def test_duplicates_keep_scores_finite() -> None:
    features = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0], [1.0, 1.0]])
    labelled = np.array([True, True, True, True, False])
    scored = novelty([features], labelled, np.array([0, 0, 1, 1]))
    assert np.all(np.isfinite(scored.scores))
    assert scored.scores[4] > scored.scores[:4].max()


def test_too_few_labels_say_what_to_do() -> None:
    features = np.random.default_rng(0).normal(size=(10, 3))
    labelled = np.zeros(10, bool)
    labelled[0] = True
    with pytest.raises(AcquisitionError, match=r"at least 2 labelled samples.*label some"):
        novelty([features], labelled, np.array([0]))
    with pytest.raises(AcquisitionError, match="one class per labelled row"):
        novelty([features], labelled, np.array([0, 1]))
    with pytest.raises(AcquisitionError, match="NaN"):
        nearest_labelled(np.full((3, 2), np.nan), np.array([True, True, False]))


def test_the_novelty_policy_picks_the_unseen_cluster_first() -> None:
    features, labelled, truth = _clusters()
    serials = np.arange(1000, 1240)
    request = AcquisitionRequest(
        serials=serials,
        k=20,
        labelled_serials=serials[labelled][::-1],  # any order: classes follow the serials
        labelled_classes=truth[labelled][::-1],
        inputs=features,
        encodings=features + np.random.default_rng(2).normal(scale=0.1, size=features.shape),
    )
    chosen = select("novelty", request)
    assert np.all(truth[chosen.serials - 1000] == 3)
    assert np.all(np.diff(chosen.scores) <= 0)
    with pytest.raises(AcquisitionError, match="labelled_classes"):
        select("novelty", AcquisitionRequest(**{**_fields(request), "labelled_classes": None}))


def _fields(request: AcquisitionRequest) -> dict[str, object]:
    return {
        "serials": request.serials,
        "k": request.k,
        "labelled_serials": request.labelled_serials,
        "labelled_classes": request.labelled_classes,
        "inputs": request.inputs,
        "encodings": request.encodings,
    }


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.floats(1e-3, 1.0))
def test_logistic_fit_matches_scikit_learn(seed: int, penalty: float) -> None:
    # The same objective: sklearn minimises C sum_i w_i logloss_i + |coef|^2 / 2 with the
    # intercept unpenalised (lbfgs), which is ours times C for C = 1 / penalty.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 4))
    targets = (x[:, 0] + rng.normal(size=80) > 0.3).astype(float)
    weights = rng.uniform(0.5, 2.0, 80) / 80
    ours = logistic_fit(x, targets, weights, penalty)
    reference = LogisticRegression(C=1.0 / penalty, tol=1e-12, max_iter=10_000).fit(
        x, targets, sample_weight=weights
    )
    np.testing.assert_allclose(ours[:-1], reference.coef_[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[-1], reference.intercept_[0], rtol=1e-4, atol=1e-5)


def test_the_contrast_scores_what_the_labelled_samples_share_low() -> None:
    # Labelled samples of two classes share their directions; a third direction is unseen.
    features, labelled, truth = _clusters()
    scores = contrast(features, labelled, seed=0)
    known = (truth < 3) & ~labelled
    assert np.median(scores[truth == 3]) > np.percentile(scores[known], 90)
    # Cross-fitted: a labelled row's score is that of a model fitted without it, so it looks
    # like the known unlabelled rows' scores, not far below them.
    assert abs(np.median(scores[labelled]) - np.median(scores[known])) < np.std(scores[known])
    np.testing.assert_array_equal(scores, contrast(features, labelled, seed=0))


def test_the_contrast_fits_a_bounded_sample_of_a_large_pool() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(3000, 6))
    labelled = np.zeros(3000, bool)
    labelled[:20] = True
    few = contrast(features, labelled, seed=1, negatives=500)
    assert few.shape == (3000,) and np.all(np.isfinite(few))
    with pytest.raises(AcquisitionError, match="every one is labelled"):
        contrast(features[:5], np.ones(5, bool))


def test_a_fully_labelled_pool_scores_by_distance_alone() -> None:
    features, _, truth = _clusters()
    everything = np.ones(len(truth), bool)
    scored = novelty([features], everything, truth, inputs=features)
    alone = novelty([features], everything, truth)
    np.testing.assert_array_equal(scored.scores, alone.scores)
