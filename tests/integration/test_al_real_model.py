"""The active-learning services with the real JAX model and real files, on tiny images."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryDataSource

from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.model.repository import JaxModelRepository
from ssvae.adapters.reporting.learning_curves import FileLearningCurveWriter
from ssvae.adapters.workspace_files import FileWorkspaceStore, read_history
from ssvae.application.query import QueryService
from ssvae.application.settings import DataSettings
from ssvae.application.simulate import SimulateService
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.simulation import FINISHED, SimulationSettings, summarise
from ssvae.domain.stopping import StoppingRule

VOCAB = ClassVocabulary(("top", "middle", "bottom"))
# Small enough to compile and train in seconds; every test uses the same compiled steps.
TINY = {
    "latent_dim": 2,
    "hidden_sizes": [16],
    "batch_size": 16,
    "labeled_batch_size": 8,
    "enumerate_top_k": 2,
    "validation_split": 0.0,
    "patience": 0,
}


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes: a bright band in a different third of a 6x6 image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.random((n, 6, 6, 1), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2, :, 0] += 0.8
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def source() -> InMemoryDataSource:
    x, y = _images(96, 0)
    x_test, y_test = _images(30, 1)
    return InMemoryDataSource(VOCAB, x, y, x_test, y_test, name="bands")


def test_a_workspace_trains_round_by_round_and_queries(
    source: InMemoryDataSource, tmp_path: Path
) -> None:
    repository = JaxModelRepository()
    workspaces = WorkspaceService(FileWorkspaceStore(), source, tmp_path)
    workspace = workspaces.init(
        "mixture_k5", DataSettings(name="mnist"), "bands", num_samples=60, overrides=TINY
    )
    pool = workspaces.pool(workspace)
    assert pool.y is not None
    store = CsvLabelStore(workspace.labels_path, VOCAB, pool.serials)
    queries = QueryService(repository, workspaces)

    cold = queries.next_batch(workspace, store, "cold_start", 6)
    assert not cold.trained and len({row.serial for row in cold.rows}) == 6
    class_of = dict(zip(pool.serials.tolist(), pool.y.tolist(), strict=True))
    store.apply(
        [LabelChange(row.serial, VOCAB.names[class_of[row.serial]]) for row in cold.rows], "test"
    )

    trainer = TrainService(repository, workspaces)
    first = trainer.train(workspace, 2, store)
    assert (workspace.checkpoint_dir / "meta.json").is_file()
    assert first.round.labels_used == 6 and first.report.epochs_run == 2
    assert np.asarray(first.round.tau).shape == (5, 3)
    second = trainer.train(first.workspace, 1, store)
    assert second.incremental
    window = StoppingRule(kappa_window=2)
    resumed = TrainService(repository, workspaces).train(second.workspace, 1, store, rule=window)
    assert not resumed.incremental
    meta = json.loads((workspace.checkpoint_dir / "meta.json").read_text())
    assert meta["epoch"] == 4  # 2 + 1 incremental + 1 resumed from the checkpoint
    assert [row["total_epochs"] for row in read_history(workspace.directory)] == ["2", "3", "4"]
    assert len(workspaces.open(workspace.directory).metadata.rounds) == 3
    assert resumed.stopping.kappa is not None  # two pairs of rounds' stop-set predictions

    reopened = workspaces.open("bands")  # by id under the artifacts folder
    batch = queries.next_batch(reopened, store, "margin", 10)
    assert batch.trained and batch.labels == 6
    assert not {row.serial for row in cold.rows} & {row.serial for row in batch.rows}
    ood = queries.next_batch(reopened, store, "tau_ood", 3)
    assert all(0.0 <= row.score <= 1.0 for row in ood.rows)


def test_a_simulation_with_the_real_model_writes_its_report(
    source: InMemoryDataSource, tmp_path: Path
) -> None:
    service = SimulateService(
        source,
        JaxModelRepository(),
        FileLearningCurveWriter(now=lambda: dt.datetime(2025, 1, 1)),
    )
    settings = SimulationSettings(
        policies=("margin", "random"),
        seeds=(0,),
        initial_labels=3,
        rounds=2,
        k=3,
        epochs_per_round=1,
        initial_epochs=2,
        num_samples=60,
        num_test=30,
        preset="mixture_k5",
        overrides=TINY,
        stopping=StoppingRule(kappa_threshold=-1.0, kappa_window=1),
        out=str(tmp_path),
    )
    run = service.run(settings)
    assert [(r.policy, r.status, len(r.rounds)) for r in run.result.runs] == [
        ("margin", FINISHED, 3),
        ("random", FINISHED, 3),
    ]
    margin, random = run.result.runs
    assert margin.rounds[0] == random.rounds[0]  # both start from the same checkpoint
    for result in (margin, random):
        assert [r.labels for r in result.rounds] == [3, 6, 9]
        assert all(0.0 <= r.accuracy <= 1.0 for r in result.rounds)
        assert "predictions stable" in result.rounds[2].stop_reasons[0]
    assert (run.directory / "checkpoints" / "seed-0-initial" / "meta.json").is_file()
    assert {p.name for p in run.files} >= {"REPORT.md", "learning_curves.png"}
    assert [s.policy for s in summarise(run.result)] == ["margin", "random"]
