"""A diverged training run is a failure everywhere a model trains: train, compare, simulate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from fakes import (
    FakeModelGenerator,
    FakeModelRepository,
    InMemoryDataSource,
    InMemoryLabelStore,
    InMemoryLearningCurveWriter,
    InMemoryModelRepository,
    InMemoryReportWriter,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.compare import CompareService
from ssvae.application.settings import DataSettings
from ssvae.application.simulate import SimulateService
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.comparison import FAILED, FINISHED, Experiment, ModelPlan, TrainingRelay
from ssvae.domain.errors import TrainingDivergedError
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.model import DIVERGED_STOPS, TrainingReport
from ssvae.domain.simulation import SimulationSettings
from ssvae.domain.spec import preset
from ssvae.domain.stopping import StoppingRule
from ssvae.entrypoints.dashboard.viewmodels.training import FAILED as FAILED_JOB
from ssvae.entrypoints.dashboard.viewmodels.training import TrainingJob

VOCAB = ClassVocabulary(("ok", "warning", "error"))
BLOWN_UP = "training diverged in epoch 2 near step 3: the loss reached 2e+11"


def diverging(model: Any, when: dict[str, bool]) -> Any:
    """`model`, whose fit and fit_more report a blow-up while when["now"] is true."""

    def wrap(method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> TrainingReport:
            report: TrainingReport = method(*args, **kwargs)
            if not when["now"]:
                return report
            return attrs.evolve(
                report, stop_reason="diverged", message=BLOWN_UP, history=report.history[:1]
            )

        return call

    model.fit, model.fit_more = wrap(model.fit), wrap(model.fit_more)
    return model


class DivergingRepository(InMemoryModelRepository):
    def __init__(self) -> None:
        super().__init__()
        self.when = {"now": False}

    def create(self, spec: Any) -> Any:
        return diverging(super().create(spec), self.when)

    def load(self, directory: Path) -> Any:
        return diverging(super().load(directory), self.when)


def test_every_diverged_stop_reason_marks_the_report_diverged() -> None:
    for reason in (*DIVERGED_STOPS, "max_epochs", "early_stopping", "interrupted"):
        report = TrainingReport(1, (), reason, 1, 0.1)
        assert report.diverged == (reason in ("diverged", "non_finite_loss"))


def test_a_diverged_round_saves_and_records_nothing_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    source = three_cluster_source(VOCAB, 60, 30, 0, True)
    now = dt.datetime(2025, 1, 2, 3, 4, 5)
    workspaces = WorkspaceService(
        InMemoryWorkspaceStore(), source, tmp_path / "artifacts", now=lambda: now
    )
    workspace = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=30)
    store = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    store.apply([LabelChange(int(workspaces.pool(workspace).serials[0]), "ok")], "test")
    repository = DivergingRepository()
    service = TrainService(repository, workspaces)

    repository.when["now"] = True
    with pytest.raises(TrainingDivergedError) as first:
        service.train(workspace, 2, store)
    assert str(first.value).startswith(BLOWN_UP) and "nothing was saved" in str(first.value)
    assert repository.checkpoints == {} and not workspaces.open(workspace.directory).has_model

    repository.when["now"] = False
    trained = service.train(workspace, 2, store).workspace
    saved = dict(repository.checkpoints)
    repository.when["now"] = True
    with pytest.raises(TrainingDivergedError) as second:
        service.train(trained, 3, store)
    message = str(second.value)
    assert "\n" not in message and "checkpoint of round 1 stays" in message
    assert "spec.yaml" in message and "--fresh" in message
    assert repository.checkpoints == saved  # the same checkpoint, not overwritten
    reopened = workspaces.open(workspace.directory)
    assert len(reopened.metadata.rounds) == 1
    history = workspaces.store.history[workspace.directory]  # type: ignore[attr-defined]
    assert [row["round"] for row in history] == [1]

    # The diverged model is not kept: the next round starts from the checkpoint.
    repository.when["now"] = False
    after = service.train(reopened, 1, store)
    assert not after.incremental and len(repository.loaded) == 1
    assert after.round.index == 2


def test_a_diverged_model_fails_in_a_comparison_and_the_others_still_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((90, 6, 6, 1), dtype=np.float32), np.arange(90, dtype=np.int64) % 3
    relay = TrainingRelay()
    repository = FakeModelRepository([relay])
    original = repository.create
    when = {"now": True}

    def create(spec: object) -> object:
        model = original(spec)  # type: ignore[arg-type]
        when["now"] = len(repository.created) == 1  # only the first model blows up
        return diverging(model, dict(when))

    repository.create = create  # type: ignore[method-assign]
    writer = InMemoryReportWriter()
    service = CompareService(
        source=InMemoryDataSource(ClassVocabulary(("a", "b", "c")), x, y, x[:30], y[:30]),
        repository=repository,
        generator=FakeModelGenerator(),
        writer=writer,
        relay=relay,
    )
    plans = tuple(ModelPlan(n, preset(n, max_epochs=2, seed=5)) for n in ("standard", "vamp_k10"))
    service.run(Experiment(models=plans, num_samples=60, num_labeled=9, out=str(tmp_path)))
    first, second = writer.results[0].outcomes
    assert first.status == FAILED and first.message == BLOWN_UP
    assert first.evaluation is None and first.checkpoint is None
    assert second.status == FINISHED


def test_a_diverged_model_stops_a_simulation_with_the_reason(tmp_path: Path) -> None:
    repository = DivergingRepository()
    repository.when["now"] = True
    service = SimulateService(
        three_cluster_source(VOCAB, 120, 60, 0, True),
        repository,
        InMemoryLearningCurveWriter(),
        now=lambda: dt.datetime(2025, 1, 2, 3, 4, 5),
    )
    settings = SimulationSettings(
        policies=("margin",),
        seeds=(0,),
        initial_labels=6,
        rounds=1,
        k=4,
        epochs_per_round=1,
        initial_epochs=1,
        num_samples=90,
        num_test=30,
        preset="mixture_k5",
        stopping=StoppingRule(),
        out=str(tmp_path / "experiments"),
    )
    with pytest.raises(TrainingDivergedError, match="training diverged in epoch 2"):
        service.run(settings)


def test_the_dashboard_shows_a_diverged_round_as_failed_with_its_line() -> None:
    def train(epochs: int, overrides: Any, listener: Any) -> TrainingReport:
        raise TrainingDivergedError(f"{BLOWN_UP}; nothing was saved")

    job = TrainingJob(train)
    job.start(2)
    assert job.wait(10)
    progress = job.progress()
    assert progress.state == FAILED_JOB and progress.finished_runs == 0
    assert progress.message == f"training failed: {BLOWN_UP}; nothing was saved"
