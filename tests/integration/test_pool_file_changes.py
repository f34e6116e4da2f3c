"""A pool file that changes after `ssvae init` is refused before its rows are scored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ssvae.adapters.data.file_fingerprint import file_fingerprint
from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.adapters.workspace_files import FileWorkspaceStore
from ssvae.application.settings import DataSettings
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.workspace import Workspace, WorkspaceError


def _vectors(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)


def _service(path: Path, artifacts: Path) -> WorkspaceService:
    """A fresh source each time, as each ssvae command builds its own."""
    return WorkspaceService(
        FileWorkspaceStore(), VectorDataSource(path, classes=["a", "b"]), artifacts
    )


def _init(tmp_path: Path) -> tuple[Path, Workspace]:
    path = tmp_path / "pool.npy"
    np.save(path, _vectors(500, 0))
    service = _service(path, tmp_path / "artifacts")
    workspace = service.init(
        "text_standard",
        DataSettings(kind="vectors", name="pool", train_path=path, classes=("a", "b")),
    )
    return path, workspace


def test_init_records_the_pool_file_and_an_unchanged_file_opens(tmp_path: Path) -> None:
    path, workspace = _init(tmp_path)
    recorded = json.loads((workspace.directory / "metadata.json").read_text())["source_files"]
    assert recorded == [
        {"path": str(path.resolve()), "size": path.stat().st_size, "digest": recorded[0]["digest"]}
    ]
    service = _service(path, tmp_path / "artifacts")
    reopened = service.open(workspace.directory)
    assert reopened.metadata.source_files == workspace.metadata.source_files
    assert len(service.pool_serials(reopened)) == 500


@pytest.mark.parametrize(
    ("rewrite", "change"),
    [
        (lambda p: np.save(p, _vectors(500, 1)), "the same size (16,128 bytes) but other contents"),
        (lambda p: np.save(p, _vectors(501, 0)), "16,128 bytes then, 16,160 now"),
    ],
    ids=["regenerated", "grown"],
)
def test_a_pool_file_changed_after_init_is_refused_in_one_line(
    tmp_path: Path, rewrite: object, change: str
) -> None:
    path, workspace = _init(tmp_path)
    original = path.read_bytes()
    rewrite(path)  # type: ignore[operator]
    service = _service(path, tmp_path / "artifacts")
    with pytest.raises(WorkspaceError, match=re.escape(change)) as caught:
        service.pool(service.open(workspace.directory))
    message = str(caught.value)
    assert "\n" not in message and str(path.resolve()) in message
    assert "put the original file back" in message and "ssvae init --vectors" in message
    # Putting the original back is the fix the message gives.
    path.write_bytes(original)
    service = _service(path, tmp_path / "artifacts")
    assert len(service.pool(service.open(workspace.directory))) == 500


def test_the_fingerprint_samples_the_whole_file(tmp_path: Path) -> None:
    """A change near the end of a large file changes it, though only samples are read."""
    path = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).bytes(2_000_000))
    path.write_bytes(bytes(data))
    before = file_fingerprint(path)
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert file_fingerprint(path).change_to(before) is not None
    assert before.change_to(file_fingerprint(path)) == (
        "the same size (2,000,000 bytes) but other contents"
    )


def test_workspaces_written_before_fingerprints_still_open(tmp_path: Path) -> None:
    path, workspace = _init(tmp_path)
    metadata_path = workspace.directory / "metadata.json"
    stored = json.loads(metadata_path.read_text())
    del stored["source_files"]
    metadata_path.write_text(json.dumps(stored))
    np.save(path, _vectors(500, 1))  # not recorded, so not checked
    service = _service(path, tmp_path / "artifacts")
    reopened = service.open(workspace.directory)
    assert reopened.metadata.source_files == ()
    assert len(service.pool_serials(reopened)) == 500
