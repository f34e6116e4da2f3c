"""`ssvae query` on a text dataset: each proposed row carries its message (None for images)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from fakes import InMemoryLabelStore, InMemoryModelRepository, InMemoryWorkspaceStore
from text_fakes import SYSTEMS, system_source

from ssvae.application.pool_scan import PoolOutputs
from ssvae.application.query import QueryService, batch_rows
from ssvae.application.settings import DataSettings
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.query import Selection

NOW = dt.datetime(2025, 1, 2, 3, 4, 5)


def test_each_proposed_row_carries_the_message_of_its_serial(tmp_path: Path) -> None:
    source = system_source(train=30)
    workspaces = WorkspaceService(
        InMemoryWorkspaceStore(), source, tmp_path / "artifacts", now=lambda: NOW
    )
    workspace = workspaces.init("mixture_k5", DataSettings(name="mnist"), num_samples=24)
    store = InMemoryLabelStore(SYSTEMS, workspaces.pool_serials(workspace))
    batch = QueryService(InMemoryModelRepository(), workspaces).next_batch(
        workspace, store, "kcenter", 6, seed=1
    )
    assert len(batch.rows) == 6
    for row in batch.rows:
        assert row.text == source.texts("train", np.array([row.serial]))[0]


def test_rows_of_image_data_have_no_text_and_a_wrong_text_count_is_refused() -> None:
    outputs = PoolOutputs(
        serials=np.array([3, 1, 2], np.int64),
        probs=np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], np.float32),
        features=np.zeros((3, 2), np.float32),
        ood=None,
        responsibilities=None,
    )
    selection = Selection("margin", np.array([2, 3], np.int64), np.array([0.1, 0.8]))
    plain = batch_rows(outputs, selection, SYSTEMS)
    assert [(r.serial, r.predicted, r.text) for r in plain] == [
        (2, "disk", None),
        (3, "sshd", None),
    ]
    rows = batch_rows(outputs, selection, SYSTEMS, ["disk full", "login ok"])
    assert [r.text for r in rows] == ["disk full", "login ok"]
    with pytest.raises(AcquisitionError, match="one text per selected serial"):
        batch_rows(outputs, selection, SYSTEMS, ["only one"])
