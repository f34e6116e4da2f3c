"""A model workspace: one model's spec, checkpoint, labels, training history and metadata.

A workspace is the folder `artifacts/models/<id>/` that `ssvae init` creates and `ssvae query`,
`ssvae label --model`, `ssvae train` and the dashboard open:

| file              | holds                                                             |
| ----------------- | ----------------------------------------------------------------- |
| `spec.yaml`       | the ModelSpec (edit it before the first `ssvae train`)             |
| `metadata.json`   | dataset settings, preset, pool, created time, one record per round |
| `labels.csv`      | the label store (with its `.history.jsonl` write-ahead history,    |
|                   | and `.classes.json` once a user added a class the dataset lacks)   |
| `checkpoint/`     | the model, once trained                                            |
| `history.csv`     | one row per training round: labels, epochs, final metrics          |
| `embedder/`       | text datasets: the fitted embedder and scaling statistics          |
| `map.npz`         | the pool's 2-D map of the current model (`ssvae map`), redrawn when  |
|                   | a new round trains                                                 |

The pool is the dataset's train split or a seeded subset of it (`pool_size`), so a workspace
can stay small and quick. The files a pool is read from again at every query (vector files)
are fingerprinted when the workspace is created (`FileFingerprint`), so that a file replaced
or rewritten since is refused before its rows are scored as the ones the labels refer to.
Each round records the labels used, the model's predictions on a fixed stop set and tau,
which is what `ssvae.domain.stopping.should_stop` reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec

SerialArray = npt.NDArray[np.int64]

FORMAT_VERSION = 1
SPEC_FILE = "spec.yaml"
METADATA_FILE = "metadata.json"
LABEL_FILE = "labels.csv"
CHECKPOINT_DIR = "checkpoint"
HISTORY_FILE = "history.csv"
MODELS_DIR = "models"
EMBEDDER_DIR = "embedder"

# The columns of history.csv, in order; a round leaves a column empty when it has no value.
HISTORY_COLUMNS: tuple[str, ...] = (
    "round",
    "finished",
    "labels",
    "epochs_run",
    "total_epochs",
    "stop_reason",
    "seconds",
    "loss",
    "val_loss",
    "val_accuracy",
    "kappa",
    "tau_change",
    "message",
)

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
STOP_SET_SIZE = 1000


class WorkspaceError(SsvaeError, ValueError):
    """A missing, damaged or invalid model workspace, or an invalid workspace id."""


class WorkspaceExistsError(WorkspaceError):
    """The workspace folder to create already exists."""


def check_workspace_id(value: object) -> str:
    """`value` if it can name a workspace folder; WorkspaceError otherwise."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise WorkspaceError(
            f"workspace id {value!r} is invalid: use 1 to 64 letters, digits, _ or - "
            "(it names the folder artifacts/models/<id>)"
        )
    return value


def generated_workspace_id(preset: str, dataset: str, now: dt.datetime, attempt: int = 1) -> str:
    """`<preset>-<dataset>-<YYYYmmdd-HHMMSS>`, with `-<attempt>` from the second attempt on.

    Characters a folder name should not hold become `_`; the result always passes
    `check_workspace_id`.
    """
    stamp = now.strftime("%Y%m%d-%H%M%S")
    suffix = "" if attempt <= 1 else f"-{attempt}"
    # Long dataset names (vector files) are cut so the id stays within 64 characters.
    head = f"{_UNSAFE.sub('_', preset)[:20]}-{_UNSAFE.sub('_', dataset)[:20]}"
    return check_workspace_id(f"{head}-{stamp}{suffix}")


def inside(directory: Path, root: Path) -> bool:
    """Whether `directory` (resolved) lies strictly inside `root` (resolved)."""
    resolved, base = directory.resolve(), root.resolve()
    return resolved != base and resolved.is_relative_to(base)


def pool_rows(total: int, size: int | None, seed: int) -> npt.NDArray[np.int64]:
    """Positions (ascending) of a seeded uniform subset of `size` out of `total`; all if None."""
    if size is None or size >= total:
        return np.arange(total, dtype=np.int64)
    if size < 1:
        raise WorkspaceError(f"pool size {size} is invalid: use at least 1 sample")
    rng = np.random.default_rng([seed, 11])
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)


def stop_set_rows(pool_size: int, seed: int, size: int = STOP_SET_SIZE) -> npt.NDArray[np.int64]:
    """The fixed stop set: a seeded subset of pool positions, the same every round."""
    if pool_size <= size:
        return np.arange(pool_size, dtype=np.int64)
    rng = np.random.default_rng([seed, 13])
    return np.sort(rng.choice(pool_size, size=size, replace=False)).astype(np.int64)


def serials_fingerprint(serials: SerialArray) -> str:
    """A short hash of a pool's serials: a changed dataset is noticed, not silently used."""
    data = np.ascontiguousarray(np.asarray(serials, dtype=np.int64)).tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@attrs.frozen
class WorkspaceRound:
    """One finished training round; a `ssvae.domain.stopping.RoundSummary`."""

    index: int
    finished: str  # ISO time
    labels_used: int
    epochs_run: int
    predictions: tuple[int, ...] | None = None  # predicted classes on the stop set
    tau: tuple[tuple[float, ...], ...] | None = None  # (components, classes)


def _frozen_dict(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen
class FileFingerprint:
    """A data file as it was: its absolute path, its size and a digest of bytes sampled
    across it (a full hash of a 15 GB pool would cost a minute at every query; a sample
    catches a file replaced, regenerated, truncated or appended to)."""

    path: str
    size: int
    digest: str

    def change_to(self, now: FileFingerprint | None) -> str | None:
        """How the file differs `now`, in words; None when it is the same."""
        if now is None:
            return "the dataset no longer reads it"
        if now.size != self.size:
            return f"{self.size:,} bytes then, {now.size:,} now"
        if now.digest != self.digest:
            return f"the same size ({self.size:,} bytes) but other contents"
        return None


@runtime_checkable
class FingerprintedSource(Protocol):
    """A data source that reads its samples from files when asked, not once: a workspace
    records their fingerprints at init and refuses files changed since."""

    def fingerprints(self) -> tuple[FileFingerprint, ...]:
        """The fingerprint of every file the dataset is read from."""
        ...


@attrs.frozen
class WorkspaceMetadata:
    """What a workspace is about: its dataset, pool, preset and rounds."""

    id: str = attrs.field(validator=lambda _, __, v: check_workspace_id(v))
    preset: str
    dataset: Mapping[str, Any] = attrs.field(converter=_frozen_dict)  # DataSettings fields
    created: str  # ISO time
    pool_size: int  # samples in the pool
    pool_seed: int
    pool_fingerprint: str
    subset: bool  # whether the pool is a seeded subset (False: the whole train split)
    rounds: tuple[WorkspaceRound, ...] = ()
    format_version: int = FORMAT_VERSION
    source_files: tuple[FileFingerprint, ...] = ()  # empty: not recorded (older workspaces)

    def with_round(self, round_: WorkspaceRound) -> WorkspaceMetadata:
        """A copy with `round_` appended."""
        return attrs.evolve(self, rounds=(*self.rounds, round_))


@attrs.frozen
class Workspace:
    """An opened workspace: where it is, its spec and its metadata."""

    directory: Path
    spec: ModelSpec
    metadata: WorkspaceMetadata

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def labels_path(self) -> Path:
        return self.directory / LABEL_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.directory / CHECKPOINT_DIR

    @property
    def has_model(self) -> bool:
        """Whether a round has finished, so the checkpoint holds a trained model."""
        return bool(self.metadata.rounds)


@runtime_checkable
class FittedDataSource(Protocol):
    """A data source whose preprocessing is fitted on its pool (a text embedder, scaling).

    A workspace keeps a copy of that state in its `embedder/` folder and reopens the dataset
    from it, so its samples keep the vectors they had when it was created.
    """

    def save_state(self, folder: Path) -> None:
        """Write the fitted state to `folder` (created if needed)."""
        ...


class TrainingLock(Protocol):
    """Keeps two processes from training the same workspace at once."""

    def hold(self, directory: Path) -> AbstractContextManager[None]:
        """Held while a round trains; ConcurrentWriteError at once if another process holds it."""
        ...


class WorkspaceStore(Protocol):
    """Reads and writes a workspace's spec, metadata and history files."""

    def create(self, directory: Path, spec: ModelSpec, metadata: WorkspaceMetadata) -> None:
        """Make `directory` (WorkspaceExistsError if it exists) and write spec and metadata."""
        ...

    def read(self, directory: Path) -> tuple[ModelSpec, WorkspaceMetadata]:
        """The spec and metadata in `directory`; WorkspaceError naming what is missing."""
        ...

    def record_round(
        self, directory: Path, metadata: WorkspaceMetadata, history_row: Mapping[str, Any]
    ) -> None:
        """Append `history_row` (HISTORY_COLUMNS) to history.csv, then replace the metadata."""
        ...

    def history(self, directory: Path) -> list[dict[str, str]]:
        """The rows of history.csv as strings, one per finished round."""
        ...


def history_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` restricted to HISTORY_COLUMNS, in order, missing ones as None."""
    unknown = sorted(set(values) - set(HISTORY_COLUMNS))
    if unknown:
        raise WorkspaceError(f"unknown history column(s): {', '.join(unknown)}")
    return {column: values.get(column) for column in HISTORY_COLUMNS}
