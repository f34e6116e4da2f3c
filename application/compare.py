"""Use case: compare models on one dataset and write a report.

The same command always gives the same numbers: the training subset, the labelled samples and
every model's initialisation derive from the experiment's seed. Ctrl-C (KeyboardInterrupt)
stops the current model; the models that finished keep their results, the interrupted one is
marked as such, and the report is still written.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import attrs
import numpy as np

from ssvae.application.datasets import stratified_sample, true_classes
from ssvae.domain.comparison import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    NOT_RUN,
    ComparisonResult,
    Evaluation,
    Experiment,
    ModelGenerator,
    ModelOutcome,
    ModelPlan,
    ReportWriter,
    TrainingRelay,
    confusion_matrix,
    select_labelled,
    select_subset,
)
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError, SsvaeError
from ssvae.domain.labels import LabelSet
from ssvae.domain.model import EpochRecord, ModelRepository, SsvaeModel, TrainingReport
from ssvae.domain.ports import DataSource, text_catalog
from ssvae.domain.text_examples import TextExamples, text_examples

LATENT_POINTS = 2000  # test samples shown in the latent plot (more only blurs it)
RECONSTRUCTED = 10  # test samples shown over their reconstructions
GENERATED_PER_CLASS = 8
TEST_SPLIT = "test"
HELD_OUT_FRACTION = 0.2  # of the labelled rows, tested on when a dataset has no test split
HELD_OUT_SEED = 7  # offsets the experiment seed: other draws than the pool's and the labels'
WHY_CLASSES = "a comparison measures accuracy"


class ComparisonProgress(Protocol):
    """Observes a comparison: which model trains, its steps and epochs, and when it ends."""

    def model_started(self, index: int, plan: ModelPlan) -> None: ...

    def step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None: ...

    def epoch_finished(self, record: EpochRecord) -> None: ...

    def model_finished(self, outcome: ModelOutcome) -> None: ...

    def stage(self, text: str) -> None:
        """A phase outside training, such as loading data or writing the report."""
        ...


class NoProgress:
    """A ComparisonProgress that shows nothing."""

    def model_started(self, index: int, plan: ModelPlan) -> None:
        """Nothing."""

    def step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing."""

    def epoch_finished(self, record: EpochRecord) -> None:
        """Nothing."""

    def model_finished(self, outcome: ModelOutcome) -> None:
        """Nothing."""

    def stage(self, text: str) -> None:
        """Nothing."""


class _Recorder:
    """A TrainingCallback that keeps the epochs of one model and forwards them to progress."""

    def __init__(self, progress: ComparisonProgress) -> None:
        self.progress = progress
        self.records: list[EpochRecord] = []

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        self.progress.step(epoch, step, steps_per_epoch, loss)

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.records.append(record)
        self.progress.epoch_finished(record)

    def on_train_end(self, report: TrainingReport) -> None:
        """Nothing: the report comes back from fit."""


@attrs.frozen(eq=False)
class ComparisonData:
    """The samples one comparison trains and tests on."""

    info: DatasetInfo
    pool: Samples
    labels: LabelSet
    test: Samples


@attrs.frozen(eq=False)
class ComparisonRun:
    """A finished (or interrupted) comparison: its result and where the report is."""

    result: ComparisonResult
    directory: Path
    files: tuple[Path, ...]


def _held_out_count(classes: np.ndarray) -> int:
    known = int(np.count_nonzero(classes >= 0))
    count = round(HELD_OUT_FRACTION * known)
    if count < 1 or count >= known:
        raise DataError(
            f"only {known} samples have a known class: too few to hold out test samples and "
            "still train; give more labelled samples, or a test split (--test-vectors)"
        )
    return count


def showcase_rows(classes: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` rows: the first sample of each class in class order, then the next rows."""
    known = np.flatnonzero(classes >= 0)
    _, first = np.unique(classes[known], return_index=True)
    chosen = list(known[first][:count])
    chosen += [int(i) for i in range(len(classes)) if i not in set(chosen)][: count - len(chosen)]
    return np.array(chosen, dtype=np.int64)


@attrs.define
class CompareService:
    """Trains every model of an experiment on the same data, evaluates them, writes a report."""

    source: DataSource
    repository: ModelRepository
    generator: ModelGenerator
    writer: ReportWriter
    relay: TrainingRelay
    clock: Callable[[], float] = time.perf_counter
    now: Callable[[], dt.datetime] = dt.datetime.now

    def fitted_num_samples(self, experiment: Experiment) -> int:
        """`experiment.num_samples`, or fewer when the training data has fewer with a class.

        For a default that a small file cannot meet (64 messages hold no 5000 samples); a
        number the user chose is left to fail with its own message. Only a train split
        smaller than twice the default is loaded to count: a large dataset stays cheap.
        """
        info = self.source.describe()
        if dict(info.split_sizes).get("train", 0) >= 2 * experiment.num_samples:
            return experiment.num_samples
        _, classes, _, _ = self._train_and_test(info, experiment)
        return min(experiment.num_samples, int(np.count_nonzero(classes >= 0)))

    def load_data(self, experiment: Experiment) -> ComparisonData:
        """The seeded training subset, its balanced labelled part, and the test samples."""
        info = self.source.describe()
        train, classes, test, _ = self._train_and_test(info, experiment)
        pool = train.subset(
            select_subset(classes, experiment.num_samples, experiment.sampling, experiment.seed)
        )
        assert pool.y is not None
        chosen = select_labelled(pool.y, experiment.num_labeled, experiment.seed)
        names = info.vocabulary.names
        labels = LabelSet.from_pairs(
            info.vocabulary, ((int(pool.serials[i]), names[int(pool.y[i])]) for i in chosen)
        )
        test = stratified_sample(test, experiment.num_test, experiment.seed + 1)
        return ComparisonData(info=info, pool=pool, labels=labels, test=test)

    def _train_and_test(
        self, info: DatasetInfo, experiment: Experiment
    ) -> tuple[Samples, np.ndarray, Samples, np.ndarray]:
        """The train and test samples with their classes (test held out of train if need be)."""
        train = self.source.load("train")
        classes = true_classes(train, "train", info.name, WHY_CLASSES)
        if "test" in dict(info.split_sizes):
            test = self.source.load("test")
            test_classes = true_classes(test, "test", info.name, WHY_CLASSES)
        else:
            # One file of vectors has no test split: hold out part of its labelled rows, the
            # same ones for every model, so that accuracy is measured on samples none saw.
            held = select_subset(
                classes, _held_out_count(classes), "stratified", experiment.seed + HELD_OUT_SEED
            )
            test = train.subset(held)
            train = train.subset(np.setdiff1d(np.arange(len(train)), held))
            assert train.y is not None and test.y is not None
            classes, test_classes = train.y, test.y
        return train, classes, test, test_classes

    def run(
        self, experiment: Experiment, progress: ComparisonProgress | None = None
    ) -> ComparisonRun:
        """Train, evaluate and report every model of `experiment`; Ctrl-C keeps what finished."""
        progress = progress if progress is not None else NoProgress()
        started, start = self.now(), self.clock()
        progress.stage("loading data")
        data = self.load_data(experiment)
        directory = self.writer.create_run_directory(Path(experiment.out))
        outcomes: list[ModelOutcome] = []
        plans = [self._fitted_plan(plan, data.info) for plan in experiment.models]
        for index, plan in enumerate(plans):
            progress.model_started(index, plan)
            outcome = self._run_model(plan, data, directory, experiment.seed, progress)
            outcomes.append(outcome)
            progress.model_finished(outcome)
            if outcome.status == INTERRUPTED:
                outcomes.extend(ModelOutcome(plan=p, status=NOT_RUN) for p in plans[index + 1 :])
                break
        assert data.pool.y is not None
        result = ComparisonResult(
            experiment=experiment,
            dataset=data.info.name,
            class_names=data.info.vocabulary.names,
            input_shape=tuple(data.info.sample_shape),
            train_size=len(data.pool),
            labelled_per_class=tuple(
                int(n)
                for n in np.bincount(
                    data.labels.class_indices(), minlength=len(data.info.vocabulary)
                )
            ),
            test_size=len(data.test),
            outcomes=tuple(outcomes),
            seconds=self.clock() - start,
            started=started.isoformat(timespec="seconds"),
            data_kind=data.info.kind,
        )
        progress.stage("writing the report")
        files = self.writer.write(result, directory)
        return ComparisonRun(result=result, directory=directory, files=tuple(files))

    @staticmethod
    def _fitted_plan(plan: ModelPlan, info: DatasetInfo) -> ModelPlan:
        """The plan with the input shape and class count of the dataset it will train on."""
        spec = plan.spec.evolve(
            input_shape=tuple(info.sample_shape), num_classes=len(info.vocabulary)
        )
        return ModelPlan(plan.name, spec)

    def _run_model(
        self,
        plan: ModelPlan,
        data: ComparisonData,
        directory: Path,
        seed: int,
        progress: ComparisonProgress,
    ) -> ModelOutcome:
        recorder = _Recorder(progress)
        self.relay.attach(recorder)
        start = self.clock()
        try:
            model = self.repository.create(plan.spec)
            report = model.fit(data.pool, data.labels, epochs=plan.spec.training.max_epochs)
        except KeyboardInterrupt:
            return self._interrupted(plan, recorder, self.clock() - start)
        except SsvaeError as error:
            return ModelOutcome(
                plan=plan,
                status=FAILED,
                message=str(error),
                history=tuple(recorder.records),
                seconds=self.clock() - start,
            )
        finally:
            self.relay.detach(recorder)
        seconds = self.clock() - start
        if report.stop_reason == "interrupted":
            return self._interrupted(plan, recorder, seconds, report.history)
        if report.diverged:  # a blown-up model is no result: neither evaluated nor saved
            return ModelOutcome(
                plan=plan,
                status=FAILED,
                message=report.message,
                history=report.history,
                stop_reason=report.stop_reason,
                seconds=seconds,
            )
        try:
            progress.stage(f"evaluating {plan.name}")
            evaluation = self._evaluate(model, data, seed)
            checkpoint = directory / "models" / plan.name / "checkpoint"
            self.repository.save(model, checkpoint)
        except KeyboardInterrupt:
            return self._interrupted(plan, recorder, seconds, report.history)
        return ModelOutcome(
            plan=plan,
            status=FINISHED,
            message=report.message,
            history=report.history,
            stop_reason=report.stop_reason,
            best_epoch=report.best_epoch,
            seconds=seconds,
            evaluation=evaluation,
            checkpoint=checkpoint,
        )

    @staticmethod
    def _interrupted(
        plan: ModelPlan,
        recorder: _Recorder,
        seconds: float,
        history: Sequence[EpochRecord] | None = None,
    ) -> ModelOutcome:
        records = tuple(history) if history else tuple(recorder.records)
        return ModelOutcome(
            plan=plan,
            status=INTERRUPTED,
            message=f"interrupted (Ctrl-C) after {len(records)} epoch(s)",
            history=records,
            stop_reason="interrupted",
            seconds=seconds,
        )

    def _evaluate(self, model: SsvaeModel, data: ComparisonData, seed: int) -> Evaluation:
        test = data.test
        assert test.y is not None
        known = test.y >= 0
        predictions = model.predict(test.x)
        num_classes = len(data.info.vocabulary)
        predicted = predictions.class_probs.argmax(axis=1)
        accuracy = float(np.mean(predicted[known] == test.y[known]))
        resp = predictions.responsibilities
        tau_accuracy = None
        # With one component the component-label map predicts one class for everything.
        if predictions.tau_probs is not None and resp is not None and resp.shape[1] > 1:
            tau_accuracy = float(
                np.mean(predictions.tau_probs.argmax(axis=1)[known] == test.y[known])
            )
        usage = (
            resp.astype(np.float64).mean(axis=0).astype(np.float32)
            if resp is not None
            else np.ones(1, np.float32)
        )
        rng = np.random.default_rng([seed, 3])
        shown = np.sort(rng.permutation(len(test))[:LATENT_POINTS])
        originals = test.x[showcase_rows(test.y, RECONSTRUCTED)]
        return Evaluation(
            accuracy=accuracy,
            tau_accuracy=tau_accuracy,
            confusion=confusion_matrix(test.y[known], predicted[known], num_classes),
            component_usage=usage,
            latent=predictions.latent_mean[shown],
            latent_classes=test.y[shown],
            originals=originals,
            reconstructions=self.generator.reconstruct(model, originals),
            # Kept for text too (its mixing weights); the report shows no image grid for text.
            generated=self.generator.generate(model, GENERATED_PER_CLASS, seed),
            test_size=int(np.count_nonzero(known)),
            # For text, the messages stand in for images: what each class and component holds.
            examples=self._text_examples(data, predictions.class_probs, resp),
        )

    def _text_examples(
        self, data: ComparisonData, probs: np.ndarray, responsibilities: np.ndarray | None
    ) -> TextExamples | None:
        """For text data, the test messages each class and component holds most surely."""
        catalog = text_catalog(self.source)
        if catalog is None or data.info.kind != "text":
            return None
        test = data.test
        return text_examples(
            test.serials,
            probs,
            responsibilities,
            test.y,
            data.info.vocabulary.names,
            lambda serials: catalog.texts(TEST_SPLIT, serials),
            source=f"the {len(test):,} test messages",
        )
