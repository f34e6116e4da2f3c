"""Stopping decisions: budget, rounds, a window of stable predictions, stable tau."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.errors import SsvaeError
from ssvae.domain.stopping import (
    RoundRecord,
    StoppingError,
    StoppingRule,
    cohens_kappa,
    labels_left,
    mean_kappa,
    should_stop,
    tau_change,
)

STOP_SET = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])


def rounds(*predictions: np.ndarray | None, labels_step: int = 10) -> list[RoundRecord]:
    return [
        RoundRecord(labels_used=labels_step * (i + 1), predictions=p)
        for i, p in enumerate(predictions)
    ]


def changed(count: int) -> np.ndarray:
    """STOP_SET with its first `count` predictions moved to the next class."""
    moved = STOP_SET.copy()
    moved[:count] = (moved[:count] + 1) % 3
    return moved


def test_no_rule_never_stops_and_an_empty_history_never_stops() -> None:
    assert should_stop(StoppingRule(), rounds(STOP_SET, STOP_SET)).stop is False
    decision = should_stop(StoppingRule(budget=1, max_rounds=1, kappa_threshold=0.0), [])
    assert decision.stop is False and decision.reasons == ()
    assert decision.kappa is None and decision.tau_change is None


def test_label_budget() -> None:
    rule = StoppingRule(budget=30)
    assert not should_stop(rule, rounds(None, None)).stop  # 20 labels used
    decision = should_stop(rule, rounds(None, None, None))
    assert decision.stop
    assert decision.reasons == ("label budget reached: 30 labels used of 30",)
    assert should_stop(rule, rounds(None, None, labels_step=25)).stop  # 50 > 30


def test_labels_left_under_the_budget() -> None:
    assert labels_left(StoppingRule(budget=30), 12) == 18
    assert labels_left(StoppingRule(budget=30), 45) == 0
    assert labels_left(StoppingRule(), 45) is None


def test_maximum_rounds() -> None:
    rule = StoppingRule(max_rounds=3)
    assert not should_stop(rule, rounds(None, None)).stop
    decision = should_stop(rule, rounds(None, None, None))
    assert decision.reasons == ("maximum rounds reached: 3 of 3",)


def test_kappa_is_averaged_over_the_last_window_of_consecutive_rounds() -> None:
    history = rounds(changed(9), changed(4), changed(2), changed(2))
    expected = np.mean(
        [
            cohens_kappa(changed(4), changed(2), 3),
            cohens_kappa(changed(2), changed(2), 3),
        ]
    )
    assert mean_kappa(history, 2) == pytest.approx(expected)
    assert mean_kappa(history, 3) == pytest.approx(
        np.mean(
            [cohens_kappa(changed(9), changed(4), 3), cohens_kappa(changed(4), changed(2), 3), 1.0]
        )
    )
    assert mean_kappa(history, 4) is None  # needs 5 rounds


def test_stable_predictions_stop_only_once_the_whole_window_agrees() -> None:
    rule = StoppingRule(kappa_threshold=0.99, kappa_window=2)
    stable = [changed(5), changed(1), STOP_SET, STOP_SET, STOP_SET]
    decisions = [should_stop(rule, rounds(*stable[: i + 1])) for i in range(len(stable))]
    assert [d.stop for d in decisions] == [False, False, False, False, True]
    assert decisions[0].kappa is None and decisions[1].kappa is None
    assert decisions[3].kappa is not None and decisions[3].kappa < 0.99
    assert decisions[4].kappa == 1.0
    assert decisions[4].reasons[0].startswith("predictions stable: mean kappa 1.0000")


def test_a_round_without_predictions_in_the_window_leaves_kappa_undecided() -> None:
    rule = StoppingRule(kappa_threshold=0.0, kappa_window=2)
    decision = should_stop(rule, rounds(STOP_SET, None, STOP_SET))
    assert decision.kappa is None and not decision.stop
    assert should_stop(rule, rounds(None, STOP_SET, STOP_SET, STOP_SET)).stop


def test_kappa_is_reported_even_without_a_threshold() -> None:
    decision = should_stop(StoppingRule(kappa_window=1), rounds(STOP_SET, changed(3)))
    assert decision.kappa == pytest.approx(cohens_kappa(STOP_SET, changed(3), 3))
    assert not decision.stop


def test_stop_sets_must_stay_the_same_size() -> None:
    with pytest.raises(StoppingError, match="same fixed stop set"):
        should_stop(StoppingRule(kappa_window=1), rounds(STOP_SET, STOP_SET[:5]))


def tau_rounds(*taus: np.ndarray | None) -> list[RoundRecord]:
    return [RoundRecord(labels_used=i, tau=tau) for i, tau in enumerate(taus)]


def test_tau_change_measures_by_hand() -> None:
    before = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    after = np.array([[0.6, 0.4], [0.9, 0.1], [0.0, 1.0]])
    assert tau_change(before, after, "max_abs") == pytest.approx(0.2)
    # Total variations 0.1, 0 and 0.2: mean 0.1.
    assert tau_change(before, after, "mean_tv") == pytest.approx(0.1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 10**6))
def test_tau_measures_are_zero_for_no_change_and_ordered(
    components: int, classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    before = rng.dirichlet(np.ones(classes), size=components)
    after = rng.dirichlet(np.ones(classes), size=components)
    assert tau_change(before, before, "max_abs") == 0.0
    assert tau_change(before, before, "mean_tv") == 0.0
    # A total variation is at most (classes / 2) times the largest entry change, and at most 1.
    mean_tv = tau_change(before, after, "mean_tv")
    assert 0.0 <= mean_tv <= min(1.0, classes / 2 * tau_change(before, after, "max_abs")) + 1e-12


def test_stable_tau_stops_within_the_tolerance() -> None:
    # Dyadic values, so the changes are exact and the boundary case is really on the boundary.
    tau = np.array([[0.75, 0.25], [0.125, 0.875]])
    nudged = tau + np.array([[0.0625, -0.0625], [0.0, 0.0]])
    rule = StoppingRule(tau_tolerance=0.0625)
    assert should_stop(rule, tau_rounds(None, tau)).tau_change is None
    decision = should_stop(rule, tau_rounds(tau, nudged))
    assert decision.stop and decision.tau_change == 0.0625
    assert decision.reasons == ("tau stable: max_abs change 0.0625 <= 0.0625",)
    moved = tau + np.array([[0.125, -0.125], [0.0, 0.0]])
    assert not should_stop(rule, tau_rounds(tau, moved)).stop
    mean_tv_rule = StoppingRule(tau_tolerance=0.0625, tau_measure="mean_tv")
    assert should_stop(mean_tv_rule, tau_rounds(tau, moved)).stop  # TV 0.125 and 0: mean 0.0625
    assert not should_stop(mean_tv_rule, tau_rounds(tau, np.eye(2))).stop


def test_tau_shapes_must_match() -> None:
    with pytest.raises(StoppingError, match="keep the number of components"):
        should_stop(StoppingRule(tau_tolerance=0.1), tau_rounds(np.eye(2), np.eye(3)))


def test_every_reason_that_holds_is_listed() -> None:
    tau = np.eye(3)
    history = [RoundRecord(50, STOP_SET, tau), RoundRecord(100, STOP_SET, tau)]
    rule = StoppingRule(
        budget=100, max_rounds=2, kappa_threshold=0.9, kappa_window=1, tau_tolerance=0.0
    )
    decision = should_stop(rule, history)
    assert decision.stop and len(decision.reasons) == 4
    assert [r.split(":")[0] for r in decision.reasons] == [
        "label budget reached",
        "maximum rounds reached",
        "predictions stable",
        "tau stable",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budget": 0}, "budget = 0"),
        ({"max_rounds": -1}, "max_rounds = -1"),
        ({"kappa_threshold": 1.5}, "\\[-1, 1\\]"),
        ({"kappa_window": 0}, "kappa_window = 0"),
        ({"tau_tolerance": -0.1}, ">= 0"),
        ({"tau_tolerance": float("nan")}, ">= 0"),
        ({"tau_measure": "l2"}, "max_abs, mean_tv"),
        ({"budget": True}, "budget = True"),
    ],
)
def test_invalid_rules_are_reported(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SsvaeError, match=message):
        StoppingRule(**fields)


def test_tau_is_not_compared_across_a_round_that_added_a_class() -> None:
    even = [[0.5, 0.5], [0.5, 0.5]]
    grown = [[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]
    same = should_stop(StoppingRule(tau_tolerance=0.3), [RoundRecord(5, tau=even)] * 2)
    assert same.tau_change == 0.0 and same.stop
    added = [RoundRecord(5, tau=even), RoundRecord(6, tau=grown)]
    decision = should_stop(StoppingRule(tau_tolerance=0.3), added)
    assert decision.tau_change is None and not decision.stop
    with pytest.raises(StoppingError, match="cannot be compared"):
        tau_change(even, grown)  # compared directly, the shapes still have to agree
