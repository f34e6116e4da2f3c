"""CompareService on in-memory fakes: data selection, options reaching models, Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import (
    FakeModelGenerator,
    FakeModelRepository,
    InMemoryDataSource,
    InMemoryReportWriter,
)

from ssvae.application.compare import HELD_OUT_FRACTION, CompareService, showcase_rows
from ssvae.domain.comparison import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    NOT_RUN,
    Experiment,
    ModelOutcome,
    ModelPlan,
    TrainingRelay,
)
from ssvae.domain.errors import DataError, SsvaeError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.model import EpochRecord
from ssvae.domain.spec import preset

VOCAB = ClassVocabulary(("a", "b", "c"))


def blocks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes: a bright band in a different third of a 6x6 image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % 3
    x = rng.random((n, 6, 6, 1), dtype=np.float32) * 0.3
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2, :, 0] += 0.7
    return x, y


def make_service(
    tmp_path: Path, **repository_options: dict[int, int]
) -> tuple[CompareService, FakeModelRepository, InMemoryReportWriter]:
    train_x, train_y = blocks(90, 0)
    test_x, test_y = blocks(30, 1)
    relay = TrainingRelay()
    repository = FakeModelRepository([relay], **repository_options)
    writer = InMemoryReportWriter()
    service = CompareService(
        source=InMemoryDataSource(VOCAB, train_x, train_y, test_x, test_y),
        repository=repository,
        generator=FakeModelGenerator(),
        writer=writer,
        relay=relay,
    )
    return service, repository, writer


def experiment(tmp_path: Path, *names: str, epochs: int = 3, **settings: object) -> Experiment:
    plans = tuple(
        ModelPlan(n, preset(n, max_epochs=epochs, seed=5)) for n in names or ("standard",)
    )
    values: dict[str, object] = {"num_samples": 60, "num_labeled": 9, "out": str(tmp_path)}
    values.update(settings)
    return Experiment(models=plans, **values)  # type: ignore[arg-type]


class Events:
    """A ComparisonProgress that records what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def model_started(self, index: int, plan: ModelPlan) -> None:
        self.seen.append(f"start {plan.name}")

    def step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        self.seen.append("step")

    def epoch_finished(self, record: EpochRecord) -> None:
        self.seen.append(f"epoch {record.epoch}")

    def model_finished(self, outcome: ModelOutcome) -> None:
        self.seen.append(f"end {outcome.name} {outcome.status}")

    def stage(self, text: str) -> None:
        self.seen.append(text)


def test_every_setting_reaches_the_trained_models(tmp_path: Path) -> None:
    service, repository, writer = make_service(tmp_path)
    run = service.run(experiment(tmp_path, "standard", "mixture_k10", epochs=3))
    assert [m.fit_calls for m in repository.created] == [[(60, 9, 3)], [(60, 9, 3)]]
    assert [m.epochs_trained for m in repository.created] == [3, 3]
    for model in repository.created:
        assert model.spec.training.max_epochs == 3 and model.spec.training.seed == 5
        # The dataset fixes the input shape and class count.
        assert model.spec.network.input_shape == (6, 6, 1) and model.spec.network.num_classes == 3
    result = writer.results[0]
    assert [o.status for o in result.outcomes] == [FINISHED, FINISHED]
    assert [o.epochs_run for o in result.outcomes] == [3, 3]
    assert result.train_size == 60 and result.test_size == 30
    assert result.labelled_per_class == (3, 3, 3)
    assert run.directory.parent == tmp_path and run.directory.is_dir()
    assert repository.saved == [
        run.directory / "models" / "standard" / "checkpoint",
        run.directory / "models" / "mixture_k10" / "checkpoint",
    ]


def test_results_hold_the_measured_numbers(tmp_path: Path) -> None:
    service, _, writer = make_service(tmp_path)
    service.run(experiment(tmp_path, "standard", "mixture_k10"))
    standard, mixture = writer.results[0].outcomes
    assert standard.evaluation is not None and mixture.evaluation is not None
    # Nearest labelled centroid separates the bright bands perfectly.
    assert standard.evaluation.accuracy == 1.0
    np.testing.assert_array_equal(standard.evaluation.confusion, np.diag([10, 10, 10]))
    assert standard.evaluation.tau_accuracy is None
    assert mixture.evaluation.tau_accuracy == 1.0
    np.testing.assert_allclose(standard.evaluation.component_usage, [1.0])
    assert mixture.evaluation.component_usage.shape == (10,)
    assert mixture.evaluation.mixing_weights is not None
    assert mixture.validation_elbo == pytest.approx(-11 / 3)
    assert standard.evaluation.latent.shape == (30, 16)
    assert standard.evaluation.reconstructions is not None
    np.testing.assert_allclose(
        standard.evaluation.reconstructions, 1.0 - standard.evaluation.originals
    )


def test_the_same_experiment_gives_the_same_numbers(tmp_path: Path) -> None:
    results = []
    for _ in range(2):
        service, _, _ = make_service(tmp_path)
        data = service.load_data(experiment(tmp_path, num_samples=30, num_labeled=6))
        results.append((data.pool.serials, data.labels.serials(), data.test.serials))
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)


def test_num_test_takes_a_stratified_test_subset(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    data = service.load_data(experiment(tmp_path, num_test=12))
    assert data.test.y is not None
    np.testing.assert_array_equal(np.bincount(data.test.y), [4, 4, 4])


def test_ctrl_c_keeps_finished_models_and_marks_the_interrupted_one(tmp_path: Path) -> None:
    service, repository, writer = make_service(tmp_path, interrupt_at={1: 2})
    events = Events()
    run = service.run(experiment(tmp_path, "standard", "mixture_k10", "vamp_k10", epochs=3), events)
    result = writer.results[0]
    assert run.result is result
    assert [o.status for o in result.outcomes] == [FINISHED, INTERRUPTED, NOT_RUN]
    assert result.interrupted
    finished, interrupted, skipped = result.outcomes
    assert finished.evaluation is not None and finished.epochs_run == 3
    assert interrupted.evaluation is None and interrupted.epochs_run == 1
    assert "interrupted (Ctrl-C) after 1 epoch(s)" in interrupted.message
    assert skipped.epochs_run == 0
    assert len(repository.created) == 2  # the third model never starts
    assert "end mixture_k10 interrupted" in events.seen
    assert events.seen[-1] == "writing the report"


def test_early_stopping_is_reported(tmp_path: Path) -> None:
    service, _, writer = make_service(tmp_path, stop_after={0: 2})
    service.run(experiment(tmp_path, epochs=5))
    outcome = writer.results[0].outcomes[0]
    assert outcome.epochs_run == 2 and outcome.stop_reason == "early_stopping"


def test_progress_sees_every_step_and_epoch_of_every_model(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    events = Events()
    service.run(experiment(tmp_path, "standard", "mixture_k5", epochs=2), events)
    trained = [e for e in events.seen if e.startswith(("start", "epoch", "end"))]
    assert trained == [
        "start standard",
        "epoch 1",
        "epoch 2",
        "end standard finished",
        "start mixture_k5",
        "epoch 1",
        "epoch 2",
        "end mixture_k5 finished",
    ]
    assert events.seen.count("step") == 2 * 2 * 3


def test_a_model_that_fails_is_marked_and_the_others_still_run(tmp_path: Path) -> None:
    service, repository, writer = make_service(tmp_path)
    original = repository.create

    def create(spec: object) -> object:
        if len(repository.created) == 0:
            repository.created.append(None)  # type: ignore[arg-type]
            raise SsvaeError("the model cannot be built: out of memory")
        return original(spec)  # type: ignore[arg-type]

    repository.create = create  # type: ignore[method-assign]
    service.run(experiment(tmp_path, "standard", "mixture_k10"))
    first, second = writer.results[0].outcomes
    assert first.status == FAILED and "out of memory" in first.message
    assert second.status == FINISHED


def test_without_a_test_split_part_of_the_labelled_samples_is_held_out(tmp_path: Path) -> None:
    train_x, train_y = blocks(30, 0)
    relay = TrainingRelay()
    no_test = CompareService(
        InMemoryDataSource(VOCAB, train_x, train_y),
        FakeModelRepository([relay]),
        FakeModelGenerator(),
        InMemoryReportWriter(),
        relay,
    )
    data = no_test.load_data(experiment(tmp_path, num_samples=20, num_labeled=3))
    assert len(data.test) == round(HELD_OUT_FRACTION * 30)
    assert not set(data.test.serials.tolist()) & set(data.pool.serials.tolist())
    assert data.test.y is not None and len(set(data.test.y.tolist())) == len(VOCAB)  # stratified
    again = no_test.load_data(experiment(tmp_path, num_samples=20, num_labeled=3))
    np.testing.assert_array_equal(again.test.serials, data.test.serials)  # seeded
    with pytest.raises(SsvaeError, match="num_samples = 25 is more than the 24"):
        no_test.load_data(experiment(tmp_path, num_samples=25, num_labeled=3))
    few = CompareService(
        InMemoryDataSource(VOCAB, train_x[:2], train_y[:2]),
        FakeModelRepository([relay]),
        FakeModelGenerator(),
        InMemoryReportWriter(),
        relay,
    )
    with pytest.raises(DataError, match="only 2 samples have a known class"):
        few.load_data(experiment(tmp_path, num_samples=2, num_labeled=1))


def test_datasets_without_true_classes_are_refused(tmp_path: Path) -> None:
    train_x, _ = blocks(30, 0)
    relay = TrainingRelay()
    unlabelled = CompareService(
        InMemoryDataSource(VOCAB, train_x, None, train_x, None),
        FakeModelRepository([relay]),
        FakeModelGenerator(),
        InMemoryReportWriter(),
        relay,
    )
    with pytest.raises(DataError, match="no true classes"):
        unlabelled.run(experiment(tmp_path, num_samples=20, num_labeled=3))


def test_asking_for_more_samples_than_the_dataset_has(tmp_path: Path) -> None:
    service, _, writer = make_service(tmp_path)
    with pytest.raises(SsvaeError, match="num_samples = 500 is more than the 90"):
        service.run(experiment(tmp_path, num_samples=500))
    assert writer.runs == 0  # nothing created before the data is known to fit


def test_showcase_rows_take_one_sample_of_each_class_first() -> None:
    classes = np.array([2, 2, 0, 1, 0, 1], np.int64)
    np.testing.assert_array_equal(showcase_rows(classes, 4), [2, 3, 0, 1])
    np.testing.assert_array_equal(showcase_rows(classes, 2), [2, 3])


def test_the_fitted_num_samples_is_what_the_train_split_has_and_loads_only_a_small_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _, _ = make_service(tmp_path)  # 90 train samples, each with a class
    assert service.fitted_num_samples(experiment(tmp_path, num_samples=5000)) == 90
    assert service.fitted_num_samples(experiment(tmp_path, num_samples=60)) == 60
    loaded: list[str] = []
    real_load = service.source.load
    monkeypatch.setattr(
        service.source, "load", lambda split: loaded.append(split) or real_load(split)
    )
    assert service.fitted_num_samples(experiment(tmp_path, num_samples=40)) == 40
    assert loaded == []  # 90 >= 2 x 40: ample without counting
