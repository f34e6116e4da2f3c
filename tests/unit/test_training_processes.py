"""Several processes training one model: every process trains, saves and predicts (the steps
and the checkpoint's shards are collective), only process 0 takes the workspace lock and
records the round."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import (
    InMemoryLabelStore,
    InMemoryModelRepository,
    InMemoryWorkspaceStore,
    three_cluster_source,
)

from ssvae.application.settings import DataSettings
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.distributed import ClusterSettings, ProcessPlace
from ssvae.domain.labels import ClassVocabulary, LabelChange

VOCAB = ClassVocabulary(("ok", "warning", "error"))


class FixedRuntime:
    """A DistributedRuntime whose process stands at `place`."""

    def __init__(self, place: ProcessPlace) -> None:
        self._place = place

    def start(self, settings: ClusterSettings) -> ProcessPlace:
        return self._place

    def place(self) -> ProcessPlace:
        return self._place


class CountingLock:
    def __init__(self) -> None:
        self.held = 0

    @contextlib.contextmanager
    def hold(self, directory: Path) -> Iterator[None]:
        self.held += 1
        yield


@pytest.mark.parametrize(("index", "writes"), [(0, True), (1, False)])
def test_only_process_zero_writes_the_round(tmp_path: Path, index: int, writes: bool) -> None:
    source = three_cluster_source(VOCAB, 90, 30, 0, False)
    store = InMemoryWorkspaceStore()
    workspaces = WorkspaceService(store, source, tmp_path, now=lambda: dt.datetime(2025, 1, 1))
    workspace = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=60)
    labels = InMemoryLabelStore(VOCAB, workspaces.pool_serials(workspace))
    serial = int(workspaces.pool(workspace).serials[0])
    labels.apply([LabelChange(serial, "ok")], "test")
    repository, lock = InMemoryModelRepository(), CountingLock()
    service = TrainService(
        repository, workspaces, lock=lock, runtime=FixedRuntime(ProcessPlace(index, 2))
    )

    outcome = service.train(workspace, 2, labels)

    assert repository.created[0].fit_calls == [(60, 1, 2)]  # every process trains
    assert outcome.round.index == 1 and outcome.round.predictions is not None
    assert len(outcome.workspace.metadata.rounds) == 1  # what process 0 records
    recorded = workspaces.open(workspace.directory).metadata.rounds
    assert len(recorded) == (1 if writes else 0)
    # Every process saves: the checkpointer writes each one's shards and process 0 commits.
    assert len(repository.checkpoints) == 1
    assert lock.held == (1 if writes else 0)
