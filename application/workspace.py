"""Use case: create and open model workspaces (`artifacts/models/<id>/`).

The files themselves are written by a `WorkspaceStore` adapter (spec YAML, metadata JSON,
history CSV); this service decides what goes into them: the spec from a preset fitted to the
dataset, the dataset settings, the seeded pool, and one record per training round.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.settings import AppSettings, DataSettings, LabelSettings
from ssvae.domain.data import Samples
from ssvae.domain.errors import SsvaeError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.ports import DataSource, TextCatalog, iter_samples, text_catalog
from ssvae.domain.spec import ModelSpec
from ssvae.domain.spec import preset as preset_spec
from ssvae.domain.stopping import StopDecision, StoppingRule, should_stop
from ssvae.domain.workspace import (
    EMBEDDER_DIR,
    METADATA_FILE,
    MODELS_DIR,
    FingerprintedSource,
    FittedDataSource,
    Workspace,
    WorkspaceError,
    WorkspaceExistsError,
    WorkspaceMetadata,
    WorkspaceRound,
    WorkspaceStore,
    check_workspace_id,
    generated_workspace_id,
    inside,
    pool_rows,
    serials_fingerprint,
)

SerialArray = npt.NDArray[np.int64]
MAX_ID_ATTEMPTS = 100  # generated ids of inits started in the same second get -2, -3, ...


def dataset_settings_record(settings: DataSettings) -> dict[str, Any]:
    """Every DataSettings field as a JSON-ready value; paths made absolute so any folder opens it.

    `DataSettings(**record)` gives the settings back (`dataset_settings_of` for a workspace).
    """

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value.expanduser().resolve())
        if isinstance(value, tuple):
            return list(value)
        return value

    return {
        field.name: plain(getattr(settings, field.name)) for field in attrs.fields(DataSettings)
    }


def dataset_settings_of(workspace: Workspace) -> DataSettings:
    """The DataSettings a workspace was created with; its state_dir is inside the workspace."""
    values = dict(workspace.metadata.dataset)
    state_dir = values.get("state_dir")
    if isinstance(state_dir, str) and not Path(state_dir).is_absolute():
        values["state_dir"] = workspace.directory / state_dir
    try:
        return DataSettings(**values)
    except TypeError as error:
        raise WorkspaceError(
            f"{workspace.directory}: the dataset settings in metadata.json are damaged "
            f"({error}); create a new workspace with ssvae init"
        ) from None


def workspace_settings(workspace: Workspace, artifacts_dir: Path | None = None) -> AppSettings:
    """Settings for a container serving `workspace`: its dataset and its label store."""
    extra = {} if artifacts_dir is None else {"artifacts_dir": artifacts_dir}
    return AppSettings(
        data=dataset_settings_of(workspace),
        labels=LabelSettings(path=workspace.labels_path),
        **extra,
    )


@attrs.define
class WorkspaceService:
    """Creates workspaces under `artifacts_dir/models/`, opens them, records their rounds."""

    store: WorkspaceStore
    source: DataSource
    artifacts_dir: Path = attrs.field(converter=Path)
    now: Callable[[], dt.datetime] = dt.datetime.now

    @property
    def models_dir(self) -> Path:
        return self.artifacts_dir / MODELS_DIR

    def init(
        self,
        preset: str,
        dataset: DataSettings,
        id: str | None = None,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        overrides: Mapping[str, Any] | None = None,
    ) -> Workspace:
        """A new workspace for `preset` on `dataset` (the service's source reads that dataset).

        `id` names the folder (generated from preset, dataset and time when None);
        `num_samples` makes the pool a seeded subset of the train split; `overrides` are
        spec fields applied over the preset.
        """
        if num_samples is not None and num_samples < 1:
            raise WorkspaceError(f"--num-samples {num_samples} is invalid: use at least 1")
        if id is not None:
            check_workspace_id(id)
        info = self.source.describe()
        spec = preset_spec(preset, **dict(overrides or {})).evolve(
            input_shape=tuple(info.sample_shape), num_classes=len(info.vocabulary)
        )
        serials = self.source.serials("train")
        rows = pool_rows(len(serials), num_samples, seed)
        fitted = isinstance(self.source, FittedDataSource)
        record = dataset_settings_record(dataset)
        if dataset.kind == "text" and dataset.embedder == "tfidf":
            # The width used, which the default may have narrowed to fit a small pool: the
            # workspace's later commands rebuild exactly this embedder.
            record["embedder_dim"] = int(info.sample_shape[0])
        source_files = (
            self.source.fingerprints() if isinstance(self.source, FingerprintedSource) else ()
        )
        if fitted:
            # Fit (embed the pool) before any folder exists, so a failure leaves nothing.
            self.source.load("train", serials[:1])
            record["state_dir"] = EMBEDDER_DIR  # relative: the workspace's own folder
        created = self.now()
        for attempt in range(1, MAX_ID_ATTEMPTS + 1):
            name = (
                id
                if id is not None
                else generated_workspace_id(preset, info.name, created, attempt)
            )
            directory = self.models_dir / name
            if not inside(directory, self.models_dir):
                raise WorkspaceError(
                    f"workspace id {name!r} leads outside {self.models_dir}; choose a plain name"
                )
            metadata = WorkspaceMetadata(
                id=name,
                preset=preset,
                dataset=record,
                created=created.isoformat(timespec="seconds"),
                pool_size=len(rows),
                pool_seed=seed,
                pool_fingerprint=serials_fingerprint(serials[rows]),
                subset=len(rows) < len(serials),
                source_files=source_files,
            )
            try:
                self.store.create(directory, spec, metadata)
            except WorkspaceExistsError:
                if id is not None:
                    raise
                continue
            if isinstance(self.source, FittedDataSource):
                self.source.save_state(directory / EMBEDDER_DIR)
            return Workspace(directory, spec, metadata)
        raise WorkspaceError(f"too many workspaces created in one second under {self.models_dir}")

    def resolve(self, model: Path | str) -> Path:
        """`model` as given when it is a folder, else `models_dir/<model>` when that exists."""
        return resolve_workspace(self.models_dir, model)

    def open(self, model: Path | str) -> Workspace:
        """The workspace in folder `model` (or with id `model` under models_dir)."""
        return read_workspace(self.store, self.models_dir, model)

    def list(self) -> builtins.list[Workspace]:
        """Every workspace under models_dir, by folder name; a folder that is no complete
        workspace is left out (opening it says what is wrong)."""
        folder = self.models_dir
        if not folder.is_dir():
            return []
        found = []
        for directory in sorted(folder.iterdir()):
            if not (directory / METADATA_FILE).is_file():
                continue
            try:
                found.append(self.open(directory))
            except WorkspaceError:
                continue
        return found

    def create_from_spec(
        self,
        base_preset: str,
        dataset: DataSettings,
        spec: ModelSpec,
        id: str | None = None,
        *,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> Workspace:
        """A new workspace whose spec is `spec`: recorded as `base_preset` with the fields
        where `spec` differs from it (the dataset's shape and classes are fitted anew)."""
        if id is not None:
            check_workspace_id(id)
        base = preset_spec(base_preset).to_fields()
        overrides = {
            name: value
            for name, value in spec.to_fields().items()
            if name not in ("input_shape", "num_classes") and value != base[name]
        }
        return self.init(
            base_preset, dataset, id, num_samples=num_samples, seed=seed, overrides=overrides
        )

    def clone(self, source: Workspace, spec: ModelSpec, id: str | None = None) -> Workspace:
        """A new workspace with `source`'s preset, dataset and pool, and `spec` (the source's
        spec, or its trained model's); the service's source must read `source`'s dataset."""
        metadata = source.metadata
        return self.create_from_spec(
            metadata.preset,
            dataset_settings_of(source),
            spec,
            id,
            num_samples=metadata.pool_size if metadata.subset else None,
            seed=metadata.pool_seed,
        )

    def texts(self) -> TextCatalog | None:
        """The dataset's messages by serial; None for image and vector data."""
        return text_catalog(self.source)

    def test_samples(self) -> Samples:
        """The dataset's test split: the held-out truth a workspace's model is measured on."""
        return self.source.load("test")

    def history(self, workspace: Workspace) -> builtins.list[dict[str, str]]:
        """The rows of the workspace's history.csv, one per finished round."""
        return self.store.history(workspace.directory)

    def vocabulary(self) -> ClassVocabulary:
        """The class vocabulary of the dataset (the source must read the workspace's dataset)."""
        return self.source.describe().vocabulary

    def pool_serials(self, workspace: Workspace) -> SerialArray:
        """The serials of the workspace's pool; WorkspaceError if the dataset changed since."""
        self.check_source_files(workspace)
        serials = self.source.serials("train")
        metadata = workspace.metadata
        size = metadata.pool_size if metadata.subset else None
        if metadata.subset and metadata.pool_size > len(serials):
            raise self._changed(workspace, len(serials))
        chosen = serials[pool_rows(len(serials), size, metadata.pool_seed)]
        if len(chosen) != metadata.pool_size or (
            serials_fingerprint(chosen) != metadata.pool_fingerprint
        ):
            raise self._changed(workspace, len(serials))
        return chosen

    def check_source_files(self, workspace: Workspace) -> None:
        """WorkspaceError when a file the pool is read from changed since the workspace was
        created: its rows would no longer be the samples its labels and model refer to."""
        recorded = workspace.metadata.source_files
        if not recorded or not isinstance(self.source, FingerprintedSource):
            return
        current = {f.path: f for f in self.source.fingerprints()}
        for before in recorded:
            change = before.change_to(current.get(before.path))
            if change is not None:
                raise WorkspaceError(
                    f"{before.path}: this file changed since workspace {workspace.id} was "
                    f"created ({change}); put the original file back, or create a new "
                    f"workspace for the new file with ssvae init --vectors {before.path}"
                )

    @staticmethod
    def _changed(workspace: Workspace, available: int) -> WorkspaceError:
        return WorkspaceError(
            f"the dataset of workspace {workspace.id} changed since it was created (its pool "
            f"had {workspace.metadata.pool_size} samples, the train split now has {available}); "
            "point it at the original data or create a new workspace with ssvae init"
        )

    def pool(self, workspace: Workspace) -> Samples:
        """The pool's samples."""
        return self.source.load("train", self.pool_serials(workspace))

    def pool_chunks(self, workspace: Workspace, rows: int) -> Iterator[Samples]:
        """The pool's samples, at most `rows` at a time, in the source's order (file order for
        vector files): each sample once, and only one chunk in memory at a time."""
        serials = self.pool_serials(workspace)
        return iter_samples(
            self.source, "train", serials if workspace.metadata.subset else None, rows
        )

    def record_round(
        self, workspace: Workspace, round_: WorkspaceRound, history: Mapping[str, Any]
    ) -> Workspace:
        """The workspace with `round_` recorded in its metadata and a row in history.csv."""
        metadata = workspace.metadata.with_round(round_)
        self.store.record_round(workspace.directory, metadata, history)
        return Workspace(workspace.directory, workspace.spec, metadata)

    @staticmethod
    def stopping(workspace: Workspace, rule: StoppingRule) -> StopDecision:
        """Which stopping criteria hold after the workspace's rounds so far."""
        return should_stop(rule, workspace.metadata.rounds)


def resolve_workspace(models_dir: Path, model: Path | str) -> Path:
    """`model` as given when it is a folder, else `models_dir/<model>` when that exists."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    candidate = models_dir / str(model)
    if isinstance(model, str) and check_id_quietly(model) and candidate.is_dir():
        return candidate
    return path


def read_workspace(store: WorkspaceStore, models_dir: Path, model: Path | str) -> Workspace:
    """The workspace in folder `model` (or with id `model` under `models_dir`), read by `store`.

    It needs no data source, so a container can read its workspace before it is configured
    for the workspace's dataset.
    """
    directory = resolve_workspace(models_dir, model)
    spec, metadata = store.read(directory)
    return Workspace(directory, spec, metadata)


def check_id_quietly(value: str) -> bool:
    """Whether `value` is a valid workspace id (no error)."""
    try:
        check_workspace_id(value)
    except SsvaeError:
        return False
    return True


def total_epochs(rounds: Sequence[WorkspaceRound]) -> int:
    """Epochs trained over all rounds."""
    return sum(r.epochs_run for r in rounds)
