"""Model workspaces on disk: spec.yaml, metadata.json and history.csv (the WorkspaceStore port).

Every file is replaced atomically (a temporary file, fsync, rename), so a crash leaves the old
version or the new one. history.csv is append-only: a round's row is appended before the
metadata that counts the round is replaced, so history.csv never misses a counted round.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import filelock

from ssvae.adapters.files import atomic_write_text
from ssvae.adapters.json_limits import JsonLimitError, load_json_bounded
from ssvae.adapters.yaml.spec import load_spec, save_spec
from ssvae.domain.errors import ConcurrentWriteError, SsvaeError
from ssvae.domain.spec import ModelSpec
from ssvae.domain.workspace import (
    FORMAT_VERSION,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    METADATA_FILE,
    SPEC_FILE,
    FileFingerprint,
    WorkspaceError,
    WorkspaceExistsError,
    WorkspaceMetadata,
    WorkspaceRound,
    history_row,
)


def metadata_to_json(metadata: WorkspaceMetadata) -> dict[str, Any]:
    """The metadata as JSON-ready values."""
    return {
        "format_version": metadata.format_version,
        "id": metadata.id,
        "preset": metadata.preset,
        "dataset": dict(metadata.dataset),
        "created": metadata.created,
        "pool_size": metadata.pool_size,
        "pool_seed": metadata.pool_seed,
        "pool_fingerprint": metadata.pool_fingerprint,
        "subset": metadata.subset,
        **(
            {"source_files": [attrs.asdict(f) for f in metadata.source_files]}
            if metadata.source_files
            else {}
        ),
        "rounds": [
            {
                "index": r.index,
                "finished": r.finished,
                "labels_used": r.labels_used,
                "epochs_run": r.epochs_run,
                "predictions": None if r.predictions is None else list(r.predictions),
                "tau": None if r.tau is None else [list(row) for row in r.tau],
            }
            for r in metadata.rounds
        ],
    }


def _round_from_json(value: Any) -> WorkspaceRound:
    predictions = value.get("predictions")
    tau = value.get("tau")
    return WorkspaceRound(
        index=int(value["index"]),
        finished=str(value["finished"]),
        labels_used=int(value["labels_used"]),
        epochs_run=int(value["epochs_run"]),
        predictions=None if predictions is None else tuple(int(p) for p in predictions),
        tau=None if tau is None else tuple(tuple(float(v) for v in row) for row in tau),
    )


def _fingerprint_from_json(value: Any) -> FileFingerprint:
    return FileFingerprint(
        path=str(value["path"]), size=int(value["size"]), digest=str(value["digest"])
    )


def metadata_from_json(value: Any, origin: str) -> WorkspaceMetadata:
    """The metadata in a parsed metadata.json; WorkspaceError naming the bad key."""
    if not isinstance(value, dict):
        raise WorkspaceError(f"{origin} is damaged: it must hold a JSON object")
    version = value.get("format_version")
    if version != FORMAT_VERSION:
        raise WorkspaceError(
            f"{origin} has format version {version!r}; this ssvae reads version "
            f"{FORMAT_VERSION}: create a new workspace with ssvae init"
        )
    try:
        return WorkspaceMetadata(
            id=value["id"],
            preset=str(value["preset"]),
            dataset=dict(value["dataset"]),
            created=str(value["created"]),
            pool_size=int(value["pool_size"]),
            pool_seed=int(value["pool_seed"]),
            pool_fingerprint=str(value["pool_fingerprint"]),
            subset=bool(value["subset"]),
            rounds=tuple(_round_from_json(r) for r in value.get("rounds", [])),
            source_files=tuple(_fingerprint_from_json(f) for f in value.get("source_files", [])),
        )
    except KeyError as error:
        raise WorkspaceError(
            f"{origin} is damaged: key {error.args[0]!r} is missing; restore the file or "
            "create a new workspace with ssvae init"
        ) from None
    except (TypeError, ValueError, AttributeError) as error:
        if isinstance(error, SsvaeError):
            raise WorkspaceError(f"{origin} is damaged: {error}") from None
        raise WorkspaceError(
            f"{origin} is damaged: a value has the wrong type ({error}); restore the file or "
            "create a new workspace with ssvae init"
        ) from None


def _write_metadata(directory: Path, metadata: WorkspaceMetadata) -> None:
    text = json.dumps(metadata_to_json(metadata), indent=1) + "\n"
    try:
        atomic_write_text(directory / METADATA_FILE, text)
    except OSError as error:
        raise WorkspaceError(
            f"cannot write {directory / METADATA_FILE}: {error.strerror or error}; check the "
            "folder is writable"
        ) from None


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


TRAINING_LOCK = ".training.lock"


class FileTrainingLock:
    """A TrainingLock: a lock file in the workspace, held while a round trains."""

    @contextlib.contextmanager
    def hold(self, directory: Path) -> Iterator[None]:
        path = Path(directory) / TRAINING_LOCK
        lock = filelock.FileLock(path, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise ConcurrentWriteError(
                f"another process is training the model in {directory} (lock {path}); "
                "wait until it has finished, or stop it, then train again"
            ) from None
        try:
            yield
        finally:
            lock.release()


class FileWorkspaceStore:
    """A WorkspaceStore over plain files in the workspace folder."""

    def history(self, directory: Path) -> list[dict[str, str]]:
        """The rows of history.csv, one per finished round (empty before the first)."""
        return read_history(directory)

    def create(self, directory: Path, spec: ModelSpec, metadata: WorkspaceMetadata) -> None:
        """Make `directory` (it must not exist), then write spec.yaml and metadata.json."""
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(directory)  # atomic: two inits never share a folder
        except FileExistsError:
            raise WorkspaceExistsError(
                f"workspace {directory} already exists; choose another --id or open it with --model"
            ) from None
        except OSError as error:
            raise WorkspaceError(
                f"cannot create workspace {directory}: {error.strerror or error}; choose a "
                "writable --artifacts folder"
            ) from None
        save_spec(spec, directory / SPEC_FILE)
        # metadata.json last: a folder without it is not a workspace yet.
        _write_metadata(directory, metadata)

    def read(self, directory: Path) -> tuple[ModelSpec, WorkspaceMetadata]:
        """The spec and metadata; WorkspaceError naming the missing or damaged file."""
        if not directory.is_dir():
            raise WorkspaceError(
                f"model workspace {directory} does not exist; create one with ssvae init "
                "or check the --model path"
            )
        metadata_path = directory / METADATA_FILE
        for path in (metadata_path, directory / SPEC_FILE):
            if not path.is_file():
                raise WorkspaceError(
                    f"{directory} is not a complete model workspace: {path.name} is missing; "
                    "create a workspace with ssvae init"
                )
        try:
            parsed = load_json_bounded(metadata_path.read_bytes())
        except (OSError, JsonLimitError) as error:
            raise WorkspaceError(
                f"{metadata_path} cannot be read ({error}); restore it or create a new "
                "workspace with ssvae init"
            ) from None
        metadata = metadata_from_json(parsed, str(metadata_path))
        return load_spec(directory / SPEC_FILE), metadata

    def record_round(
        self, directory: Path, metadata: WorkspaceMetadata, history_row_values: Mapping[str, Any]
    ) -> None:
        """Append one row to history.csv (header first if new), then replace metadata.json."""
        row = history_row(history_row_values)
        path = directory / HISTORY_FILE
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        size = path.stat().st_size if path.exists() else 0
        if size == 0:
            writer.writerow(HISTORY_COLUMNS)
        elif not _ends_with_newline(path, size):
            buffer.write("\n")  # a torn last row (a crash mid-append) stays a row of its own
        writer.writerow([_csv_value(row[column]) for column in HISTORY_COLUMNS])
        try:
            with open(path, "a", encoding="utf-8", newline="") as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise WorkspaceError(
                f"cannot append to {path}: {error.strerror or error}; check the folder is writable"
            ) from None
        _write_metadata(directory, metadata)


def read_history(directory: Path) -> list[dict[str, str]]:
    """The rows of history.csv as strings (empty when no round has finished)."""
    path = directory / HISTORY_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
