"""Workspace ids, pools and stop sets; learning-curve areas, summaries and verdicts."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssvae.domain.simulation import (
    FINISHED,
    PolicySummary,
    RoundResult,
    RunResult,
    SimulationError,
    SimulationSettings,
    area_under_curve,
    conclusions,
    criterion,
    first_reaching,
    summarise_policy,
    versus_random,
)
from ssvae.domain.stopping import StoppingRule, should_stop
from ssvae.domain.workspace import (
    WorkspaceError,
    WorkspaceRound,
    check_workspace_id,
    generated_workspace_id,
    history_row,
    inside,
    pool_rows,
    stop_set_rows,
)

NOW = dt.datetime(2025, 3, 4, 5, 6, 7)


@pytest.mark.parametrize("name", ["demo", "a", "A-b_9", "x" * 64])
def test_safe_ids_are_accepted(name: str) -> None:
    assert check_workspace_id(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "../evil", "a/b", ".", "..", "a b", "é", "a.b", None, 3]
)
def test_unsafe_ids_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(WorkspaceError, match="1 to 64 letters"):
        check_workspace_id(name)


@given(st.text(max_size=80), st.text(max_size=80), st.integers(1, 999))
def test_generated_ids_are_always_safe_and_distinct_per_attempt(
    preset: str, dataset: str, attempt: int
) -> None:
    first = generated_workspace_id(preset, dataset, NOW)
    later = generated_workspace_id(preset, dataset, NOW, attempt + 1)
    assert check_workspace_id(first) == first
    assert later != first and later.startswith(first)


def test_generated_id_names_preset_dataset_and_time() -> None:
    assert (
        generated_workspace_id("mixture_k10", "mnist", NOW) == "mixture_k10-mnist-20250304-050607"
    )
    assert generated_workspace_id("p", "my data.npy", NOW, 3) == "p-my_data_npy-20250304-050607-3"


def test_inside_rejects_the_root_and_anything_that_escapes(tmp_path: Path) -> None:
    root = tmp_path / "models"
    assert inside(root / "demo", root)
    assert not inside(root, root)
    assert not inside(root / ".." / "demo", root)
    assert not inside(tmp_path / "other", root)


def test_pool_rows_are_a_seeded_sorted_subset() -> None:
    rows = pool_rows(1000, 50, seed=3)
    assert rows.shape == (50,) and np.all(np.diff(rows) > 0)
    assert rows.min() >= 0 and rows.max() < 1000
    assert np.array_equal(rows, pool_rows(1000, 50, seed=3))
    assert not np.array_equal(rows, pool_rows(1000, 50, seed=4))
    assert np.array_equal(pool_rows(10, None, 0), np.arange(10))
    assert np.array_equal(pool_rows(10, 25, 0), np.arange(10))
    with pytest.raises(WorkspaceError, match="at least 1"):
        pool_rows(10, 0, 0)


def test_the_stop_set_is_fixed_and_capped() -> None:
    assert np.array_equal(stop_set_rows(30, 0, size=100), np.arange(30))
    rows = stop_set_rows(5000, 1, size=100)
    assert rows.shape == (100,) and np.array_equal(rows, stop_set_rows(5000, 1, size=100))


def test_history_rows_keep_the_column_order_and_refuse_unknown_columns() -> None:
    row = history_row({"labels": 3, "round": 1})
    assert list(row)[:3] == ["round", "finished", "labels"]
    assert row["round"] == 1 and row["finished"] is None
    with pytest.raises(WorkspaceError, match="colour"):
        history_row({"colour": "red"})


def test_workspace_rounds_feed_the_stopping_rule() -> None:
    rounds = [
        WorkspaceRound(i, "t", 10 * i, 1, predictions=(0, 1, 1, 0), tau=((0.5, 0.5),))
        for i in (1, 2, 3)
    ]
    decision = should_stop(StoppingRule(budget=30, kappa_threshold=1.0, kappa_window=2), rounds)
    assert decision.kappa == 1.0
    assert [criterion(r) for r in decision.reasons] == [
        "label budget reached",
        "predictions stable",
    ]


# ---------------------------------------------------------------------------------------------
# Learning curves.


def _slow_area(x: list[float], y: list[float]) -> float:
    """The trapezoid rule written out, one interval at a time."""
    total = 0.0
    for i in range(len(x) - 1):
        total += (x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2
    return total / (x[-1] - x[0])


def test_area_of_closed_forms() -> None:
    assert area_under_curve([10, 20, 30], [0.7, 0.7, 0.7]) == pytest.approx(0.7)
    assert area_under_curve([0, 100], [0.0, 1.0]) == pytest.approx(0.5)
    # A step from 0 to 1 halfway (on a fine grid) is 0.5 too; an early rise scores higher.
    assert area_under_curve([0, 10, 100], [0.0, 1.0, 1.0]) == pytest.approx(0.95)
    assert area_under_curve([5], [0.42]) == pytest.approx(0.42)


@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
    st.data(),
)
def test_area_matches_the_slow_reference(steps: list[int], data: st.DataObject) -> None:
    x = np.cumsum([0, *steps]).astype(float).tolist()
    y = data.draw(st.lists(st.floats(0, 1), min_size=len(x), max_size=len(x)))
    area = area_under_curve(x, y)
    assert area == pytest.approx(_slow_area(x, y), abs=1e-12)
    assert min(y) - 1e-12 <= area <= max(y) + 1e-12


def test_area_refuses_malformed_curves() -> None:
    with pytest.raises(SimulationError, match="as many"):
        area_under_curve([1, 2], [0.5])
    with pytest.raises(SimulationError, match="increase"):
        area_under_curve([1, 1], [0.5, 0.6])


def test_first_reaching_returns_the_fewest_labels() -> None:
    assert first_reaching([10, 20, 30], [0.5, 0.96, 0.94], 0.95) == 20
    assert first_reaching([10, 20], [0.5, 0.6], 0.95) is None


def _run(policy: str, seed: int, accuracies: list[float], reasons: dict[int, str] | None = None):
    reasons = reasons or {}
    return RunResult(
        policy,
        seed,
        tuple(
            RoundResult(
                round=i,
                labels=10 + 10 * i,
                accuracy=a,
                stop_reasons=(reasons[i],) if i in reasons else (),
            )
            for i, a in enumerate(accuracies)
        ),
        FINISHED,
    )


def test_policy_summary_averages_seeds_and_cuts_to_common_rounds() -> None:
    runs = [
        _run("margin", 0, [0.5, 0.7, 0.9], {1: "tau stable: x", 2: "tau stable: y"}),
        _run("margin", 1, [0.3, 0.5, 0.7, 0.99], {2: "predictions stable: z"}),
    ]
    summary = summarise_policy("margin", runs, 0.8)
    assert summary.labels == (10, 20, 30)
    assert summary.mean_accuracy == pytest.approx((0.4, 0.6, 0.8))
    assert summary.std_accuracy == pytest.approx((math.sqrt(0.02),) * 3)
    assert summary.aulc == pytest.approx((0.7, 0.5))
    assert summary.aulc_mean == pytest.approx(0.6)
    assert summary.aulc_range == pytest.approx(0.2)
    assert summary.labels_to_target == 30
    assert summary.seed_labels_to_target == (30, None)
    assert dict(summary.first_stops) == {"tau stable": 20.0, "predictions stable": 30.0}


def _summary(policy: str, seeds: tuple[int, ...], aulc: tuple[float, ...]) -> PolicySummary:
    return PolicySummary(policy, seeds, aulc, (10, 20), (0.5, 0.96), (0, 0), 20, (20,), ())


def test_the_verdict_against_random_needs_more_than_the_spread() -> None:
    random = _summary("random", (0, 1, 2), (0.80, 0.82, 0.81))
    clear = _summary("margin", (0, 1, 2), (0.86, 0.87, 0.88))
    close = _summary("entropy", (0, 1, 2), (0.80, 0.84, 0.82))
    assert versus_random(clear, random).startswith("margin beats random")
    assert "difference +0.0600, spread 0.0200" in versus_random(clear, random)
    assert "per-seed differences +0.0500 to +0.0700" in versus_random(clear, random)
    assert versus_random(close, random).startswith("entropy does not beat random")


def test_conclusions_name_the_best_policy_and_the_target() -> None:
    lines = conclusions([_summary("random", (0,), (0.7,)), _summary("margin", (0,), (0.8,))], 0.95)
    assert lines[0].startswith("Best policy by area under the learning curve: margin")
    assert any("margin reaches 95.0% with 20 labels" in line for line in lines)
    assert conclusions([], 0.95) == ("No run finished a round, so there is nothing to compare.",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policies": ()}, "at least one policy"),
        ({"policies": ("margin", "margin")}, "listed twice"),
        ({"seeds": ()}, "at least one seed"),
        ({"seeds": (0, 0)}, "seed is listed twice"),
        ({"seeds": (-1,)}, "integers >= 0"),
        ({"k": 0}, "'k' = 0"),
        ({"initial_labels": -1}, "initial_labels"),
        ({"target_accuracy": 1.5}, "fraction"),
    ],
)
def test_settings_name_the_bad_value(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"policies": ("margin",), **changes}
    with pytest.raises(SimulationError, match=message):
        SimulationSettings(**values)  # type: ignore[arg-type]


def test_settings_allow_a_cold_start_and_count_the_final_labels() -> None:
    settings = SimulationSettings(policies=["margin"], initial_labels=0, rounds=3, k=7)
    assert settings.final_labels == 21
    assert settings.policies == ("margin",)


def test_one_seed_gives_no_verdict_against_random() -> None:
    line = versus_random(_summary("margin", (0,), (0.9,)), _summary("random", (0,), (0.5,)))
    assert "no spread" in line and "beats" not in line
