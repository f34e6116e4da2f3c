"""Use case: simulated-oracle active-learning experiments (`ssvae simulate`).

For every seed: the same pool and test samples (chosen by the data seed), `initial_labels`
true labels balanced over classes (chosen by the seed), one model trained on them for
`initial_epochs` and checkpointed. Every policy then starts from that checkpoint, so policies
differ only by what they query. Each round the policy picks `k` pool samples, their true
labels are added, the model trains `epochs_per_round` more epochs from where it was (warm
start: optimizer state kept; or, with retrain "scratch", a fresh model trains that long on
all labels so far), and its accuracy on the test samples is measured. The stopping
criteria are checked after every round and reported; they do not end a run, so every curve
spans the same labels.

Ctrl-C stops the current run: finished runs keep their curves, the interrupted one keeps its
finished rounds (marked interrupted, left out of the summaries), and the report is written.
A run that fails (a user error such as a policy that needs outputs the model lacks) keeps its
rounds too, marked failed with the message, and the others go on.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.datasets import stratified_sample, true_classes
from ssvae.application.pool_scan import (
    PREDICT_CHUNK,
    PoolOutputs,
    model_inputs,
    pool_scores,
    predict_pool,
)
from ssvae.application.query import check_policy, choose, tau_of
from ssvae.domain.acquisition import check_prior_serves
from ssvae.domain.comparison import select_labelled, select_subset
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError, SsvaeError, TrainingDivergedError
from ssvae.domain.labels import LabelSet
from ssvae.domain.model import ModelRepository, SsvaeModel, TrainingReport
from ssvae.domain.ports import DEFAULT_SCORE_SAMPLES, DataSource, text_catalog
from ssvae.domain.query import required_inputs
from ssvae.domain.simulation import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    LearningCurveWriter,
    RoundResult,
    RunResult,
    SimulationError,
    SimulationResult,
    SimulationSettings,
)
from ssvae.domain.spec import ModelSpec, preset
from ssvae.domain.stopping import RoundRecord, RoundSummary, should_stop
from ssvae.domain.text_examples import TextExamples, text_examples
from ssvae.domain.workspace import stop_set_rows

# A fixed stride between the seeds of consecutive rounds: every round of every run draws
# from its own stream (random and k-center policies use the seed).
ROUND_SEED_STRIDE = 10_007
TEST_SPLIT = "test"
WHY_CLASSES = "a simulated oracle answers with the true labels"


class SimulationProgress(Protocol):
    """Observes an experiment: stages, each run's start, each finished round."""

    def stage(self, text: str) -> None: ...

    def run_started(self, policy: str, seed: int, index: int, total: int) -> None: ...

    def round_finished(self, policy: str, seed: int, result: RoundResult) -> None: ...


class NoProgress:
    """A SimulationProgress that shows nothing."""

    def stage(self, text: str) -> None:
        """Nothing."""

    def run_started(self, policy: str, seed: int, index: int, total: int) -> None:
        """Nothing."""

    def round_finished(self, policy: str, seed: int, result: RoundResult) -> None:
        """Nothing."""


@attrs.frozen(eq=False)
class SimulationData:
    """The pool (with its true classes) and the test samples of an experiment."""

    info: DatasetInfo
    pool: Samples
    test: Samples


@attrs.frozen(eq=False)
class SimulationRun:
    """A finished (or interrupted) experiment: its result, where the report is, whether Ctrl-C."""

    result: SimulationResult
    directory: Path
    files: tuple[Path, ...]
    interrupted: bool


@attrs.frozen(eq=False)
class _Start:
    """What every policy of one seed starts from."""

    checkpoint: Path
    labels: LabelSet
    outputs: PoolOutputs
    round0: RoundResult
    record: RoundRecord
    test: PoolOutputs  # the initial model's outputs on the test samples


def accuracy(outputs: PoolOutputs, classes: npt.NDArray[np.int64]) -> float:
    """The share of samples with a known class (>= 0) that q(y|x) classifies right."""
    known = classes >= 0
    return float(np.mean(outputs.predicted[known] == classes[known]))


@attrs.define
class SimulateService:
    """Runs simulated-oracle experiments and writes their learning curves."""

    source: DataSource
    repository: ModelRepository
    writer: LearningCurveWriter
    clock: Callable[[], float] = time.perf_counter
    now: Callable[[], dt.datetime] = dt.datetime.now
    predict_chunk: int = PREDICT_CHUNK
    score_samples: int = DEFAULT_SCORE_SAMPLES  # z draws per sample for bald and elbo

    def load_data(self, settings: SimulationSettings) -> SimulationData:
        """The pool (stratified, data seed) and test samples; checks the label budget fits."""
        info = self.source.describe()
        splits = dict(info.split_sizes)
        if "test" not in splits:
            raise DataError(
                f"dataset {info.name!r} has no 'test' split (splits: {', '.join(splits)}); "
                "a simulation measures accuracy on held-out test samples"
            )
        train = self.source.load("train")
        classes = true_classes(train, "train", info.name, WHY_CLASSES)
        # The oracle answers with the true class: samples without one never enter the pool.
        known_rows = np.flatnonzero(classes >= 0)
        if 0 < settings.num_samples < len(known_rows):
            rows = select_subset(classes, settings.num_samples, "stratified", settings.data_seed)
        else:
            rows = known_rows
        pool = train if len(rows) == len(train) else train.subset(rows)
        known = len(pool)
        if settings.final_labels > known:
            raise SimulationError(
                f"{settings.initial_labels} initial labels + {settings.rounds} rounds x "
                f"{settings.k} = {settings.final_labels} labels, but the pool has {known} "
                "samples with a class; use a larger --num-samples or fewer rounds"
            )
        test = self.source.load("test")
        true_classes(test, "test", info.name, WHY_CLASSES)
        test = stratified_sample(test, settings.num_test, settings.data_seed + 1)
        return SimulationData(info=info, pool=pool, test=test)

    def spec(self, settings: SimulationSettings, info: DatasetInfo, seed: int) -> ModelSpec:
        """The preset with the overrides, fitted to the data; every label trains by default."""
        overrides = dict(settings.overrides)
        # Held-out labels would be wasted queries: the test split measures accuracy instead.
        overrides.setdefault("validation_split", 0.0)
        return preset(settings.preset, **overrides).evolve(
            input_shape=tuple(info.sample_shape),
            num_classes=len(info.vocabulary),
            seed=seed,
        )

    def run(
        self, settings: SimulationSettings, progress: SimulationProgress | None = None
    ) -> SimulationRun:
        """Every (policy, seed) run of `settings`; the report is written even after Ctrl-C."""
        progress = progress if progress is not None else NoProgress()
        for policy in settings.policies:
            check_policy(policy)
        if "bald" in settings.policies:  # refused before loading data: the prior needs none
            check_prior_serves(
                "bald", preset(settings.preset, **dict(settings.overrides)).network.prior
            )
        started, start = self.now(), self.clock()
        progress.stage("loading data")
        data = self.load_data(settings)
        base_spec = self.spec(settings, data.info, settings.seeds[0])
        directory = self.writer.create_run_directory(Path(settings.out))
        runs: list[RunResult] = []
        # Text data: the messages per class and component of the best finished run's model.
        best: tuple[float, TextExamples] | None = None
        interrupted = False
        total = len(settings.seeds) * len(settings.policies)
        for seed in settings.seeds:
            if interrupted:
                break
            try:
                progress.stage(f"initial training, seed {seed}")
                begin = self._begin(settings, data, seed, directory)
            except KeyboardInterrupt:
                interrupted = True
                break
            for policy in settings.policies:
                progress.run_started(policy, seed, len(runs), total)
                rounds: list[RoundResult] = []
                try:
                    final = self._run(settings, data, policy, seed, begin, progress, rounds)
                    runs.append(RunResult(policy, seed, tuple(rounds), FINISHED))
                    examples = self._text_examples(data, final, policy, seed, rounds[-1])
                    if examples is not None and (best is None or rounds[-1].accuracy > best[0]):
                        best = (rounds[-1].accuracy, examples)
                except KeyboardInterrupt:
                    message = f"interrupted (Ctrl-C) after {max(len(rounds) - 1, 0)} round(s)"
                    runs.append(RunResult(policy, seed, tuple(rounds), INTERRUPTED, message))
                    interrupted = True
                    break
                except SsvaeError as error:
                    runs.append(RunResult(policy, seed, tuple(rounds), FAILED, str(error)))
        result = SimulationResult(
            settings=settings,
            dataset=data.info.name,
            class_names=data.info.vocabulary.names,
            pool_size=len(data.pool),
            test_size=len(data.test),
            spec=base_spec,
            runs=tuple(runs),
            started=started.isoformat(timespec="seconds"),
            seconds=self.clock() - start,
            text_examples=None if best is None else best[1],
        )
        progress.stage("writing the report")
        files = self.writer.write(result, directory)
        return SimulationRun(result, directory, tuple(files), interrupted)

    def _begin(
        self, settings: SimulationSettings, data: SimulationData, seed: int, directory: Path
    ) -> _Start:
        """Train the seed's model on its initial labels, checkpoint it, measure round 0."""
        assert data.pool.y is not None
        spec = self.spec(settings, data.info, seed)
        names = data.info.vocabulary.names
        chosen = select_labelled(data.pool.y, settings.initial_labels, seed)
        labels = LabelSet.from_pairs(
            data.info.vocabulary,
            ((int(data.pool.serials[i]), names[int(data.pool.y[i])]) for i in chosen),
        )
        model = self.repository.create(spec)
        seconds = 0.0
        if settings.initial_epochs > 0:
            report = _checked(model.fit(data.pool, labels, settings.initial_epochs))
            seconds = report.seconds
        checkpoint = directory / "checkpoints" / f"seed-{seed}-initial"
        self.repository.save(model, checkpoint)
        outputs, round0, record, test = self._measure(
            settings, data, model, labels, 0, seconds, (), []
        )
        return _Start(checkpoint, labels, outputs, round0, record, test)

    def _measure(
        self,
        settings: SimulationSettings,
        data: SimulationData,
        model: SsvaeModel,
        labels: LabelSet,
        index: int,
        seconds: float,
        queried: tuple[int, ...],
        history: list[RoundSummary],
    ) -> tuple[PoolOutputs, RoundResult, RoundRecord, PoolOutputs]:
        """Pool outputs (for the next query), test accuracy, the stopping check, and the
        test outputs they came from."""
        assert data.test.y is not None
        # One pool pass serves every policy of the run: inputs when any of them reads them.
        needs_inputs = any("inputs" in required_inputs(p) for p in settings.policies)
        outputs = predict_pool(model, data.pool, self.predict_chunk, needs_inputs)
        test = predict_pool(model, data.test, self.predict_chunk)
        test_accuracy = accuracy(test, data.test.y)
        stop_rows = stop_set_rows(len(data.pool), settings.data_seed, settings.stop_set_size)
        record = RoundRecord(
            labels_used=len(labels),
            predictions=outputs.predicted[stop_rows],
            tau=tau_of(
                outputs, labels, model.spec.network.num_classes, model.spec.scoring.tau_alpha0
            ),
        )
        decision = should_stop(settings.stopping, [*history, record])
        result = RoundResult(
            round=index,
            labels=len(labels),
            accuracy=test_accuracy,
            kappa=decision.kappa,
            tau_change=decision.tau_change,
            stop_reasons=decision.reasons,
            seconds=seconds,
            queried=queried,
        )
        return outputs, result, record, test

    def _run(
        self,
        settings: SimulationSettings,
        data: SimulationData,
        policy: str,
        seed: int,
        begin: _Start,
        progress: SimulationProgress,
        rounds: list[RoundResult],
    ) -> PoolOutputs:
        """One policy from the seed's checkpoint; appends each finished round to `rounds`.
        Returns the final model's outputs on the test samples."""
        assert data.pool.y is not None
        names = data.info.vocabulary.names
        class_of = dict(zip(data.pool.serials.tolist(), data.pool.y.tolist(), strict=True))
        rounds.append(begin.round0)
        progress.round_finished(policy, seed, begin.round0)
        history: list[RoundSummary] = [begin.record]
        labels, outputs, test = begin.labels, begin.outputs, begin.test
        warm = settings.retrain == "warm"
        # Warm rounds continue the seed's initial model; scratch rounds never read it.
        model = self.repository.load(begin.checkpoint) if warm else None
        spec = self.spec(settings, data.info, seed)
        for index in range(1, settings.rounds + 1):
            round_seed = seed * ROUND_SEED_STRIDE + index
            if model_inputs(policy):
                # bald and elbo need the model that made `outputs`: the seed's checkpoint in
                # round 1 (a scratch run holds no model yet), else the last round's model.
                scorer = model if model is not None else self.repository.load(begin.checkpoint)
                scores = pool_scores(
                    scorer, data.pool, policy, self.predict_chunk, self.score_samples, round_seed
                )
                outputs = outputs.with_scores(scores)
            selection = choose(
                outputs,
                labels.serials(),
                policy,
                settings.k,
                round_seed,
                labelled_classes=labels.class_indices(),
            )
            queried = tuple(int(s) for s in selection.serials)
            labels = LabelSet.from_pairs(
                labels.vocabulary, [*labels, *((s, names[class_of[s]]) for s in queried)]
            )
            if model is None or not warm:
                model = self.repository.create(spec)
            fresh = index == 1 or not warm
            report = self._train(model, data.pool, labels, settings.epochs_per_round, fresh)
            outputs, result, record, test = self._measure(
                settings, data, model, labels, index, report.seconds, queried, history
            )
            history.append(record)
            rounds.append(result)
            progress.round_finished(policy, seed, result)
        return test

    def _text_examples(
        self,
        data: SimulationData,
        test: PoolOutputs,
        policy: str,
        seed: int,
        final: RoundResult,
    ) -> TextExamples | None:
        """For text data, the test messages each class and component of a run's final model
        holds most surely; None for image and vector data."""
        catalog = text_catalog(self.source)
        if catalog is None or data.info.kind != "text":
            return None
        return text_examples(
            test.serials,
            test.probs,
            test.responsibilities,
            data.test.y,
            data.info.vocabulary.names,
            lambda serials: catalog.texts(TEST_SPLIT, serials),
            source=(
                f"the {len(data.test):,} test messages, final model of {policy} seed {seed} "
                f"({final.labels} labels, {100 * final.accuracy:.1f}% test accuracy)"
            ),
        )

    @staticmethod
    def _train(
        model: SsvaeModel, pool: Samples, labels: LabelSet, epochs: int, fresh: bool
    ) -> TrainingReport:
        """A loaded checkpoint (round 1) or a new model (retrain scratch) starts with fit;
        a warm model continues with fit_more."""
        return _checked(
            model.fit(pool, labels, epochs) if fresh else model.fit_more(epochs, labels)
        )


def _checked(report: TrainingReport) -> TrainingReport:
    """`report`, unless training was interrupted (KeyboardInterrupt) or blew up (an error:
    the learning curves of a diverged model would measure the blow-up, not the policy)."""
    if report.stop_reason == "interrupted":
        raise KeyboardInterrupt
    if report.diverged:
        raise TrainingDivergedError(report.message)
    return report
