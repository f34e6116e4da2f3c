"""Comparison domain: seeded subset and label selection, metrics, the conclusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.comparison import (
    FINISHED,
    INTERRUPTED,
    NOT_RUN,
    ComparisonResult,
    Evaluation,
    Experiment,
    ExperimentError,
    ModelOutcome,
    ModelPlan,
    TrainingRelay,
    check_model_name,
    conclusion,
    confusion_matrix,
    per_class_accuracy,
    select_labelled,
    select_subset,
    usage_entropy,
)
from ssvae.domain.model import EpochRecord, TrainingReport
from ssvae.domain.spec import preset

class_arrays = st.lists(st.integers(0, 4), min_size=5, max_size=120).map(
    lambda v: np.array(v, np.int64)
)


@given(classes=class_arrays, data=st.data(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_stratified_subset_keeps_each_class_share(
    classes: np.ndarray, data: st.DataObject, seed: int
) -> None:
    count = data.draw(st.integers(1, len(classes)))
    rows = select_subset(classes, count, "stratified", seed)
    assert len(rows) == count and len(np.unique(rows)) == count
    assert np.all(np.diff(rows) > 0)
    for c in np.unique(classes):
        share = np.count_nonzero(classes == c) * count / len(classes)
        taken = np.count_nonzero(classes[rows] == c)
        assert math.floor(share) <= taken <= math.ceil(share)
    np.testing.assert_array_equal(rows, select_subset(classes, count, "stratified", seed))


@given(classes=class_arrays, data=st.data(), seed=st.integers(0, 1000))
@settings(max_examples=60, deadline=None)
def test_labelled_selection_is_balanced(
    classes: np.ndarray, data: st.DataObject, seed: int
) -> None:
    count = data.draw(st.integers(1, len(classes)))
    rows = select_labelled(classes, count, seed)
    assert len(rows) == count and len(np.unique(rows)) == count
    per_class = {int(c): int(np.count_nonzero(classes[rows] == c)) for c in np.unique(classes)}
    available = {int(c): int(np.count_nonzero(classes == c)) for c in np.unique(classes)}
    # Balanced: a class below the largest count has given all it has.
    top = max(per_class.values())
    for c, n in per_class.items():
        assert n >= top - 1 or n == available[c]
    np.testing.assert_array_equal(rows, select_labelled(classes, count, seed))


def test_fifty_labels_over_ten_classes_are_five_each() -> None:
    classes = np.repeat(np.arange(10), 100)
    rows = select_labelled(classes, 50, seed=3)
    np.testing.assert_array_equal(np.bincount(classes[rows]), [5] * 10)


def test_different_seeds_choose_different_samples() -> None:
    classes = np.repeat(np.arange(10), 100)
    assert not np.array_equal(
        select_subset(classes, 100, "stratified", 0), select_subset(classes, 100, "stratified", 1)
    )


def test_random_subset_never_takes_unknown_classes() -> None:
    classes = np.array([-1, 0, 1, -1, 2, 0], np.int64)
    rows = select_subset(classes, 4, "random", 0)
    assert set(rows.tolist()) == {1, 2, 4, 5}


def test_asking_for_more_samples_than_exist_says_how_many_there_are() -> None:
    with pytest.raises(ExperimentError, match=r"more than the 3 training samples.*at most 3"):
        select_subset(np.array([0, 1, 1]), 4, "stratified", 0)
    with pytest.raises(ExperimentError, match="num_labeled = 5"):
        select_labelled(np.array([0, 1, 1]), 5, 0)


def test_confusion_matrix_and_per_class_accuracy() -> None:
    true = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    counts = confusion_matrix(true, predicted, 4)
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert per_class_accuracy(counts) == (0.5, 2 / 3, 1.0, None)


def test_usage_entropy_closed_forms() -> None:
    assert usage_entropy(np.array([1.0], np.float32)) == 0.0
    assert usage_entropy(np.full(8, 1 / 8, np.float32)) == pytest.approx(math.log(8), rel=1e-6)
    assert usage_entropy(np.array([0.5, 0.5, 0.0], np.float32)) == pytest.approx(math.log(2))


def test_experiment_rejects_more_labels_than_samples() -> None:
    plans = (ModelPlan("standard", preset("standard")),)
    with pytest.raises(ExperimentError, match="num_labeled must be at most num_samples"):
        Experiment(models=plans, num_samples=10, num_labeled=11)


def test_experiment_rejects_repeated_model_names_and_bad_values() -> None:
    plan = ModelPlan("standard", preset("standard"))
    with pytest.raises(ExperimentError, match="standard appear more than once"):
        Experiment(models=(plan, plan))
    with pytest.raises(ExperimentError, match="'sampling' = 'best'"):
        Experiment(models=(plan,), sampling="best")
    with pytest.raises(ExperimentError, match="'seed' = -1"):
        Experiment(models=(plan,), seed=-1)
    with pytest.raises(ExperimentError, match="at least one model"):
        Experiment(models=())


@pytest.mark.parametrize("name", ["", "a b", "../up", "-x", "x" * 81, 3])
def test_model_names_must_be_safe_folder_names(name: object) -> None:
    with pytest.raises(ExperimentError, match="model name"):
        check_model_name(name)


def test_relay_forwards_only_to_attached_listeners() -> None:
    class Listener:
        def __init__(self) -> None:
            self.events: list[str] = []

        def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
            self.events.append(f"step {step}")

        def on_epoch_end(self, record: EpochRecord) -> None:
            self.events.append(f"epoch {record.epoch}")

        def on_train_end(self, report: TrainingReport) -> None:
            self.events.append("end")

    relay, listener = TrainingRelay(), Listener()
    relay.on_step(0, 1, 2, 1.0)
    relay.attach(listener)
    relay.on_step(0, 2, 2, 1.0)
    relay.on_epoch_end(EpochRecord(1, {}))
    relay.detach(listener)
    relay.on_train_end(TrainingReport(1, (), "max_epochs", 1, 0.0))
    assert listener.events == ["step 2", "epoch 1"]


# ---------------------------------------------------------------------------------------------
# The conclusion.


def _evaluation(accuracy: float, tau: float | None, usage: list[float]) -> Evaluation:
    confusion = np.diag([8, 6]).astype(np.int64) + np.array([[0, 2], [4, 0]])
    return Evaluation(
        accuracy=accuracy,
        tau_accuracy=tau,
        confusion=confusion,
        component_usage=np.array(usage, np.float32),
        latent=np.zeros((2, 2), np.float32),
        latent_classes=np.zeros(2, np.int64),
        originals=np.zeros((1, 2, 2, 1), np.float32),
        reconstructions=None,
        generated=None,
        test_size=20,
    )


def _outcome(name: str, status: str, evaluation: Evaluation | None, seconds: float) -> ModelOutcome:
    spec = preset("standard") if name == "standard" else preset("mixture_k10")
    history = tuple(EpochRecord(e, {"val_elbo": -100.0 - e}) for e in (1, 2))
    return ModelOutcome(
        plan=ModelPlan(name, spec),
        status=status,
        history=history if status != NOT_RUN else (),
        stop_reason="max_epochs",
        best_epoch=2,
        seconds=seconds,
        evaluation=evaluation,
    )


def _result(*outcomes: ModelOutcome) -> ComparisonResult:
    return ComparisonResult(
        experiment=Experiment(models=tuple(o.plan for o in outcomes)),
        dataset="fake",
        class_names=("a", "b"),
        input_shape=(2, 2, 1),
        train_size=100,
        labelled_per_class=(5, 5),
        test_size=20,
        outcomes=outcomes,
        seconds=3.0,
        started="2025-01-01T00:00:00",
    )


def test_conclusion_names_the_best_model_with_its_numbers() -> None:
    result = _result(
        _outcome("standard", FINISHED, _evaluation(0.7, None, [1.0]), 10.0),
        _outcome("mixture_k10", FINISHED, _evaluation(0.8, 0.85, [0.5, 0.5]), 20.0),
    )
    text = " ".join(conclusion(result))
    assert "mixture_k10 has the highest test accuracy: 80.0%" in text
    assert "85.0% with the component-label map" in text
    assert "chance: 50.0%" in text
    assert "standard reaches 70.0% at best, 15.0 points below mixture_k10" in text
    assert "weakest class of mixture_k10 is 'b' at 60.0%" in text
    assert "spreads the test samples over 2.0 of its 2 components" in text
    assert "Fastest to train: standard, 10 s for 2 epoch(s)" in text


def test_conclusion_reports_interrupted_and_skipped_models() -> None:
    result = _result(
        _outcome("standard", FINISHED, _evaluation(0.7, None, [1.0]), 10.0),
        _outcome("mixture_k10", INTERRUPTED, None, 5.0),
        _outcome("vamp", NOT_RUN, None, 0.0),
    )
    text = conclusion(result)
    assert result.interrupted
    assert "standard has a test accuracy: 70.0%" in text[0]
    assert any("mixture_k10 was interrupted after 2 epoch(s)" in line for line in text)
    assert "Not run after the interruption: vamp." in text


def test_conclusion_without_finished_models() -> None:
    result = _result(_outcome("standard", INTERRUPTED, None, 1.0))
    assert conclusion(result)[0] == "No model finished, so there is nothing to compare."


def test_conclusion_calls_equal_accuracies_a_tie() -> None:
    result = _result(
        _outcome("standard", FINISHED, _evaluation(0.8, None, [1.0]), 10.0),
        _outcome("mixture_k10", FINISHED, _evaluation(0.8, None, [0.5, 0.5]), 20.0),
    )
    assert "mixture_k10 ties with standard at 80.0%." in conclusion(result)
