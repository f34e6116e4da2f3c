"""A workspace whose labels gained a class: the real JAX model on tiny images learns it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryDataSource

from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.model.repository import JaxModelRepository
from ssvae.adapters.workspace_files import FileWorkspaceStore
from ssvae.application.query import QueryService
from ssvae.application.settings import DataSettings
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.labels import ClassVocabulary, LabelChange

# The dataset knows three classes; its pool also holds a fourth kind of image.
VOCAB = ClassVocabulary(("top", "middle", "bottom"))
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
    """A bright band in one third of a 6x6 image (classes 0-2), or a bright column (3)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.random((n, 6, 6, 1), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        if c < 3:
            x[i, 2 * c : 2 * c + 2, :, 0] += 0.8
        else:
            x[i, :, 2:4, 0] += 0.8
    return x, y.astype(np.int64)


@pytest.fixture
def source() -> InMemoryDataSource:
    x, y = _images(96, 0)
    return InMemoryDataSource(VOCAB, x, y, name="bands")


def test_a_class_added_after_a_round_is_learned_by_a_new_model(
    source: InMemoryDataSource, tmp_path: Path
) -> None:
    repository = JaxModelRepository()
    workspaces = WorkspaceService(FileWorkspaceStore(), source, tmp_path)
    workspace = workspaces.init(
        "mixture_k5", DataSettings(name="mnist"), "bands", num_samples=80, overrides=TINY
    )
    spec_text = (workspace.directory / "spec.yaml").read_text()
    pool = workspaces.pool(workspace)
    assert pool.y is not None
    store = CsvLabelStore(workspace.labels_path, VOCAB, pool.serials)
    by_class = {c: pool.serials[pool.y == c][:3].tolist() for c in range(4)}
    store.apply(
        [LabelChange(s, VOCAB.names[c]) for c in range(3) for s in by_class[c]], source="test"
    )
    trainer = TrainService(repository, workspaces)
    first = trainer.train(workspace, 2, store)
    assert first.restarted_for_classes is None and np.asarray(first.round.tau).shape == (5, 3)

    labels = store.apply(
        [LabelChange(s, "column") for s in by_class[3]], source="test", new_classes=["column"]
    )
    assert len(labels.vocabulary) == 4
    # Before the next round the saved model knows 3 classes: queries still work.
    batch = QueryService(repository, workspaces).next_batch(first.workspace, store, "margin", 5)
    assert {row.predicted for row in batch.rows} <= set(VOCAB.names)

    # The trainer keeps the first model loaded: a grown vocabulary must not continue it.
    second = trainer.train(first.workspace, 3, store)
    assert not second.incremental and second.restarted_for_classes == (3, 4)
    assert second.round.labels_used == 12 and np.asarray(second.round.tau).shape == (5, 4)
    assert second.stopping.tau_change is None  # tau over 3 and 4 classes is not compared
    meta = json.loads((workspace.checkpoint_dir / "meta.json").read_text())
    assert meta["spec"]["num_classes"] == 4 and meta["epoch"] == 3  # a new model's 3 epochs
    assert (workspace.directory / "spec.yaml").read_text() == spec_text  # the user's file

    model = repository.load(workspace.checkpoint_dir)
    probs = model.predict(pool.x).class_probs
    assert probs.shape == (len(pool), 4)
    predicted = probs.argmax(axis=1)
    assert (predicted[pool.y == 3] == 3).any()  # the new class is predicted (28% here)
    assert (predicted == pool.y).mean() > 0.5  # 84% here
    names = QueryService(repository, workspaces).next_batch(second.workspace, store, "margin", 40)
    assert {row.predicted for row in names.rows} <= {*VOCAB.names, "column"}

    # The next round goes on from the 4-class model (incrementally, in this process).
    third = trainer.train(second.workspace, 1, store)
    assert third.incremental and third.restarted_for_classes is None
    assert third.stopping.tau_change is not None


def test_fresh_training_after_a_new_class_uses_every_class(
    source: InMemoryDataSource, tmp_path: Path
) -> None:
    repository = JaxModelRepository()
    workspaces = WorkspaceService(FileWorkspaceStore(), source, tmp_path)
    workspace = workspaces.init(
        "standard", DataSettings(name="mnist"), "bands", num_samples=40, overrides=TINY
    )
    pool = workspaces.pool(workspace)
    store = CsvLabelStore(workspace.labels_path, VOCAB, pool.serials)
    store.apply([LabelChange(int(pool.serials[0]), "edge")], "test", new_classes=["edge"])
    outcome = TrainService(repository, workspaces).train(workspace, 1, store, fresh=True)
    assert repository.load(workspace.checkpoint_dir).spec.network.num_classes == 4
    assert outcome.restarted_for_classes is None  # no saved model was replaced
