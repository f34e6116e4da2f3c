"""The full policy registry: every policy's contract, its inputs and worked examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.acquisition import AcquisitionError, margin
from ssvae.domain.errors import SsvaeError
from ssvae.domain.query import (
    SELECTION_POLICIES,
    AcquisitionRequest,
    Selection,
    required_inputs,
    select,
)

FAST = settings(max_examples=25, deadline=None)


def full_request(
    n: int, k: int, data_seed: int, labelled_fraction: float = 0.3, **overrides: Any
) -> AcquisitionRequest:
    """A pool with every optional array, serials scattered and in no order."""
    rng = np.random.default_rng(data_seed)
    serials = rng.choice(10 * n + 10, size=n, replace=False).astype(np.int64)
    logits = rng.normal(size=(n, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labelled = serials[rng.random(n) < labelled_fraction]
    fields: dict[str, Any] = {
        "serials": serials,
        "k": k,
        "seed": data_seed,
        "labelled_serials": labelled,
        "labelled_classes": rng.integers(0, 4, size=labelled.shape[0]),
        "inputs": rng.normal(size=(n, 5)).round(1).astype(np.float32),  # ties
        "probs": probs.round(2) / probs.round(2).sum(axis=1, keepdims=True),  # ties
        "features": rng.normal(size=(n, 3)).astype(np.float32),
        "encodings": rng.normal(size=(n, 6)).astype(np.float32),
        "ood": rng.random(n).round(1),
        "bald": rng.random(n),
        "negative_elbo": rng.normal(100.0, 10.0, n),
        "responsibilities": rng.dirichlet(np.ones(5), size=n),
        "candidate_factor": 3,
    }
    fields.update(overrides)
    return AcquisitionRequest(**fields)


def permuted(request: AcquisitionRequest, seed: int) -> AcquisitionRequest:
    order = np.random.default_rng(seed).permutation(request.serials.shape[0])
    return AcquisitionRequest(
        serials=request.serials[order],
        k=request.k,
        seed=request.seed,
        labelled_serials=request.labelled_serials,
        probs=request.probs[order] if request.probs is not None else None,
        features=request.features[order] if request.features is not None else None,
        encodings=request.encodings[order] if request.encodings is not None else None,
        ood=request.ood[order] if request.ood is not None else None,
        bald=request.bald[order] if request.bald is not None else None,
        negative_elbo=request.negative_elbo[order] if request.negative_elbo is not None else None,
        responsibilities=(
            request.responsibilities[order] if request.responsibilities is not None else None
        ),
        inputs=request.inputs[order] if request.inputs is not None else None,
        labelled_classes=request.labelled_classes,
        candidate_factor=request.candidate_factor,
    )


@FAST
@given(st.integers(0, 40), st.integers(0, 45), st.integers(0, 10**6))
def test_every_policy_keeps_the_selection_contract(n: int, k: int, seed: int) -> None:
    request = full_request(n, k, seed)
    labelled = set(request.labelled_serials.tolist())
    pool_left = n - len(labelled)
    for name in SELECTION_POLICIES:
        if name == "novelty" and len(labelled) < 2:
            # Novelty compares with the labelled samples: it says so rather than guess.
            with pytest.raises(AcquisitionError, match="label some samples"):
                select(name, request)
            continue
        selection = select(name, request)
        chosen = selection.serials.tolist()
        assert selection.policy == name
        assert len(chosen) == len(set(chosen)) == min(k, pool_left) == len(selection)
        assert not labelled.intersection(chosen)
        assert set(chosen) <= set(request.serials.tolist())
        assert selection.scores.shape == selection.serials.shape
        again = select(name, request)
        np.testing.assert_array_equal(again.serials, selection.serials)
        np.testing.assert_array_equal(again.scores, selection.scores)
        # The order of the request's rows does not matter.
        np.testing.assert_array_equal(select(name, permuted(request, seed)).serials, chosen)


def test_seeds_change_random_and_seeded_k_center_picks() -> None:
    # cold_start without responsibilities: with them its picks are fixed (most typical rows,
    # then k-center from those centres), which the next test checks.
    for name in ("random", "kcenter", "cold_start"):
        requests = [
            full_request(200, 8, 0, labelled_fraction=0.0, seed=seed, responsibilities=None)
            for seed in range(6)
        ]
        assert len({tuple(select(name, request).serials) for request in requests}) > 1, name


def test_cold_start_with_responsibilities_ignores_the_seed() -> None:
    picks = {
        tuple(select("cold_start", full_request(100, 8, 0, seed=seed)).serials) for seed in range(3)
    }
    assert len(picks) == 1


@pytest.mark.parametrize(
    ("name", "field"),
    [("tau_ood", "ood"), ("bald", "bald"), ("elbo", "negative_elbo")],
)
def test_score_policies_take_the_highest_scores_ties_to_lower_serials(
    name: str, field: str
) -> None:
    request = AcquisitionRequest(
        serials=[40, 10, 30, 20, 50],
        k=3,
        labelled_serials=[50],
        **{field: np.array([0.5, 0.2, 0.9, 0.5, 1.0])},
    )
    selection = select(name, request)
    assert selection.serials.tolist() == [30, 20, 40]  # 50 is labelled; 20 and 40 tie at 0.5
    np.testing.assert_allclose(selection.scores, [0.9, 0.5, 0.5])


def test_uncertainty_policies_report_their_scores() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3]])
    selection = select("margin", AcquisitionRequest(serials=[7, 8, 9], k=2, probs=probs))
    assert selection.serials.tolist() == [8, 9]
    np.testing.assert_allclose(selection.scores, margin(probs)[[1, 2]])


def test_diverse_margin_scores_are_margins_and_kcenter_scores_are_distances() -> None:
    request = full_request(50, 6, 1, labelled_fraction=0.2)
    diverse = select("diverse_margin", request)
    rows = np.searchsorted(request.serials, diverse.serials, sorter=np.argsort(request.serials))
    rows = np.argsort(request.serials)[rows]
    np.testing.assert_allclose(diverse.scores, margin(request.probs)[rows])
    kcenter = select("kcenter", request)
    assert np.all(np.diff(kcenter.scores) <= 1e-9)  # farthest-first distances never grow


def test_kcenter_without_labels_reports_an_infinite_first_distance() -> None:
    request = full_request(20, 3, 2, labelled_fraction=0.0)
    scores = select("kcenter", request).scores
    assert scores[0] == np.inf and np.all(np.isfinite(scores[1:]))


@pytest.mark.parametrize("name", SELECTION_POLICIES)
def test_a_missing_input_names_the_policy_and_the_input(name: str) -> None:
    needs = required_inputs(name)
    if not needs:
        assert select(name, AcquisitionRequest(serials=[1, 2], k=1)).serials.size == 1
        return
    missing = needs[-1]
    request = full_request(10, 2, 0, **{missing: None})
    with pytest.raises(AcquisitionError, match=f"policy '{name}' needs .*\\({missing}\\)"):
        select(name, request)


def test_unknown_policies_list_the_known_ones() -> None:
    with pytest.raises(SsvaeError, match=r"unknown acquisition policy 'coreset'.*kcenter"):
        select("coreset", full_request(5, 1, 0))
    with pytest.raises(AcquisitionError, match="unknown"):
        required_inputs("coreset")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"serials": [1, 1], "k": 1}, "unique"),
        ({"serials": [1, 2], "k": -1}, "k = -1"),
        ({"serials": [1, 2], "k": 1, "seed": -3}, "seed = -3"),
        ({"serials": [1, 2], "k": 1, "ood": [0.1]}, "OOD scores \\(ood\\) have shape \\(1,\\)"),
        ({"serials": [1, 2], "k": 1, "features": np.zeros((3, 2))}, "one row per serial"),
        ({"serials": [1.5, 2.0], "k": 1}, "integers"),
        ({"serials": [1, 2], "k": 1, "candidate_factor": 0}, "candidate_factor"),
    ],
)
def test_invalid_requests_are_reported(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(AcquisitionError, match=message):
        AcquisitionRequest(**fields)


def test_invalid_arrays_are_reported_when_a_policy_uses_them() -> None:
    request = AcquisitionRequest(serials=[1, 2], k=1, bald=[0.1, np.nan])
    with pytest.raises(AcquisitionError, match="BALD scores contain NaN"):
        select("bald", request)
    logits = AcquisitionRequest(serials=[1, 2], k=1, probs=[[3.0, 1.0], [0.5, 2.0]])
    with pytest.raises(AcquisitionError, match="not logits"):
        select("entropy", logits)


def test_selection_is_a_plain_value() -> None:
    selection = Selection("random", np.array([3], np.int64), np.array([0.5]))
    assert len(selection) == 1
