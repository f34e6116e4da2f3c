"""The component-to-label map, its classifier and the OOD score against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.errors import SpecError
from ssvae.domain.model import (
    classifier_ood_scores,
    component_label_map,
    ood_scores,
    tau_class_probs,
)
from ssvae.domain.spec import ModelSpec, preset


def test_tau_matches_hand_computed_counts() -> None:
    r = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)
    tau = component_label_map(r, np.array([0, 1]), num_classes=3, alpha0=1.0)
    # s = [[1, .5, 0], [0, .5, 0]]; + 1 then row-normalised.
    expected = np.array([[2, 1.5, 1], [1, 1.5, 1]]) / np.array([[4.5], [3.5]])
    np.testing.assert_allclose(tau, expected, rtol=1e-6)


def test_tau_classifier_and_ood_score_by_hand() -> None:
    tau = np.array([[0.8, 0.2], [0.3, 0.7]], np.float32)
    r = np.array([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]], np.float32)
    np.testing.assert_allclose(
        tau_class_probs(r, tau), [[0.8, 0.2], [0.425, 0.575], [0.55, 0.45]], rtol=1e-6
    )
    # 1 - max_c r_c max_y tau[c, y]: [1 - .8, 1 - max(.2, .525), 1 - max(.4, .35)]
    np.testing.assert_allclose(ood_scores(r, tau), [0.2, 0.475, 0.6], rtol=1e-6)


def test_classifier_ood_score_by_hand() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3]], np.float32)
    np.testing.assert_allclose(classifier_ood_scores(probs), [0.1, 0.6, 2 / 3], rtol=1e-6)
    assert classifier_ood_scores(probs).dtype == np.float32


def test_ood_signal_is_validated_and_text_presets_read_the_classifier() -> None:
    assert ModelSpec().scoring.ood_signal == "components"
    assert preset("mixture_k10").scoring.ood_signal == "components"
    assert preset("text_mixture_k20").scoring.ood_signal == "classifier"
    with pytest.raises(SpecError, match=r"ood_signal.*components, classifier"):
        ModelSpec.from_fields(ood_signal="entropy")


def test_no_labels_give_the_uniform_map() -> None:
    tau = component_label_map(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 5, 2.0)
    np.testing.assert_allclose(tau, np.full((4, 5), 0.2), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 6), c=st.integers(2, 6), seed=st.integers(0, 1000))
def test_tau_rows_and_tau_probs_are_distributions(n: int, k: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    tau = component_label_map(r, rng.integers(0, c, n), c, 0.5)
    np.testing.assert_allclose(tau.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tau_class_probs(r, tau).sum(1), 1.0, rtol=1e-5)
    ood = ood_scores(r, tau)
    assert np.all((ood >= 0) & (ood <= 1))
