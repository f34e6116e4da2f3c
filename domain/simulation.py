"""Simulated-oracle experiments: settings, per-round results and the learning-curve summary.

An experiment starts every (policy, seed) run from the same `initial_labels` labels (balanced
over classes, chosen by the seed), then runs `rounds` rounds: the policy picks `k` unlabelled
pool samples, the true labels answer, the model trains `epochs_per_round` more epochs from
where it was (warm start), and its test accuracy is measured. The area under the learning
curve (accuracy against labels, trapezoid rule, divided by the label range) is the mean
accuracy over that range: 1.0 is perfect from the first label on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec
from ssvae.domain.stopping import StoppingRule
from ssvae.domain.text_examples import TextExamples

FloatArray = npt.NDArray[np.float64]

FINISHED = "finished"
INTERRUPTED = "interrupted"
FAILED = "failed"
DEFAULT_OUT = "artifacts/experiments"


class SimulationError(SsvaeError, ValueError):
    """An invalid simulation setting."""


def _int_at_least(low: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SimulationError(
                f"simulation setting '{attribute.name}' = {value!r} is invalid: "
                f"must be an integer >= {low}"
            )

    return check


def _names(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


def _seeds(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(value)


def _check_policies(_: Any, __: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise SimulationError("give at least one policy, e.g. --policies margin random")
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        raise SimulationError(f"policy {', '.join(repeated)} is listed twice; list each once")


def _check_seeds(_: Any, __: Any, value: tuple[int, ...]) -> None:
    if not value:
        raise SimulationError("give at least one seed, e.g. --seeds 0 1 2")
    for seed in value:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise SimulationError(f"seed {seed!r} is invalid: seeds are integers >= 0")
    if len(set(value)) != len(value):
        raise SimulationError("a seed is listed twice; list each seed once")


def _check_target(_: Any, __: Any, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise SimulationError(
            f"target accuracy {value!r} is invalid: give a fraction in (0, 1], e.g. 0.95"
        )


RETRAIN_MODES = ("warm", "scratch")


def _check_retrain(_: Any, __: Any, value: str) -> None:
    if value not in RETRAIN_MODES:
        raise SimulationError(
            f"retrain mode {value!r} is invalid: give warm (continue the last round's model) "
            "or scratch (a fresh model every round)"
        )


def _overrides(value: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(name), item) for name, item in items)


@attrs.frozen(kw_only=True)
class SimulationSettings:
    """Which policies and seeds, how many labels at the start and per round, how long to train."""

    policies: tuple[str, ...] = attrs.field(converter=_names, validator=_check_policies)
    seeds: tuple[int, ...] = attrs.field(default=(0,), converter=_seeds, validator=_check_seeds)
    initial_labels: int = attrs.field(default=10, validator=_int_at_least(0))
    rounds: int = attrs.field(default=5, validator=_int_at_least(0))
    k: int = attrs.field(default=10, validator=_int_at_least(1))
    epochs_per_round: int = attrs.field(default=3, validator=_int_at_least(1))
    # warm: each round continues the last round's model (optimizer state kept) for
    # epochs_per_round epochs; scratch: each round trains a fresh model (same seed) for
    # epochs_per_round epochs on all labels so far. On MNIST, warm starts from 10 labels lock
    # into the first rounds' class assignment (benchmarks/README.md); scratch does not.
    retrain: str = attrs.field(default="warm", validator=_check_retrain)
    initial_epochs: int = attrs.field(default=10, validator=_int_at_least(0))
    num_samples: int = attrs.field(default=5000, validator=_int_at_least(0))  # 0: whole split
    num_test: int = attrs.field(default=2000, validator=_int_at_least(0))  # 0: whole split
    data_seed: int = attrs.field(default=0, validator=_int_at_least(0))
    preset: str = "mixture_k10"
    overrides: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_overrides)
    dataset: str = "mnist"
    target_accuracy: float = attrs.field(default=0.95, validator=_check_target)
    stopping: StoppingRule = attrs.field(factory=StoppingRule)
    stop_set_size: int = attrs.field(default=1000, validator=_int_at_least(1))
    out: str = DEFAULT_OUT
    command: str = ""  # how the run was started, for the report

    @property
    def final_labels(self) -> int:
        """Labels in use after the last round."""
        return self.initial_labels + self.rounds * self.k


@attrs.frozen
class RoundResult:
    """One measured point of a learning curve (round 0: after the initial training)."""

    round: int
    labels: int
    accuracy: float  # of q(y|x) on the test samples
    kappa: float | None = None  # mean Cohen's kappa over the stopping window, when known
    tau_change: float | None = None
    stop_reasons: tuple[str, ...] = ()  # the stopping criteria that hold after this round
    seconds: float = 0.0  # training time of the round
    queried: tuple[int, ...] = ()  # the serials labelled in this round


@attrs.frozen
class RunResult:
    """One policy with one seed: its learning curve."""

    policy: str
    seed: int
    rounds: tuple[RoundResult, ...]
    status: str = FINISHED
    message: str = ""

    def labels(self) -> FloatArray:
        return np.array([r.labels for r in self.rounds], np.float64)

    def accuracies(self) -> FloatArray:
        return np.array([r.accuracy for r in self.rounds], np.float64)


@attrs.frozen
class SimulationResult:
    """A whole experiment: its settings, data sizes, the spec every run started from, runs."""

    settings: SimulationSettings
    dataset: str
    class_names: tuple[str, ...]
    pool_size: int
    test_size: int
    spec: ModelSpec  # the seed-0 spec; each run uses its own seed
    runs: tuple[RunResult, ...]
    started: str
    seconds: float
    # Text data: messages per class and component of the best run's final model.
    text_examples: TextExamples | None = None


class LearningCurveWriter(Protocol):
    """Writes an experiment's learning curves and report files."""

    def create_run_directory(self, root: Path) -> Path:
        """A new folder under `root`, unique even for runs started in the same second."""
        ...

    def write(self, result: SimulationResult, directory: Path) -> Sequence[Path]:
        """Every report file of `result` in `directory`; returns their paths."""
        ...


# ---------------------------------------------------------------------------------------------
# Summaries.


def area_under_curve(labels: npt.ArrayLike, accuracies: npt.ArrayLike) -> float:
    """Trapezoid area under accuracy(labels), divided by the label range: the mean accuracy.

    One point (no round) gives its accuracy. Labels must increase strictly.
    """
    x = np.asarray(labels, np.float64)
    y = np.asarray(accuracies, np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise SimulationError(
            f"a learning curve needs as many labels as accuracies, at least one: got "
            f"{x.shape} and {y.shape}"
        )
    if x.size == 1:
        return float(y[0])
    if np.any(np.diff(x) <= 0):
        raise SimulationError("the labels of a learning curve must increase from round to round")
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return area / float(x[-1] - x[0])


def _std(values: Sequence[float]) -> float:
    """The sample standard deviation (0 for one value)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def first_reaching(labels: npt.ArrayLike, accuracies: npt.ArrayLike, target: float) -> int | None:
    """The fewest labels at which the curve reaches `target`; None if it never does."""
    x, y = np.asarray(labels), np.asarray(accuracies)
    hits = np.flatnonzero(y >= target - 1e-12)
    return int(x[hits[0]]) if hits.size else None


def criterion(reason: str) -> str:
    """The name of the stopping criterion a `should_stop` reason reports ('tau stable')."""
    return reason.split(":", 1)[0]


@attrs.frozen
class PolicySummary:
    """One policy over its finished seeds: AULC, mean curve, labels to the target accuracy."""

    policy: str
    seeds: tuple[int, ...]
    aulc: tuple[float, ...]  # per seed, in `seeds` order
    labels: tuple[int, ...]  # the mean curve's x
    mean_accuracy: tuple[float, ...]
    std_accuracy: tuple[float, ...]
    labels_to_target: int | None  # on the mean curve
    seed_labels_to_target: tuple[int | None, ...]
    first_stops: tuple[tuple[str, float], ...]  # criterion -> mean labels when first met

    @property
    def aulc_mean(self) -> float:
        return float(np.mean(self.aulc)) if self.aulc else math.nan

    @property
    def aulc_std(self) -> float:
        return _std(self.aulc)

    @property
    def aulc_range(self) -> float:
        """max - min of the per-seed AULC: the seeds' spread."""
        return float(max(self.aulc) - min(self.aulc)) if self.aulc else math.nan

    @property
    def final_accuracy(self) -> float:
        return self.mean_accuracy[-1] if self.mean_accuracy else math.nan


def _first_stops(runs: Sequence[RunResult]) -> tuple[tuple[str, float], ...]:
    """For each criterion met in some run: the mean labels at its first round over those runs."""
    firsts: dict[str, list[int]] = {}
    for run in runs:
        seen: set[str] = set()
        for round_ in run.rounds:
            for reason in round_.stop_reasons:
                name = criterion(reason)
                if name not in seen:
                    seen.add(name)
                    firsts.setdefault(name, []).append(round_.labels)
    return tuple((name, float(np.mean(values))) for name, values in sorted(firsts.items()))


def summarise_policy(policy: str, runs: Sequence[RunResult], target: float) -> PolicySummary:
    """The summary of `runs` (one policy): curves cut to the rounds every run finished."""
    usable = [run for run in runs if run.rounds]
    length = min((len(run.rounds) for run in usable), default=0)
    if length == 0:
        return PolicySummary(policy, (), (), (), (), (), None, (), ())
    labels = usable[0].labels()[:length]
    curves = np.stack([run.accuracies()[:length] for run in usable])
    mean = curves.mean(axis=0)
    std = curves.std(axis=0, ddof=1) if len(usable) > 1 else np.zeros(length)
    return PolicySummary(
        policy=policy,
        seeds=tuple(run.seed for run in usable),
        aulc=tuple(area_under_curve(labels, curve) for curve in curves),
        labels=tuple(int(x) for x in labels),
        mean_accuracy=tuple(float(v) for v in mean),
        std_accuracy=tuple(float(v) for v in std),
        labels_to_target=first_reaching(labels, mean, target),
        seed_labels_to_target=tuple(first_reaching(labels, curve, target) for curve in curves),
        first_stops=_first_stops(usable),
    )


def summarise(result: SimulationResult) -> tuple[PolicySummary, ...]:
    """One summary per policy, in the settings' order, over its finished runs."""
    summaries = []
    for policy in result.settings.policies:
        runs = [r for r in result.runs if r.policy == policy and r.status == FINISHED]
        summaries.append(summarise_policy(policy, runs, result.settings.target_accuracy))
    return tuple(summaries)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def conclusions(summaries: Sequence[PolicySummary], target: float) -> tuple[str, ...]:
    """A few factual sentences: the best policy by AULC, the target, the margin over random."""
    ranked = sorted((s for s in summaries if s.aulc), key=lambda s: -s.aulc_mean)
    if not ranked:
        return ("No run finished a round, so there is nothing to compare.",)
    best = ranked[0]
    lines = [
        f"Best policy by area under the learning curve: {best.policy} "
        f"(AULC {best.aulc_mean:.4f} over {len(best.seeds)} seed(s))."
    ]
    for summary in ranked:
        if summary.labels_to_target is None:
            top = max(summary.mean_accuracy)
            lines.append(
                f"{summary.policy} does not reach {_pct(target)} on the mean curve "
                f"(best {_pct(top)} with {summary.labels[-1]} labels)."
            )
        else:
            lines.append(
                f"{summary.policy} reaches {_pct(target)} with {summary.labels_to_target} labels "
                "on the mean curve."
            )
    random = next((s for s in summaries if s.policy == "random" and s.aulc), None)
    if random is not None:
        for summary in ranked:
            if summary.policy == "random":
                continue
            lines.append(versus_random(summary, random))
    return tuple(lines)


def versus_random(summary: PolicySummary, random: PolicySummary) -> str:
    """Whether `summary` beats random sampling in AULC by more than the seeds' spread."""
    difference = summary.aulc_mean - random.aulc_mean
    spread = max(summary.aulc_range, random.aulc_range)
    paired = [
        a - b
        for seed, a in zip(summary.seeds, summary.aulc, strict=True)
        for other, b in zip(random.seeds, random.aulc, strict=True)
        if seed == other
    ]
    tail = f"; per-seed differences {min(paired):+.4f} to {max(paired):+.4f}" if paired else ""
    if min(len(summary.seeds), len(random.seeds)) < 2:
        return (
            f"{summary.policy} vs random: AULC difference {difference:+.4f}{tail}; one seed "
            "gives no spread to compare it with, so run several seeds to tell."
        )
    verdict = "beats" if difference > spread else "does not beat"
    return (
        f"{summary.policy} {verdict} random by more than the seeds' spread: AULC difference "
        f"{difference:+.4f}, spread {spread:.4f} (largest max-min over seeds){tail}."
    )
