"""A workspace's pool file is read through in full by `ssvae init` only: a command that opens
the workspace later (query, train, the dashboard) while the file keeps its recorded
fingerprint reads no vector before its scan, which checks every block as it reads it. A
changed file is read through and refused up front, as before."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data import vector_rows
from ssvae.adapters.data.file_fingerprint import SAMPLE_BYTES, SAMPLES, file_fingerprint
from ssvae.adapters.data.vector_rows import BLOCK_ROWS
from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.adapters.workspace_files import FileWorkspaceStore
from ssvae.application.bootstrap import bootstrap, open_workspace
from ssvae.application.settings import AppSettings, DataSettings
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.errors import DataError
from ssvae.domain.workspace import Workspace, WorkspaceError

ROWS = 3 * BLOCK_ROWS + 123  # several blocks, the last one short
WIDTH = 8


def _vectors(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((ROWS, WIDTH)).astype(np.float32)


def _write(fmt: str, folder: Path, x: np.ndarray) -> Path:
    if fmt == "npy":
        np.save(folder / "pool.npy", x)
        return folder / "pool.npy"
    ids = np.arange(ROWS, dtype=np.int64)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), WIDTH)
    pq.write_table(pa.table({"id": ids, "vector": vectors}), folder / "pool.parquet", 10_000)
    return folder / "pool.parquet"


def _settings(path: Path) -> DataSettings:
    return DataSettings(kind="vectors", name="pool", train_path=path, classes=("a", "b"))


def _init(path: Path, artifacts: Path) -> Workspace:
    """`ssvae init`'s service on a fresh source, as the command builds it."""
    source = VectorDataSource(path, classes=["a", "b"])
    service = WorkspaceService(FileWorkspaceStore(), source, artifacts)
    return service.init("text_standard", _settings(path), "pool")


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of vectors read from files (each is checked as it is converted)."""
    counted = [0]
    original = vector_rows.checked

    def counting(path: Path, block: Any, *args: Any) -> Any:
        counted[0] += len(block)
        return original(path, block, *args)

    monkeypatch.setattr(vector_rows, "checked", counting)
    yield counted


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_an_unchanged_pool_file_is_read_only_by_the_scan(
    tmp_path: Path, fmt: str, rows_read: list[int]
) -> None:
    path = _write(fmt, tmp_path, _vectors(0))
    workspace = _init(path, tmp_path)
    assert rows_read[0] == ROWS  # init reads the whole file through
    rows_read[0] = 0
    opened = open_workspace(workspace.directory, tmp_path)
    services = opened.services()  # what the dashboard builds when it opens a workspace
    assert services.info.split_sizes == (("train", ROWS),)
    assert len(services.workspaces.pool_serials(workspace)) == ROWS
    assert rows_read[0] == 0
    chunks = list(services.workspaces.pool_chunks(workspace, BLOCK_ROWS))
    assert sum(len(chunk) for chunk in chunks) == ROWS == rows_read[0]


def _unsampled_row(path: Path, header: int, first: int) -> int:
    """A row at or after `first` whose bytes the fingerprint does not sample."""
    size = path.stat().st_size
    last = size - SAMPLE_BYTES
    sampled = [last * i // (SAMPLES - 1) for i in range(SAMPLES)]
    row_bytes = WIDTH * 4
    for row in range(first, ROWS):
        begin = header + row * row_bytes
        if all(begin + row_bytes <= at or begin >= at + SAMPLE_BYTES for at in sampled):
            return row
    raise AssertionError("every row is sampled: make the file larger")


def test_a_bad_row_far_into_an_unchanged_file_is_refused_by_the_scan(
    tmp_path: Path, rows_read: list[int]
) -> None:
    """An edit between the fingerprint's samples is not seen up front (the fingerprint guards
    against the wrong file, not against tampering), but the scan still names the row."""
    path = _write("npy", tmp_path, _vectors(0))
    workspace = _init(path, tmp_path)
    header = path.stat().st_size - ROWS * WIDTH * 4
    row = _unsampled_row(path, header, 2 * BLOCK_ROWS)
    before = file_fingerprint(path)
    x = np.load(path, mmap_mode="r+")
    x[row, 3] = np.nan
    x.flush()
    del x
    assert file_fingerprint(path) == before
    rows_read[0] = 0
    opened = open_workspace(workspace.directory, tmp_path)
    service = opened.app.workspace_service()
    opened.app.label_store()
    assert len(service.pool_serials(workspace)) == ROWS
    assert rows_read[0] == 0
    with pytest.raises(DataError, match=re.escape(f"{path}: row {row}: vector has NaN")) as caught:
        list(service.pool_chunks(workspace, BLOCK_ROWS))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_a_changed_pool_file_is_read_through_and_refused_up_front(
    tmp_path: Path, fmt: str, rows_read: list[int]
) -> None:
    path = _write(fmt, tmp_path, _vectors(0))
    workspace = _init(path, tmp_path)
    _write(fmt, tmp_path, _vectors(1))
    rows_read[0] = 0
    opened = open_workspace(workspace.directory, tmp_path)
    with pytest.raises(WorkspaceError, match="this file changed since workspace pool"):
        opened.services()
    assert rows_read[0] == ROWS  # not the file init checked, so checked in full


def test_a_changed_file_with_a_bad_row_far_into_it_is_refused_before_the_scan(
    tmp_path: Path, rows_read: list[int]
) -> None:
    path = _write("npy", tmp_path, _vectors(0))
    workspace = _init(path, tmp_path)
    x = _vectors(1)
    x[2 * BLOCK_ROWS + 77, 0] = np.inf
    _write("npy", tmp_path, x)
    opened = open_workspace(workspace.directory, tmp_path)
    with pytest.raises(DataError, match=f"row {2 * BLOCK_ROWS + 77}: vector has NaN"):
        opened.app.data_source().describe()


def test_a_source_outside_a_workspace_reads_its_file_through(
    tmp_path: Path, rows_read: list[int]
) -> None:
    """`ssvae init` and the commands on a dataset itself check the whole file up front."""
    path = _write("npy", tmp_path, _vectors(0))
    app = bootstrap(AppSettings(data=_settings(path), artifacts_dir=tmp_path))
    app.data_source().describe()
    assert rows_read[0] == ROWS
