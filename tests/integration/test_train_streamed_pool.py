"""A workspace over a vector file trains from the file, read a window of batches at a time,
when its pool is large (here: any size), to the model and round the loaded pool gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from ssvae.application.bootstrap import open_workspace
from ssvae.domain.labels import LabelChange
from ssvae.entrypoints.cli.main import main

SMALL = ["--set", "hidden_sizes=[16]", "--set", "latent_dim=2", "--set", "batch_size=16"]


def vector_file(path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = (rng.normal(size=(150, 6)) * 0.3).astype(np.float32)
    x[np.arange(150), y] += 2.0
    ids = rng.permutation(np.arange(1000, 1150))  # serials out of file order
    np.savez(path, x=x, ids=ids, y=y)


def train_round(tmp_path: Path, name: str, stream_above_bytes: int) -> tuple[Any, ...]:
    created = CliRunner().invoke(
        main,
        ["init", "--vectors", str(tmp_path / "pool.npz"), "--id", name,
         "--artifacts", str(tmp_path), "--json", *SMALL],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    opened = open_workspace(name, tmp_path)
    app, workspace = opened.app, opened.workspace
    store = app.label_store()
    serials = app.workspace_service().pool_serials(workspace)[:9]
    names = app.data_source().describe().vocabulary.names
    truth = app.data_source().load("train", serials).y
    assert truth is not None
    store.apply(
        [LabelChange(int(s), names[int(c)]) for s, c in zip(serials, truth, strict=True)], "t"
    )
    service = app.train_service()
    service.stream_above_bytes = stream_above_bytes
    outcome = service.train(workspace, 2, store)
    model: Any = app.model_repository().load(workspace.checkpoint_dir)
    leaves = jax.device_get(jax.tree_util.tree_leaves(model.state.params))
    trained: Any = service._loaded[workspace.directory.resolve()].model
    predictions, loss = outcome.round.predictions, outcome.report.history[-1].metrics["loss"]
    return predictions, loss, leaves, trained.pool.x, model.fingerprint


@pytest.mark.slow  # two workspaces trained with the real model: about 30 s on 2 idle cores
def test_a_large_vector_pool_trains_from_its_file_as_if_loaded(tmp_path: Path) -> None:
    vector_file(tmp_path / "pool.npz")
    loaded = train_round(tmp_path, "loaded", stream_above_bytes=1 << 40)
    streamed = train_round(tmp_path, "streamed", stream_above_bytes=0)
    assert isinstance(loaded[3], np.ndarray)
    assert type(streamed[3]).__name__ == "VectorFileRows"  # the file, not an array
    assert streamed[0] == loaded[0] and streamed[1] == loaded[1]
    for got, want in zip(streamed[2], loaded[2], strict=True):
        np.testing.assert_array_equal(got, want)
    assert streamed[4] == loaded[4]  # the data fingerprint reads the file chunk by chunk
