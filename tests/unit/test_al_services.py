"""Workspace, query, train and simulate services on in-memory fakes."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import (
    InMemoryDataSource,
    InMemoryLabelStore,
    InMemoryLearningCurveWriter,
    InMemoryModelRepository,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.pool_scan import predict_pool
from ssvae.application.query import QUERY_POLICIES, QueryService, choose
from ssvae.application.settings import DataSettings
from ssvae.application.simulate import SimulateService
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.data import Samples
from ssvae.domain.errors import ConcurrentWriteError, DataError, SsvaeError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.simulation import FINISHED, INTERRUPTED, SimulationError, SimulationSettings
from ssvae.domain.stopping import StoppingRule
from ssvae.domain.workspace import Workspace, WorkspaceError, WorkspaceExistsError

VOCAB = ClassVocabulary(("ok", "warning", "error"))
NOW = dt.datetime(2025, 1, 2, 3, 4, 5)


def _source(n: int = 120, test: bool = True, seed: int = 0) -> InMemoryDataSource:
    """Three well separated clusters in 4 dimensions, classes in turn."""
    return three_cluster_source(VOCAB, n, 60, seed, test)


def _workspaces(tmp_path: Path, source: InMemoryDataSource | None = None) -> WorkspaceService:
    return WorkspaceService(
        InMemoryWorkspaceStore(), source or _source(), tmp_path / "artifacts", now=lambda: NOW
    )


def _init(service: WorkspaceService, **kwargs: Any) -> Workspace:
    return service.init("mixture_k5", DataSettings(name="mnist"), **kwargs)


# ---------------------------------------------------------------------------------------------
# Workspaces.


def test_init_fits_the_preset_to_the_data_and_records_the_pool(tmp_path: Path) -> None:
    service = _workspaces(tmp_path)
    workspace = _init(service, num_samples=30, seed=2, overrides={"latent_dim": 3})
    assert workspace.directory == tmp_path / "artifacts" / "models" / workspace.id
    assert workspace.id == "mixture_k5-fake-20250102-030405"
    assert workspace.spec.network.input_shape == (4,) and workspace.spec.network.num_classes == 3
    assert workspace.spec.network.latent_dim == 3 and workspace.spec.network.num_components == 5
    metadata = workspace.metadata
    assert (metadata.pool_size, metadata.pool_seed, metadata.subset) == (30, 2, True)
    assert metadata.dataset["name"] == "mnist" and metadata.rounds == ()
    assert not workspace.has_model
    serials = service.pool_serials(workspace)
    assert len(serials) == 30 and np.all(np.diff(serials) > 0)
    assert np.array_equal(service.pool(workspace).serials, serials)
    assert service.open(workspace.directory) == workspace


def test_generated_ids_of_the_same_second_get_a_suffix(tmp_path: Path) -> None:
    service = _workspaces(tmp_path)
    first, second = _init(service), _init(service)
    assert second.id == f"{first.id}-2"
    assert first.metadata.pool_size == 120 and not first.metadata.subset


def test_a_given_id_must_be_safe_and_new(tmp_path: Path) -> None:
    service = _workspaces(tmp_path)
    _init(service, id="demo")
    with pytest.raises(WorkspaceExistsError, match="demo"):
        _init(service, id="demo")
    with pytest.raises(WorkspaceError, match="1 to 64 letters"):
        _init(service, id="../outside")
    with pytest.raises(WorkspaceError, match="at least 1"):
        _init(service, num_samples=0)


def test_a_changed_dataset_is_noticed(tmp_path: Path) -> None:
    workspace = _init(_workspaces(tmp_path), num_samples=30)
    with pytest.raises(WorkspaceError, match="changed since it was created"):
        _workspaces(tmp_path, _source(n=90)).pool_serials(workspace)
    with pytest.raises(WorkspaceError, match="changed since it was created"):
        _workspaces(tmp_path, _source(n=20)).pool_serials(workspace)


def test_opening_a_missing_workspace_says_so(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        _workspaces(tmp_path).open(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Query.


def _store(service: WorkspaceService, workspace: Workspace) -> InMemoryLabelStore:
    return InMemoryLabelStore(VOCAB, service.pool_serials(workspace))


def test_query_before_training_uses_a_fresh_model(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=60)
    repository = InMemoryModelRepository()
    batch = QueryService(repository, workspaces).next_batch(
        workspace, _store(workspaces, workspace), "kcenter", 5, seed=1
    )
    assert len(repository.created) == 1 and not repository.loaded
    assert not batch.trained and batch.labels == 0 and batch.pool_size == 60
    assert len({row.serial for row in batch.rows}) == 5
    assert set(row.serial for row in batch.rows) <= set(workspaces.pool_serials(workspace))


def test_query_ranks_unlabelled_samples_by_the_policy(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=60)
    store = _store(workspaces, workspace)
    pool = workspaces.pool(workspace)
    assert pool.y is not None
    first = [int(s) for s in pool.serials[:6]]
    store.apply([], "test")
    for serial, cls in zip(first, pool.y[:6], strict=True):
        store.apply([_change(serial, VOCAB.names[int(cls)])], "test")
    repository = InMemoryModelRepository()
    TrainService(repository, workspaces).train(workspace, 1, store)
    trained = workspaces.open(workspace.directory)
    batch = QueryService(repository, workspaces).next_batch(trained, store, "margin", 10)
    assert batch.trained and batch.labels == 6 and len(repository.loaded) == 1
    scores = [row.score for row in batch.rows]
    assert scores == sorted(scores, reverse=True)
    assert not set(first) & {row.serial for row in batch.rows}
    assert {row.predicted for row in batch.rows} <= set(VOCAB.names)
    assert all(1 / 3 - 1e-6 <= row.certainty <= 1 for row in batch.rows)


def test_a_novelty_query_ranks_by_novelty_and_needs_labels_first(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=60)
    store = _store(workspaces, workspace)
    service = QueryService(InMemoryModelRepository(), workspaces)
    with pytest.raises(AcquisitionError, match=r"at least 2 labelled samples.*label some"):
        service.next_batch(workspace, store, "novelty", 5)
    pool = workspaces.pool(workspace)
    assert pool.y is not None
    for serial, cls in zip(pool.serials[:6], pool.y[:6], strict=True):
        store.apply([_change(int(serial), VOCAB.names[int(cls)])], "test")
    batch = service.next_batch(workspace, store, "novelty", 10)
    scores = [row.score for row in batch.rows]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)
    assert not {int(s) for s in pool.serials[:6]} & {row.serial for row in batch.rows}


def _change(serial: int, name: str | None) -> Any:
    from ssvae.domain.labels import LabelChange

    return LabelChange(serial, name)


def test_policies_the_model_cannot_serve_are_refused_with_the_choices(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=30)
    service = QueryService(InMemoryModelRepository(), workspaces)
    store = _store(workspaces, workspace)
    with pytest.raises(AcquisitionError, match="not available; choose one of random"):
        service.next_batch(workspace, store, "magic", 3)
    for policy in ("tau_ood", "bald"):
        with pytest.raises(AcquisitionError, match="component-to-label map"):
            service.next_batch(workspace, store, policy, 3)
    with pytest.raises(AcquisitionError, match="at least 1"):
        service.next_batch(workspace, store, "margin", 0)
    assert {"bald", "elbo", "diverse_margin"} <= set(QUERY_POLICIES)


def test_choose_never_returns_labelled_serials_and_stops_when_the_pool_runs_out() -> None:
    source = _source(n=12)
    pool = source.load("train")
    repository = InMemoryModelRepository()
    model = repository.create(_workspace_spec())
    outputs = predict_pool(model, pool, chunk=5)
    assert outputs.probs.shape == (12, 3) and np.array_equal(outputs.serials, pool.serials)
    labelled = pool.serials[:9]
    for policy in ("margin", "random", "kcenter", "diverse_entropy", "cold_start"):
        chosen = choose(outputs, labelled, policy, 5, seed=0).serials
        assert sorted(chosen.tolist()) == [9, 10, 11]


def _workspace_spec() -> Any:
    from ssvae.domain.spec import preset

    return preset("mixture_k5", input_shape=(4,), num_classes=3)


# ---------------------------------------------------------------------------------------------
# Training.


def test_rounds_create_then_continue_incrementally_then_resume_from_the_checkpoint(
    tmp_path: Path,
) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=60)
    store = _store(workspaces, workspace)
    pool = workspaces.pool(workspace)
    store.apply([_change(int(pool.serials[0]), "ok")], "test")
    repository = InMemoryModelRepository()
    service = TrainService(repository, workspaces)
    rule = StoppingRule(kappa_threshold=-1.0, kappa_window=1)

    first = service.train(workspace, 2, store, rule=rule)
    assert not first.incremental and len(repository.created) == 1
    assert repository.created[0].fit_calls == [(60, 1, 2)]
    assert first.round.index == 1 and first.round.labels_used == 1
    assert first.round.predictions is not None and len(first.round.predictions) == 60
    assert first.round.tau is not None and np.asarray(first.round.tau).shape == (5, 3)
    assert not first.stopping.stop  # kappa needs two rounds

    store.apply([_change(int(pool.serials[1]), "error")], "test")
    second = service.train(first.workspace, 3, store, rule=rule)
    assert second.incremental and repository.created[0].fit_more_calls == [(2, 3)]
    assert second.stopping.stop and second.stopping.kappa is not None
    assert len(second.workspace.metadata.rounds) == 2

    # Another process (a fresh service) resumes from the checkpoint with fit.
    other = TrainService(repository, workspaces)
    third = other.train(workspaces.open(workspace.directory), 1, store)
    assert not third.incremental and repository.loaded[-1].fit_calls == [(60, 2, 1)]
    # The first service's model is stale now: it loads the checkpoint instead of fit_more.
    fourth = service.train(workspaces.open(workspace.directory), 1, store)
    assert not fourth.incremental and len(repository.loaded) == 2
    assert repository.created[0].fit_more_calls == [(2, 3)]

    history = workspaces.store.history[workspace.directory]  # type: ignore[attr-defined]
    assert [row["round"] for row in history] == [1, 2, 3, 4]
    assert [row["total_epochs"] for row in history] == [2, 5, 6, 7]
    assert history[1]["labels"] == 2 and history[1]["stop_reason"] == "max_epochs"
    assert history[1]["kappa"] is not None
    assert len(repository.checkpoints) == 1


def test_a_fresh_round_replaces_the_saved_model_with_a_new_one(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=40)
    store = _store(workspaces, workspace)
    store.apply([_change(int(workspaces.pool(workspace).serials[0]), "ok")], "test")
    repository = InMemoryModelRepository()
    service = TrainService(repository, workspaces)
    first = service.train(workspace, 2, store)
    second = service.train(first.workspace, 3, store, fresh=True)
    # A second new model, trained from the start: no fit_more, nothing loaded.
    assert not second.incremental and len(repository.created) == 2
    assert repository.created[0].fit_more_calls == [] and repository.loaded == []
    assert repository.created[1].fit_calls == [(40, 1, 3)]
    assert second.round.index == 2 and len(second.workspace.metadata.rounds) == 2


class _RecordingLock:
    """A TrainingLock that records when it is held, and can refuse like a busy one."""

    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.events: list[str] = []

    @contextlib.contextmanager
    def hold(self, directory: Path) -> Iterator[None]:
        if self.busy:
            raise ConcurrentWriteError(f"another process is training the model in {directory}")
        self.events.append("acquired")
        yield
        self.events.append("released")


def test_a_round_trains_under_the_workspace_lock(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=30)
    store = _store(workspaces, workspace)
    repository = InMemoryModelRepository()
    lock = _RecordingLock()
    TrainService(repository, workspaces, lock=lock).train(workspace, 1, store)
    assert lock.events == ["acquired", "released"] and len(repository.created) == 1
    busy = TrainService(InMemoryModelRepository(), workspaces, lock=_RecordingLock(busy=True))
    with pytest.raises(ConcurrentWriteError, match="another process is training"):
        busy.train(workspaces.open(workspace.directory), 1, store)
    assert len(workspaces.open(workspace.directory).metadata.rounds) == 1  # nothing recorded


def test_training_refuses_zero_epochs(tmp_path: Path) -> None:
    workspaces = _workspaces(tmp_path)
    workspace = _init(workspaces, num_samples=30)
    service = TrainService(InMemoryModelRepository(), workspaces)
    with pytest.raises(SsvaeError, match="at least 1 epoch"):
        service.train(workspace, 0, _store(workspaces, workspace))


# ---------------------------------------------------------------------------------------------
# Simulation.


def _simulate(
    tmp_path: Path, repository: InMemoryModelRepository | None = None, source: Any = None
) -> tuple[SimulateService, InMemoryModelRepository, InMemoryLearningCurveWriter]:
    repository = repository or InMemoryModelRepository()
    writer = InMemoryLearningCurveWriter()
    service = SimulateService(source or _source(), repository, writer, now=lambda: NOW)
    return service, repository, writer


def _settings(tmp_path: Path, **changes: Any) -> SimulationSettings:
    values: dict[str, Any] = dict(
        policies=("margin", "random"),
        seeds=(0, 1),
        initial_labels=6,
        rounds=3,
        k=4,
        epochs_per_round=2,
        initial_epochs=1,
        num_samples=90,
        num_test=30,
        preset="mixture_k5",
        stopping=StoppingRule(kappa_threshold=0.0, kappa_window=1),
        out=str(tmp_path / "experiments"),
    )
    values.update(changes)
    return SimulationSettings(**values)


def test_every_policy_and_seed_runs_from_the_same_start(tmp_path: Path) -> None:
    service, repository, writer = _simulate(tmp_path)
    run = service.run(_settings(tmp_path))
    result = run.result
    assert writer.results == [result] and not run.interrupted
    assert [(r.policy, r.seed, r.status) for r in result.runs] == [
        ("margin", 0, FINISHED),
        ("random", 0, FINISHED),
        ("margin", 1, FINISHED),
        ("random", 1, FINISHED),
    ]
    assert (result.pool_size, result.test_size) == (90, 30)
    assert result.spec.training.validation_split == 0.0 and result.spec.training.seed == 0
    # One model trained per seed, loaded once per policy; warm start after the first round.
    assert len(repository.created) == 2 and len(repository.loaded) == 4
    assert [m.fit_calls[0][1:] for m in repository.created] == [(6, 1), (6, 1)]
    for model in repository.loaded:
        assert [c[1:] for c in model.fit_calls] == [(10, 2)]
        assert model.fit_more_calls == [(14, 2), (18, 2)]
    pool = service.load_data(_settings(tmp_path)).pool
    for run_result in result.runs:
        assert [r.labels for r in run_result.rounds] == [6, 10, 14, 18]
        queried = [s for r in run_result.rounds for s in r.queried]
        assert len(set(queried)) == 12 and set(queried) <= set(pool.serials.tolist())
        assert run_result.rounds[1].stop_reasons  # kappa >= 0 after two rounds
    margin0, random0 = result.runs[0], result.runs[1]
    assert margin0.rounds[0] == random0.rounds[0]
    assert margin0.rounds[1].queried != random0.rounds[1].queried


def test_retrain_scratch_trains_a_fresh_model_on_all_labels_every_round(tmp_path: Path) -> None:
    service, repository, writer = _simulate(tmp_path)
    result = service.run(_settings(tmp_path, seeds=(0,), retrain="scratch")).result
    # One model for the seed's start, then one new model per round and policy (2 x 3).
    assert len(repository.created) == 1 + 2 * 3
    fresh = repository.created[1:]
    assert [m.fit_calls for m in fresh[:3]] == [[(90, 10, 2)], [(90, 14, 2)], [(90, 18, 2)]]
    assert all(m.fit_more_calls == [] for m in fresh)
    assert repository.loaded == []  # the seed's checkpoint is not read for scratch rounds
    assert all(m.spec.training.seed == 0 for m in fresh)
    # Round 1 still starts from the seed's checkpoint, so both modes share round 0.
    assert [r.labels for r in result.runs[0].rounds] == [6, 10, 14, 18]
    assert writer.results[0].settings.retrain == "scratch"


def test_an_unknown_retrain_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match=r"give warm .* or scratch"):
        _settings(tmp_path, retrain="cold")


def test_a_cold_start_without_initial_training_works(tmp_path: Path) -> None:
    service, repository, _ = _simulate(tmp_path)
    settings = _settings(
        tmp_path, policies=("cold_start",), seeds=(3,), initial_labels=0, initial_epochs=0
    )
    result = service.run(settings).result
    assert [r.labels for r in result.runs[0].rounds] == [0, 4, 8, 12]
    assert repository.created[0].fit_calls == []


class _InterruptingRepository(InMemoryModelRepository):
    """Ctrl-C in the second round of the second run."""

    def load(self, directory: Path) -> Any:
        model = super().load(directory)
        if len(self.loaded) == 2:

            def interrupted(epochs: int, labels: Any) -> Any:
                raise KeyboardInterrupt

            model.fit_more = interrupted  # type: ignore[method-assign]
        return model


def test_ctrl_c_keeps_finished_runs_and_rounds_and_still_writes(tmp_path: Path) -> None:
    service, _, writer = _simulate(tmp_path, _InterruptingRepository())
    run = service.run(_settings(tmp_path))
    assert run.interrupted and writer.results == [run.result]
    statuses = [(r.policy, r.seed, r.status, len(r.rounds)) for r in run.result.runs]
    assert statuses == [("margin", 0, FINISHED, 4), ("random", 0, INTERRUPTED, 2)]
    assert "after 1 round(s)" in run.result.runs[1].message


def test_bad_experiments_fail_before_any_folder_is_made(tmp_path: Path) -> None:
    service, _, writer = _simulate(tmp_path)
    with pytest.raises(AcquisitionError, match="magic"):
        service.run(_settings(tmp_path, policies=("margin", "magic")))
    with pytest.raises(SimulationError, match=r"6 initial labels \+ 30 rounds x 4 = 126"):
        service.run(_settings(tmp_path, rounds=30))
    with pytest.raises(DataError, match="no 'test' split"):
        _simulate(tmp_path, source=_source(test=False))[0].run(_settings(tmp_path))
    assert writer.runs == 0


def test_the_pool_and_test_subsets_are_stratified_and_seeded(tmp_path: Path) -> None:
    service, _, _ = _simulate(tmp_path)
    data = service.load_data(_settings(tmp_path))
    again = service.load_data(_settings(tmp_path))
    assert data.pool.y is not None and data.test.y is not None
    assert np.bincount(data.pool.y).tolist() == [30, 30, 30]
    assert np.bincount(data.test.y).tolist() == [10, 10, 10]
    assert np.array_equal(data.pool.serials, again.pool.serials)
    other = service.load_data(_settings(tmp_path, data_seed=5))
    assert not np.array_equal(data.pool.serials, other.pool.serials)
    assert isinstance(data.pool, Samples)


def test_samples_without_a_true_class_never_enter_the_pool(tmp_path: Path) -> None:
    source = _source()
    x, y = source.load("train").x, source.load("train").y
    assert y is not None
    y = y.copy()
    y[::4] = -1
    test = source.load("test")
    partial = InMemoryDataSource(VOCAB, x, y, test.x, test.y)
    service, _, _ = _simulate(tmp_path, source=partial)
    data = service.load_data(_settings(tmp_path, num_samples=0))
    assert data.pool.y is not None and len(data.pool) == 90 and np.all(data.pool.y >= 0)
    result = service.run(_settings(tmp_path, num_samples=0, seeds=(0,))).result
    assert all(run.status == "finished" for run in result.runs)
