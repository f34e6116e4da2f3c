"""When to stop the active-learning loop: label budget, rounds, stable predictions, stable tau.

After each round the loop records how many labels it has used, the model's predicted classes
on a fixed stop set (the same samples every round), and the component-to-label map tau.
`should_stop` checks a `StoppingRule` against that history; each criterion is optional and
any one that holds stops the loop. Stable predictions follow Bloodgood & Vijay-Shanker
(2009): Cohen's kappa between consecutive rounds' predictions, averaged over a window.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import SsvaeError

IntArray = npt.NDArray[np.int64]

TAU_MEASURES = ("max_abs", "mean_tv")
"""max_abs: largest |change| of any tau entry; mean_tv: mean over components of the total
variation 0.5 * sum_y |tau_t[c, y] - tau_{t-1}[c, y]| between their label distributions."""


class StoppingError(SsvaeError, ValueError):
    """An invalid stopping rule or round history."""


def _as_classes(values: npt.ArrayLike, what: str) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise StoppingError(
            f"{what} must be a 1-D array of class indices, got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    return array.astype(np.int64)


def cohens_kappa(a: npt.ArrayLike, b: npt.ArrayLike, num_classes: int) -> float:
    """Cohen's kappa (p_o - p_e) / (1 - p_e) of two labellings of the same samples.

    p_o is the observed agreement, p_e the agreement expected by chance from each labelling's
    class frequencies. Computed from integer counts, so exact up to the final division.
    When p_e = 1 (both give every sample the same single class) kappa is 0/0; it is taken
    as 1, as the labellings agree perfectly.
    """
    first, second = _as_classes(a, "first labelling"), _as_classes(b, "second labelling")
    if first.shape != second.shape:
        raise StoppingError(
            f"the labellings have {first.size} and {second.size} samples; kappa compares "
            "labellings of the same samples"
        )
    if first.size == 0:
        raise StoppingError("kappa needs at least one sample; the stop set is empty")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise StoppingError(f"num_classes = {num_classes!r} is invalid: must be an integer >= 1")
    for labelling in (first, second):
        if labelling.min() < 0 or labelling.max() >= num_classes:
            raise StoppingError(
                f"class indices must lie in [0, {num_classes}); got {int(labelling.min())} "
                f"to {int(labelling.max())}"
            )
    n = int(first.size)
    agree = int(np.count_nonzero(first == second))
    # Python ints: n * n overflows no integer type however large the stop set.
    chance = sum(
        int(x) * int(y)
        for x, y in zip(
            np.bincount(first, minlength=num_classes),
            np.bincount(second, minlength=num_classes),
            strict=True,
        )
    )
    # kappa = (agree/n - chance/n^2) / (1 - chance/n^2), multiplied through by n^2.
    denominator = n * n - chance
    if denominator == 0:
        return 1.0
    return (n * agree - chance) / denominator


def tau_change(previous: npt.ArrayLike, current: npt.ArrayLike, measure: str = "max_abs") -> float:
    """How much tau moved between two rounds, by `measure` (see TAU_MEASURES)."""
    old = np.asarray(previous, dtype=np.float64)
    new = np.asarray(current, dtype=np.float64)
    if old.ndim != 2 or old.shape != new.shape:
        raise StoppingError(
            f"tau matrices of shapes {old.shape} and {new.shape} cannot be compared; "
            "keep the number of components and classes fixed across rounds"
        )
    difference = np.abs(new - old)
    if measure == "max_abs":
        return float(difference.max()) if difference.size else 0.0
    if measure == "mean_tv":
        return float(0.5 * difference.sum(axis=1).mean()) if difference.size else 0.0
    raise StoppingError(f"unknown tau measure {measure!r}; choose one of {', '.join(TAU_MEASURES)}")


def _optional_count(minimum: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise StoppingError(
                f"{attribute.name} = {value!r} is invalid: must be an integer >= {minimum}"
            )

    return check


def _check_kappa_threshold(_: Any, __: Any, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1
    ):
        raise StoppingError(f"kappa_threshold = {value!r} is invalid: must be in [-1, 1]")


def _check_tolerance(_: Any, __: Any, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < np.inf
    ):
        raise StoppingError(f"tau_tolerance = {value!r} is invalid: must be a number >= 0")


def _check_measure(_: Any, __: Any, value: str) -> None:
    if value not in TAU_MEASURES:
        raise StoppingError(
            f"tau_measure = {value!r} is invalid; choose one of {', '.join(TAU_MEASURES)}"
        )


@attrs.frozen
class StoppingRule:
    """When to stop; every criterion is optional (None = not checked), any one that holds stops.

    budget: stop once this many labels are used. max_rounds: stop after this many rounds.
    kappa_threshold: stop once the mean kappa between consecutive rounds' stop-set predictions,
    over the last `kappa_window` pairs, is >= it. tau_tolerance: stop once tau changed by at
    most this much (by `tau_measure`) in the last round.
    """

    budget: int | None = attrs.field(default=None, validator=_optional_count(1))
    max_rounds: int | None = attrs.field(default=None, validator=_optional_count(1))
    kappa_threshold: float | None = attrs.field(default=None, validator=_check_kappa_threshold)
    kappa_window: int = attrs.field(default=3, validator=_optional_count(1))
    tau_tolerance: float | None = attrs.field(default=None, validator=_check_tolerance)
    tau_measure: str = attrs.field(default="max_abs", validator=_check_measure)


class RoundSummary(Protocol):
    """What `should_stop` reads of one finished round."""

    @property
    def labels_used(self) -> int:
        """Labels in use after the round."""
        ...

    @property
    def predictions(self) -> npt.ArrayLike | None:
        """Predicted class indices on the fixed stop set, or None if not computed."""
        ...

    @property
    def tau(self) -> npt.ArrayLike | None:
        """The (components, classes) tau matrix, or None while no label informs it."""
        ...


@attrs.frozen(eq=False)
class RoundRecord:
    """One finished round: labels used, stop-set predictions and tau (a RoundSummary)."""

    labels_used: int
    predictions: npt.ArrayLike | None = None
    tau: npt.ArrayLike | None = None


@attrs.frozen
class StopDecision:
    """Whether to stop, every reason that holds, and the stability figures for the report."""

    stop: bool
    reasons: tuple[str, ...]
    kappa: float | None  # mean kappa over the window; None until enough rounds
    tau_change: float | None  # the last round's tau change; None until two taus


def mean_kappa(history: Sequence[RoundSummary], window: int) -> float | None:
    """Mean kappa of the last `window` consecutive prediction pairs; None if any is missing."""
    if len(history) < window + 1:
        return None
    recent = [round_.predictions for round_ in history[-(window + 1) :]]
    if any(predictions is None for predictions in recent):
        return None
    labellings = [_as_classes(p, "stop-set predictions") for p in recent if p is not None]
    if any(labelling.shape != labellings[0].shape for labelling in labellings):
        raise StoppingError(
            "stop-set predictions differ in length between rounds; predict on the same "
            "fixed stop set every round"
        )
    if labellings[0].size == 0:
        raise StoppingError("the stop set is empty; kappa needs predictions on some samples")
    lowest = min(int(labelling.min()) for labelling in labellings)
    if lowest < 0:
        raise StoppingError(f"stop-set predictions contain class index {lowest}; must be >= 0")
    num_classes = max(int(labelling.max()) for labelling in labellings) + 1
    kappas = [
        cohens_kappa(before, after, num_classes) for before, after in itertools.pairwise(labellings)
    ]
    return float(np.mean(kappas))


def last_tau_change(history: Sequence[RoundSummary], measure: str) -> float | None:
    """The tau change of the last round; None without two rounds that both have tau, or when
    a class was added between them (a map over other classes has not settled)."""
    if len(history) < 2 or history[-1].tau is None or history[-2].tau is None:
        return None
    before, after = np.shape(history[-2].tau), np.shape(history[-1].tau)
    if len(before) == len(after) == 2 and before[0] == after[0] and before[1] < after[1]:
        return None
    return tau_change(history[-2].tau, history[-1].tau, measure)


def labels_left(rule: StoppingRule, labels_used: int) -> int | None:
    """How many more labels the budget allows (never negative); None without a budget."""
    return None if rule.budget is None else max(0, rule.budget - labels_used)


def should_stop(rule: StoppingRule, history: Sequence[RoundSummary]) -> StopDecision:
    """Check `rule` against the rounds so far (oldest first); lists every reason that holds."""
    reasons: list[str] = []
    if history and rule.budget is not None and history[-1].labels_used >= rule.budget:
        reasons.append(
            f"label budget reached: {history[-1].labels_used} labels used of {rule.budget}"
        )
    if rule.max_rounds is not None and len(history) >= rule.max_rounds:
        reasons.append(f"maximum rounds reached: {len(history)} of {rule.max_rounds}")
    kappa = mean_kappa(history, rule.kappa_window)
    if rule.kappa_threshold is not None and kappa is not None and kappa >= rule.kappa_threshold:
        reasons.append(
            f"predictions stable: mean kappa {kappa:.4f} over the last {rule.kappa_window} "
            f"rounds >= {rule.kappa_threshold}"
        )
    change = last_tau_change(history, rule.tau_measure)
    if rule.tau_tolerance is not None and change is not None and change <= rule.tau_tolerance:
        reasons.append(
            f"tau stable: {rule.tau_measure} change {change:.3g} <= {rule.tau_tolerance}"
        )
    return StopDecision(bool(reasons), tuple(reasons), kappa, change)
