"""bald and elbo through the query and simulate services, with a fake ModelScorer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fakes import (
    IncrementalFakeModel,
    InMemoryDataSource,
    InMemoryLabelStore,
    InMemoryLearningCurveWriter,
    InMemoryModelRepository,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.pool_scan import model_inputs, pool_scores, predict_pool, score_pool
from ssvae.application.query import PREDICTION_POLICIES, QUERY_POLICIES, QueryService, choose
from ssvae.application.settings import DataSettings
from ssvae.application.simulate import SimulateService
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError, check_prior_serves
from ssvae.domain.comparison import select_labelled
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.ports import DEFAULT_SCORE_SAMPLES, MODEL_SCORES, ModelScorer
from ssvae.domain.simulation import FINISHED, SimulationSettings
from ssvae.domain.spec import preset
from ssvae.domain.stopping import StoppingRule
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard

VOCAB = ClassVocabulary(("ok", "warning", "error"))
NOW = dt.datetime(2025, 1, 2, 3, 4, 5)


def fake_scores(x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    """What the fake scorer returns: bald = sum of the features, negative_elbo = its negative."""
    total = x.reshape(len(x), -1).sum(axis=1).astype(np.float32)
    return {"bald": total, "negative_elbo": -total}


class ScoringFakeModel(IncrementalFakeModel):
    """An IncrementalFakeModel that also implements the ModelScorer port, recording calls."""

    def __init__(self, spec: Any, callbacks: Sequence[Any] = ()) -> None:
        super().__init__(spec, callbacks)
        self.score_calls: list[tuple[int, tuple[str, ...], int, int]] = []  # rows, names, S, seed

    def model_scores(
        self,
        x: npt.NDArray[np.float32],
        names: Sequence[str],
        *,
        samples: int = DEFAULT_SCORE_SAMPLES,
        seed: int = 0,
    ) -> dict[str, npt.NDArray[np.float32]]:
        self.score_calls.append((len(x), tuple(names), samples, seed))
        scores = fake_scores(x)
        return {name: scores[name] for name in names}


class ScoringRepository(InMemoryModelRepository):
    """An InMemoryModelRepository whose created and loaded models can score."""

    def create(self, spec: Any) -> ScoringFakeModel:
        model = ScoringFakeModel(spec, self.callbacks)
        self.created.append(model)
        return model

    def load(self, directory: Path) -> ScoringFakeModel:
        loaded = super().load(directory)
        model = ScoringFakeModel(loaded.spec, self.callbacks)
        model.centroids, model.epochs_trained = loaded.centroids, loaded.epochs_trained
        self.loaded[-1] = model
        return model


def _source(n: int = 60, seed: int = 0) -> InMemoryDataSource:
    """Three separated clusters in 4 dimensions, classes in turn, with a test split."""
    return three_cluster_source(VOCAB, n, 30, seed)


def _pool(n: int = 12) -> Samples:
    return _source(n).load("train")


def _spec() -> Any:
    return preset("mixture_k5", input_shape=(4,), num_classes=3)


def _expected_top(pool: Samples, name: str, k: int, labelled: Sequence[int] = ()) -> list[int]:
    """The k unlabelled serials with the highest fake score `name` (ties: lower serial)."""
    scores = fake_scores(pool.x)[name]
    order = sorted(range(len(pool)), key=lambda row: (-scores[row], int(pool.serials[row])))
    return [int(pool.serials[r]) for r in order if int(pool.serials[r]) not in labelled][:k]


def test_bald_and_elbo_are_query_policies_but_not_the_queues() -> None:
    assert {"bald", "elbo"} <= set(QUERY_POLICIES)
    assert not {"bald", "elbo"} & set(PREDICTION_POLICIES)
    assert set(PREDICTION_POLICIES) | {"bald", "elbo"} == set(QUERY_POLICIES)
    assert QueueBoard.policies == PREDICTION_POLICIES
    assert model_inputs("bald") == ("bald",) and model_inputs("elbo") == ("negative_elbo",)
    assert model_inputs("margin") == () and set(MODEL_SCORES) == {"bald", "negative_elbo"}
    assert isinstance(ScoringFakeModel(_spec()), ModelScorer)
    assert not isinstance(IncrementalFakeModel(_spec()), ModelScorer)


def test_score_pool_works_in_chunks_each_with_its_own_seed() -> None:
    pool = _pool(12)
    model = ScoringFakeModel(_spec())
    scores = score_pool(model, pool, ("bald", "negative_elbo"), chunk=5, samples=3, seed=7)
    assert [call[0] for call in model.score_calls] == [5, 5, 2]
    assert {call[1:3] for call in model.score_calls} == {(("bald", "negative_elbo"), 3)}
    seeds = [call[3] for call in model.score_calls]
    assert len(set(seeds)) == 3  # rows at the same offset of two chunks draw differently
    np.testing.assert_array_equal(scores["bald"], fake_scores(pool.x)["bald"])
    np.testing.assert_array_equal(scores["negative_elbo"], fake_scores(pool.x)["negative_elbo"])
    again = ScoringFakeModel(_spec())
    score_pool(again, pool, ("bald",), chunk=5, samples=3, seed=7)
    assert [call[3] for call in again.score_calls] == seeds  # the same seed, the same streams


def test_pool_scores_computes_only_what_the_policy_needs() -> None:
    pool = _pool(12)
    model = ScoringFakeModel(_spec())
    assert pool_scores(model, pool, "margin") == {}
    assert model.score_calls == []
    assert set(pool_scores(model, pool, "elbo", samples=2)) == {"negative_elbo"}
    assert model.score_calls == [(12, ("negative_elbo",), 2, model.score_calls[0][3])]
    with pytest.raises(AcquisitionError, match=r"cannot compute; choose .* margin"):
        pool_scores(IncrementalFakeModel(_spec()), pool, "bald")


@pytest.mark.parametrize(("policy", "score"), [("bald", "bald"), ("elbo", "negative_elbo")])
def test_choose_ranks_unlabelled_serials_by_the_model_score(policy: str, score: str) -> None:
    pool = _pool(12)
    model = ScoringFakeModel(_spec())
    model.fit(pool, InMemoryLabelStore(VOCAB, pool.serials).load(), 1)
    outputs = predict_pool(model, pool, chunk=5)
    with pytest.raises(AcquisitionError, match=rf"needs the model's {score} scores.*margin"):
        choose(outputs, np.zeros(0, np.int64), policy, 3)
    outputs = outputs.with_scores(pool_scores(model, pool, policy, chunk=5))
    labelled = [int(s) for s in pool.serials[:4]]
    selection = choose(outputs, np.asarray(labelled, np.int64), policy, 3, seed=1)
    assert selection.serials.tolist() == _expected_top(pool, score, 3, labelled)
    rows = np.searchsorted(pool.serials, selection.serials)
    np.testing.assert_allclose(selection.scores, fake_scores(pool.x)[score][rows])


def _workspace(tmp_path: Path) -> tuple[WorkspaceService, Any, InMemoryLabelStore]:
    workspaces = WorkspaceService(
        InMemoryWorkspaceStore(), _source(), tmp_path / "artifacts", now=lambda: NOW
    )
    workspace = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=30)
    return workspaces, workspace, InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))


def test_query_service_serves_elbo_and_bald_from_the_scorer(tmp_path: Path) -> None:
    workspaces, workspace, store = _workspace(tmp_path)
    repository = ScoringRepository()
    service = QueryService(repository, workspaces, predict_chunk=8, score_samples=4)
    pool = workspaces.pool(workspace)

    # elbo needs no labels: a fresh model scores the pool.
    batch = service.next_batch(workspace, store, "elbo", 5, seed=2)
    assert [row.serial for row in batch.rows] == _expected_top(pool, "negative_elbo", 5)
    expected = fake_scores(pool.x)["negative_elbo"][
        np.searchsorted(pool.serials, batch.rows[0].serial)
    ]
    assert batch.rows[0].score == pytest.approx(float(expected))
    fresh = repository.created[0]
    assert [call[0] for call in fresh.score_calls] == [8, 8, 8, 6]
    assert all(call[2] == 4 for call in fresh.score_calls)

    labelled = [int(s) for s in pool.serials[:3]]
    store.apply([LabelChange(s, VOCAB.names[i]) for i, s in enumerate(labelled)], "test")
    TrainService(repository, workspaces).train(workspace, 1, store)
    trained = workspaces.open(workspace.directory)
    batch = service.next_batch(trained, store, "bald", 5)
    assert batch.trained and batch.labels == 3
    assert [row.serial for row in batch.rows] == _expected_top(pool, "bald", 5, labelled)


def test_query_service_refuses_a_model_that_cannot_score(tmp_path: Path) -> None:
    workspaces, workspace, store = _workspace(tmp_path)
    service = QueryService(InMemoryModelRepository(), workspaces)
    with pytest.raises(AcquisitionError, match=r"elbo.*negative_elbo scores, which this model"):
        service.next_batch(workspace, store, "elbo", 3)


def _settings(tmp_path: Path, **changes: Any) -> SimulationSettings:
    values: dict[str, Any] = dict(
        policies=("bald", "elbo"),
        seeds=(0,),
        initial_labels=6,
        rounds=2,
        k=4,
        epochs_per_round=1,
        initial_epochs=1,
        num_samples=60,
        num_test=30,
        preset="mixture_k5",
        stopping=StoppingRule(kappa_threshold=0.0, kappa_window=1),
        out=str(tmp_path / "experiments"),
    )
    values.update(changes)
    return SimulationSettings(**values)


@pytest.mark.parametrize("retrain", ["warm", "scratch"])
def test_simulate_queries_by_the_scores_of_each_rounds_model(tmp_path: Path, retrain: str) -> None:
    repository = ScoringRepository()
    service = SimulateService(
        _source(), repository, InMemoryLearningCurveWriter(), now=lambda: NOW, score_samples=2
    )
    settings = _settings(tmp_path, retrain=retrain)
    result = service.run(settings).result
    assert [(r.policy, r.status) for r in result.runs] == [("bald", FINISHED), ("elbo", FINISHED)]
    pool = service.load_data(settings).pool
    assert pool.y is not None
    initial = [int(pool.serials[row]) for row in select_labelled(pool.y, 6, 0)]
    for run, score in zip(result.runs, ("bald", "negative_elbo"), strict=True):
        labelled = list(initial)
        for round_result in run.rounds[1:]:
            # The fake's scores never change: each round takes the next best four.
            expected = _expected_top(pool, score, 4, labelled)
            assert list(round_result.queried) == expected
            labelled += expected
    # One scoring pass per round and policy, by the model that made that round's outputs:
    # round 1 the seed's checkpoint (loaded even by a scratch run), round 2 the model of
    # round 1 (the same loaded model when warm, the one created in round 1 when scratch).
    scorers = [*repository.loaded, *repository.created]
    assert all(call[2] == 2 for m in scorers for call in m.score_calls)
    if retrain == "warm":
        assert [len(m.score_calls) for m in scorers] == [2, 2, 0]
    else:
        assert [len(m.score_calls) for m in scorers] == [1, 1, 0, 1, 0, 1, 0]


def test_simulate_refuses_bald_under_the_standard_prior_before_any_training(
    tmp_path: Path,
) -> None:
    repository = ScoringRepository()
    writer = InMemoryLearningCurveWriter()
    service = SimulateService(_source(), repository, writer, now=lambda: NOW)
    settings = _settings(tmp_path, policies=("margin", "bald"), preset="standard")
    with pytest.raises(AcquisitionError, match=r"^bald needs a prior with several components"):
        service.run(settings)
    assert repository.created == [] and repository.checkpoints == {}
    assert writer.runs == 0 and writer.results == []
    # The same settings with a mixture prior run both policies.
    result = service.run(_settings(tmp_path, policies=("margin", "bald"))).result
    assert [(r.policy, r.status) for r in result.runs] == [("margin", FINISHED), ("bald", FINISHED)]


@pytest.mark.parametrize("prior", ["standard", "mixture", "vamp"])
@pytest.mark.parametrize("policy", ["bald", "margin", "elbo", "typiclust"])
def test_only_bald_under_the_standard_prior_is_refused(policy: str, prior: str) -> None:
    if policy == "bald" and prior == "standard":
        with pytest.raises(AcquisitionError, match="mixture or vamp"):
            check_prior_serves(policy, prior)
    else:
        assert check_prior_serves(policy, prior) is None


def test_simulate_runs_novelty_with_the_pool_inputs(tmp_path: Path) -> None:
    # Novelty reads the projected input vectors, which the pool pass adds only when a policy
    # of the run needs them; each round queries unlabelled serials only.
    service = SimulateService(
        _source(), ScoringRepository(), InMemoryLearningCurveWriter(), now=lambda: NOW
    )
    settings = _settings(tmp_path, policies=("novelty", "margin"))
    result = service.run(settings).result
    assert [(r.policy, r.status) for r in result.runs] == [
        ("novelty", FINISHED),
        ("margin", FINISHED),
    ]
    novelty_run = result.runs[0]
    queried = [s for round_result in novelty_run.rounds[1:] for s in round_result.queried]
    assert len(queried) == len(set(queried)) == 8
