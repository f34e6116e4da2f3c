"""Comparing models on one dataset: the experiment, each model's outcome, and the conclusion.

An `Experiment` says which models to train on which subset of a dataset. The comparison use
case (`ssvae.application.compare`) turns it into a `ComparisonResult`; a `ReportWriter` turns
that into figures and documents. Selection of the training subset and the labelled samples is
pure and seeded here, so the same experiment always trains on the same samples.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import EpochRecord, SsvaeModel, TrainingCallback, TrainingReport
from ssvae.domain.spec import ModelSpec
from ssvae.domain.text_examples import TextExamples

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SAMPLING_METHODS: tuple[str, ...] = ("stratified", "random")
DEFAULT_MODELS: tuple[str, ...] = ("standard", "mixture_k10")
DEFAULT_OUT = "artifacts/comparisons"

# What became of each model of a comparison.
FINISHED = "finished"
INTERRUPTED = "interrupted"
FAILED = "failed"
NOT_RUN = "not_run"
STATUSES: tuple[str, ...] = (FINISHED, INTERRUPTED, FAILED, NOT_RUN)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


class ExperimentError(SsvaeError, ValueError):
    """An invalid experiment: a bad option, experiment-file key or value."""


def _int_at_least(low: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ExperimentError(
                f"experiment setting '{attribute.name}' = {short_repr(value)} is invalid: "
                f"must be an integer >= {low}"
            )

    return check


def _sampling(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in SAMPLING_METHODS:
        raise ExperimentError(
            f"experiment setting 'sampling' = {short_repr(value)} is invalid: "
            f"must be one of {', '.join(SAMPLING_METHODS)}"
        )


def _text(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ExperimentError(
            f"experiment setting '{attribute.name}' = {short_repr(value)} is invalid: must be a "
            "non-empty text"
        )


def check_model_name(name: object) -> str:
    """`name` if it can label a model and name its folder; ExperimentError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 80:
        raise ExperimentError(
            f"model name {short_repr(name)} is invalid: use up to 80 letters, digits and "
            "_ . + = - (it names the model's folder), starting with a letter or digit"
        )
    return name


@attrs.frozen
class ModelPlan:
    """One model of a comparison: the name shown in the report and its resolved spec."""

    name: str = attrs.field(validator=lambda _, __, v: check_model_name(v))
    spec: ModelSpec


def _plans(value: Sequence[ModelPlan]) -> tuple[ModelPlan, ...]:
    return tuple(value)


def _check_plans(_: Any, __: Any, plans: tuple[ModelPlan, ...]) -> None:
    if not plans:
        raise ExperimentError("an experiment needs at least one model; list them under 'models'")
    names = [p.name for p in plans]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ExperimentError(
            f"model name(s) {', '.join(repeated)} appear more than once; give each model its "
            "own 'name'"
        )


@attrs.frozen(kw_only=True)
class Experiment:
    """Which models to train, on how many samples of which dataset, with how many labels."""

    models: tuple[ModelPlan, ...] = attrs.field(converter=_plans, validator=_check_plans)
    dataset: str = attrs.field(default="mnist", validator=_text)
    num_samples: int = attrs.field(default=5000, validator=_int_at_least(2))
    num_labeled: int = attrs.field(default=50, validator=_int_at_least(1))
    num_test: int = attrs.field(default=0, validator=_int_at_least(0))  # 0: the whole split
    sampling: str = attrs.field(default="stratified", validator=_sampling)
    seed: int = attrs.field(default=0, validator=_int_at_least(0))
    out: str = attrs.field(default=DEFAULT_OUT, validator=_text)
    source: str = "command line"  # where the settings came from, for the report

    def __attrs_post_init__(self) -> None:
        if self.num_labeled > self.num_samples:
            raise ExperimentError(
                f"experiment settings 'num_labeled' = {self.num_labeled} and 'num_samples' = "
                f"{self.num_samples} are invalid: the labelled samples are part of the "
                "training samples, so num_labeled must be at most num_samples"
            )


# ---------------------------------------------------------------------------------------------
# Seeded selection of the training subset and of the labelled samples.


def _largest_remainder(weights: npt.NDArray[np.float64], total: int, order: IntArray) -> IntArray:
    """Integer quotas summing to `total`, proportional to `weights`; ties go by `order`."""
    exact = weights / weights.sum() * total
    quotas: IntArray = np.floor(exact).astype(np.int64)
    remainder = exact - quotas
    # Stable sort on -remainder after placing classes in the seeded order: equal remainders
    # are broken by the seed, not by class index.
    ranked = order[np.argsort(-remainder[order], kind="stable")]
    quotas[ranked[: total - int(quotas.sum())]] += 1
    return quotas


def select_subset(classes: IntArray, count: int, method: str, seed: int) -> IntArray:
    """`count` row indices of `classes` (ascending), stratified by class or uniformly random.

    Stratified keeps each class's share of the whole (largest-remainder rounding); rows with
    an unknown class (-1) are never chosen.
    """
    classes = np.asarray(classes, dtype=np.int64)
    known = np.flatnonzero(classes >= 0)
    if count > len(known):
        raise ExperimentError(
            f"num_samples = {count} is more than the {len(known)} training samples with a known "
            f"class; use at most {len(known)}"
        )
    rng = np.random.default_rng([seed, 1])
    if method == "random" or count == len(known):
        return np.sort(rng.choice(known, size=count, replace=False))
    present = np.unique(classes[known])
    sizes = np.array([np.count_nonzero(classes == c) for c in present], np.float64)
    quotas = _largest_remainder(sizes, count, rng.permutation(len(present)))
    chosen = [
        rng.choice(np.flatnonzero(classes == c), size=int(q), replace=False)
        for c, q in zip(present, quotas, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def select_labelled(classes: IntArray, count: int, seed: int) -> IntArray:
    """`count` row indices (ascending) balanced over classes: round-robin over seeded orders.

    Every class gets count // C rows and the remainder goes to classes in a seeded order; a
    class with too few rows gives its share to the others.
    """
    classes = np.asarray(classes, dtype=np.int64)
    known = np.count_nonzero(classes >= 0)
    if count > known:
        raise ExperimentError(
            f"num_labeled = {count} is more than the {known} training samples with a known "
            f"class; use at most {known}"
        )
    rng = np.random.default_rng([seed, 2])
    present = rng.permutation(np.unique(classes[classes >= 0]))
    queues = [rng.permutation(np.flatnonzero(classes == c)) for c in present]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count:
        for queue in queues:
            if depth < len(queue) and len(chosen) < count:
                chosen.append(int(queue[depth]))
        depth += 1
    return np.sort(np.array(chosen, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# Samples generated by a model (what it thinks each class and each component looks like).


@attrs.frozen(eq=False)
class GeneratedSamples:
    """Decoder means for prior draws: per class, and per mixture component and class.

    `per_class` (C, n, *input_shape): z drawn from the prior p(z), decoded with each class y.
    `per_component` (K, C, *input_shape): the mean of component k decoded with each class y.
    `mixing_weights` (K,): the prior's mixing weights (uniform for VampPrior, [1] standard).
    """

    per_class: FloatArray
    per_component: FloatArray
    mixing_weights: FloatArray


class ModelGenerator(Protocol):
    """Looks inside a trained model: generated samples and reconstructions."""

    def generate(self, model: SsvaeModel, per_class: int, seed: int) -> GeneratedSamples:
        """`per_class` samples of every class and one per component and class."""
        ...

    def reconstruct(self, model: SsvaeModel, x: FloatArray) -> FloatArray:
        """The model's reconstructions of `x` (same shape), through its predicted class."""
        ...


# ---------------------------------------------------------------------------------------------
# Results.


def confusion_matrix(true: IntArray, predicted: IntArray, num_classes: int) -> IntArray:
    """counts[t, p]: samples of true class t predicted as p."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(true, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def per_class_accuracy(confusion: IntArray) -> tuple[float | None, ...]:
    """Recall of each class (None where the class has no sample)."""
    totals = confusion.sum(axis=1)
    return tuple(
        float(confusion[c, c] / totals[c]) if totals[c] > 0 else None for c in range(len(totals))
    )


def usage_entropy(usage: FloatArray) -> float:
    """Entropy (nats) of the component usage; exp of it is the effective component count."""
    p = np.asarray(usage, np.float64)
    p = p[p > 0] / p.sum() if p.sum() > 0 else p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum()))  # never -0.0


@attrs.frozen(eq=False)
class Evaluation:
    """A trained model measured on the test samples."""

    accuracy: float  # classifier q(y|x)
    tau_accuracy: float | None  # the component-to-label classifier, when the model has one
    confusion: IntArray  # (C, C) of q(y|x): rows true, columns predicted
    component_usage: FloatArray  # (K,) mean responsibilities over the test samples
    latent: FloatArray  # (n, D) latent means of (some of) the test samples
    latent_classes: IntArray  # (n,) their true classes
    originals: FloatArray  # (m, *input_shape) test samples shown with their reconstructions
    reconstructions: FloatArray | None
    generated: GeneratedSamples | None
    test_size: int
    examples: TextExamples | None = None  # text data: messages per class and component

    @property
    def per_class(self) -> tuple[float | None, ...]:
        return per_class_accuracy(self.confusion)

    @property
    def usage_entropy(self) -> float:
        return usage_entropy(self.component_usage)

    @property
    def mixing_weights(self) -> FloatArray | None:
        return None if self.generated is None else self.generated.mixing_weights


@attrs.frozen(eq=False)
class ModelOutcome:
    """What became of one model: how it trained and, if it finished, how it did."""

    plan: ModelPlan
    status: str
    message: str = ""
    history: tuple[EpochRecord, ...] = ()
    stop_reason: str = ""
    best_epoch: int = 0
    seconds: float = 0.0
    evaluation: Evaluation | None = None
    checkpoint: Path | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def validation_elbo(self) -> float | None:
        """The ELBO (nats per sample) on the held-out rows at the best epoch, if measured."""
        by_epoch = {r.epoch: r.metrics for r in self.history}
        record = by_epoch.get(self.best_epoch) or (self.history[-1].metrics if self.history else {})
        value = record.get("val_elbo")
        return None if value is None or not math.isfinite(value) else float(value)


@attrs.frozen(eq=False)
class ComparisonResult:
    """Every model's outcome on one experiment, with the data it used."""

    experiment: Experiment
    dataset: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    train_size: int
    labelled_per_class: tuple[int, ...]
    test_size: int
    outcomes: tuple[ModelOutcome, ...]
    seconds: float
    started: str  # ISO 8601 local time
    data_kind: str = "image"  # DatasetInfo.kind: "image", "vector" or "text"

    @property
    def interrupted(self) -> bool:
        return any(o.status == INTERRUPTED for o in self.outcomes)

    @property
    def finished(self) -> tuple[ModelOutcome, ...]:
        return tuple(o for o in self.outcomes if o.evaluation is not None)


class ReportWriter(Protocol):
    """Writes a comparison's files: figures, summary and documents."""

    def create_run_directory(self, root: Path) -> Path:
        """A new, empty folder under `root` named by the time, unique even within a second."""
        ...

    def write(self, result: ComparisonResult, directory: Path) -> Sequence[Path]:
        """Write every report file for `result` into `directory`; the paths written."""
        ...


# The spec-file key that names the preset a model starts from (`preset: mixture_k10`).
PRESET_KEY = "preset"
# The experiment settings a file or a flag may give (the fields of Experiment but its models).
EXPERIMENT_SETTINGS: tuple[str, ...] = (
    "dataset",
    "num_samples",
    "num_labeled",
    "num_test",
    "sampling",
    "seed",
    "out",
)


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """` (did you mean 'a' or 'b'?)` for the known names close to `key`; '' for none."""
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


@attrs.frozen
class ModelEntry:
    """One model as an experiment file gives it, before its spec is built: its name, its own
    spec keys and the line of each (lines only locate errors)."""

    name: str
    values: Mapping[str, Any]
    key_lines: Mapping[str, int] = attrs.field(factory=dict)
    line: int | None = None


@attrs.frozen
class ExperimentFile:
    """What an experiment file says, read but not yet merged with flags nor validated.

    `values` holds the top-level keys (settings, `epochs`); `models` None means the file
    names none; `overrides` are spec fields for every model. Lines only locate errors.
    """

    source: str
    values: Mapping[str, Any] = attrs.field(factory=dict)
    key_lines: Mapping[str, int] = attrs.field(factory=dict)
    models: tuple[ModelEntry, ...] | None = None
    overrides: Mapping[str, Any] = attrs.field(factory=dict)
    override_lines: Mapping[str, int] = attrs.field(factory=dict)

    def where(self, line: int | None) -> str:
        """`source:line`, or the source alone where the line is unknown."""
        return f"{self.source}:{line}" if line is not None else self.source


class ExperimentReader(Protocol):
    """Reads experiment files and builds model specs; which value wins is not its concern."""

    def read(self, path: Path) -> ExperimentFile:
        """The experiment file at `path`; ExperimentError naming the file and line."""
        ...

    def parse_assignments(self, assignments: Sequence[str]) -> dict[str, Any]:
        """`KEY=VALUE` texts (from --set) as spec values, read as the files read values."""
        ...

    def spec(
        self,
        model: ModelEntry,
        file: ExperimentFile,
        flag_fields: Mapping[str, str],
    ) -> ModelSpec:
        """The spec of `model`, whose values are final; an error names the line of the key
        behind it, or the flag (`flag_fields`: field -> flag text) that set it."""
        ...


# ---------------------------------------------------------------------------------------------
# Forwarding training events to whoever listens now.


class TrainingRelay:
    """A TrainingCallback that forwards events to the listeners attached at the moment.

    A model repository is built once with its callbacks; the relay lets each run (one model
    of a comparison, say) listen to the model it trains without rebuilding the repository.
    """

    def __init__(self) -> None:
        self._listeners: list[TrainingCallback] = []

    def attach(self, listener: TrainingCallback) -> None:
        self._listeners.append(listener)

    def detach(self, listener: TrainingCallback) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        for listener in tuple(self._listeners):
            listener.on_step(epoch, step, steps_per_epoch, loss)

    def on_epoch_end(self, record: EpochRecord) -> None:
        for listener in tuple(self._listeners):
            listener.on_epoch_end(record)

    def on_train_end(self, report: TrainingReport) -> None:
        for listener in tuple(self._listeners):
            listener.on_train_end(report)


# ---------------------------------------------------------------------------------------------
# The conclusion: a few factual sentences drawn from the numbers.


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _best_accuracy(outcome: ModelOutcome) -> float:
    assert outcome.evaluation is not None
    tau = outcome.evaluation.tau_accuracy
    return max(outcome.evaluation.accuracy, tau if tau is not None else 0.0)


def _accuracy_sentences(result: ComparisonResult) -> list[str]:
    done = sorted(result.finished, key=lambda o: -_best_accuracy(o))
    chance = 1.0 / max(len(result.class_names), 1)
    lines = []
    best = done[0]
    assert best.evaluation is not None
    line = (
        f"{best.name} has the highest test accuracy: {_pct(best.evaluation.accuracy)} with the "
        "classifier q(y|x)"
    )
    if best.evaluation.tau_accuracy is not None:
        line += f" and {_pct(best.evaluation.tau_accuracy)} with the component-label map"
    lines.append(line + f" (chance: {_pct(chance)}).")
    for other in done[1:]:
        assert other.evaluation is not None
        gap = 100 * (_best_accuracy(best) - _best_accuracy(other))
        if gap < 0.05:
            lines.append(f"{other.name} ties with {best.name} at {_pct(_best_accuracy(other))}.")
            continue
        lines.append(
            f"{other.name} reaches {_pct(_best_accuracy(other))} at best, {gap:.1f} points "
            f"below {best.name}."
        )
    if len(done) == 1:
        lines[0] = lines[0].replace("has the highest", "has a")
    weakest = [
        (acc, name)
        for acc, name in zip(best.evaluation.per_class, result.class_names, strict=True)
        if acc is not None
    ]
    if weakest:
        acc, name = min(weakest)
        lines.append(f"The weakest class of {best.name} is {name!r} at {_pct(acc)}.")
    return lines


def _other_sentences(result: ComparisonResult) -> list[str]:
    done = result.finished
    lines = []
    with_elbo = [(o.validation_elbo, o.name) for o in done if o.validation_elbo is not None]
    if len(with_elbo) > 1:
        elbo, name = max(with_elbo)
        lines.append(f"{name} has the highest validation ELBO: {elbo:.1f} nats per sample.")
    for outcome in done:
        assert outcome.evaluation is not None
        k = len(outcome.evaluation.component_usage)
        if k > 1:
            effective = math.exp(outcome.evaluation.usage_entropy)
            lines.append(
                f"{outcome.name} spreads the test samples over {effective:.1f} of its {k} "
                "components (exp of the usage entropy)."
            )
    if len(done) > 1:
        fastest = min(done, key=lambda o: o.seconds)
        lines.append(
            f"Fastest to train: {fastest.name}, {fastest.seconds:.0f} s for "
            f"{fastest.epochs_run} epoch(s)."
        )
    for outcome in done:
        if outcome.stop_reason not in ("", "max_epochs"):
            lines.append(
                f"{outcome.name} stopped after {outcome.epochs_run} epoch(s): "
                f"{outcome.stop_reason.replace('_', ' ')}."
            )
    return lines


def _status_sentences(result: ComparisonResult) -> list[str]:
    lines = []
    for outcome in result.outcomes:
        if outcome.status == INTERRUPTED:
            lines.append(
                f"{outcome.name} was interrupted after {outcome.epochs_run} epoch(s); it is "
                "not evaluated."
            )
        elif outcome.status == FAILED:
            lines.append(f"{outcome.name} failed: {outcome.message}")
    skipped = [o.name for o in result.outcomes if o.status == NOT_RUN]
    if skipped:
        lines.append(f"Not run after the interruption: {', '.join(skipped)}.")
    return lines


def conclusion(result: ComparisonResult) -> tuple[str, ...]:
    """Short factual sentences comparing the models, drawn only from `result`'s numbers."""
    if not result.finished:
        return ("No model finished, so there is nothing to compare.", *_status_sentences(result))
    return (*_accuracy_sentences(result), *_other_sentences(result), *_status_sentences(result))
