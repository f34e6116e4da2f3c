"""The composition root: one declarative container, read top-down.

Configuration first, then the adapters (chosen by configuration), then the application
services. The CLI, the dashboard and library users build everything through it; tests swap an
adapter with `container.label_store.override(fake)`.

Adapters are named by import path and imported only when a provider first builds them, so
importing this module stays cheap (no JAX, no pyarrow) and does no work.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from dependency_injector import containers, providers

from ssvae.application.compare import CompareService
from ssvae.application.datasets import DatasetService
from ssvae.application.experiments import ExperimentResolver
from ssvae.application.labeling import LabelExchange, LabelService
from ssvae.application.maps import MapService
from ssvae.application.query import QueryService
from ssvae.application.simulate import SimulateService
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.comparison import ExperimentReader, ModelGenerator, ReportWriter, TrainingRelay
from ssvae.domain.distributed import DistributedRuntime
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.maps import MapCache, MapProjector, MapTableWriter, PredictionCache
from ssvae.domain.model import ModelRepository
from ssvae.domain.ports import DataSource, LabelFileCodec, LabelStore
from ssvae.domain.simulation import LearningCurveWriter
from ssvae.domain.spec import ModelSpec
from ssvae.domain.text import TextFileEmbedder
from ssvae.domain.workspace import FileFingerprint, TrainingLock, Workspace, WorkspaceStore


def adapter(path: str) -> Callable[..., Any]:
    """A callable that imports `module:attribute` on first use and calls it.

    It returns Any because the application may not import the adapter to learn its type: each
    provider built from one is annotated with the port it serves (`providers.Singleton[
    LabelStore]`), so `container.label_store()` is a `LabelStore` to mypy at every call site.
    """
    module_name, _, attribute = path.partition(":")

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), attribute)(*args, **kwargs)

    build.__name__ = attribute
    build.__qualname__ = path
    return build


def _directories(directory: Path | None, embedded: Path) -> list[Path]:
    """The user's data folder first, then the data embedded in the repository."""
    return [directory, embedded] if directory is not None else [embedded]


def _valid_serials(
    source: DataSource, workspaces: WorkspaceService, workspace: Workspace | None
) -> npt.NDArray[np.int64]:
    """The serials a label may name: the workspace's pool, or the whole train split when the
    container serves no workspace (labels kept next to a dataset)."""
    if workspace is None:
        return source.serials("train")
    return workspaces.pool_serials(workspace)


def _checked_files(workspace: Workspace | None) -> tuple[FileFingerprint, ...]:
    """The files the workspace's init validated in full, as they were then (none without a
    workspace): the vector source does not read them through again while they are unchanged."""
    return () if workspace is None else workspace.metadata.source_files


def _vocabulary(source: DataSource) -> ClassVocabulary:
    return source.describe().vocabulary


class Container(containers.DeclarativeContainer):
    """Configuration -> adapters -> services."""

    config = providers.Configuration(strict=True)

    # Data sources, chosen by config.data.kind.
    idx_source: providers.Singleton[DataSource] = providers.Singleton(
        adapter("ssvae.adapters.data.mnist:IdxDataSource"),
        name=config.data.name,
        directories=providers.Callable(
            _directories,
            config.data.directory,
            providers.Callable(adapter("ssvae.adapters.data.mnist:embedded_data_dir")),
        ),
        cache_dir=config.data.cache_dir,
        download=config.data.download,
    )
    vector_source: providers.Singleton[DataSource] = providers.Singleton(
        adapter("ssvae.adapters.data.vectors:VectorDataSource"),
        train_path=config.data.train_path,
        test_path=config.data.test_path,
        name=config.data.name,
        classes=config.data.classes,
        id_column=config.data.id_column,
        vector_column=config.data.vector_column,
        label_column=config.data.label_column,
        checked_files=providers.Callable(_checked_files, config.workspace),
    )
    # The text adapter builds its own settings value from the data settings, so their fields
    # are listed once, in DataSettings, rather than again here.
    text_source: providers.Singleton[DataSource] = providers.Singleton(
        adapter("ssvae.adapters.data.text_source:open_text_source"), config.data
    )
    data_source: providers.Selector[DataSource] = providers.Selector(
        config.data.kind, idx=idx_source, vectors=vector_source, text=text_source
    )

    # Model workspaces: their files, and the service that opens them and reads their pools.
    workspace_store: providers.Singleton[WorkspaceStore] = providers.Singleton(
        adapter("ssvae.adapters.workspace_files:FileWorkspaceStore")
    )
    workspace_service = providers.Factory(
        WorkspaceService,
        store=workspace_store,
        source=data_source,
        artifacts_dir=config.artifacts_dir,
    )

    # Label stores, chosen by config.labels.format. A container that serves a workspace
    # (config.workspace, set by `open_workspace`) accepts labels for its pool only.
    valid_serials = providers.Callable(
        _valid_serials, data_source, workspace_service, config.workspace
    )
    vocabulary = providers.Callable(_vocabulary, data_source)
    csv_label_store: providers.Singleton[LabelStore] = providers.Singleton(
        adapter("ssvae.adapters.labels.csv_store:CsvLabelStore"),
        path=config.labels.path,
        vocabulary=vocabulary,
        valid_serials=valid_serials,
        lock_timeout=config.labels.lock_timeout,
    )
    parquet_label_store: providers.Singleton[LabelStore] = providers.Singleton(
        adapter("ssvae.adapters.labels.parquet_store:ParquetLabelStore"),
        path=config.labels.path,
        vocabulary=vocabulary,
        valid_serials=valid_serials,
        lock_timeout=config.labels.lock_timeout,
    )
    label_store: providers.Selector[LabelStore] = providers.Selector(
        config.labels.format, csv=csv_label_store, parquet=parquet_label_store
    )
    csv_label_file: providers.Factory[LabelFileCodec] = providers.Factory(
        adapter("ssvae.adapters.labels.csv_store:CsvLabelFile")
    )
    parquet_label_file: providers.Factory[LabelFileCodec] = providers.Factory(
        adapter("ssvae.adapters.labels.parquet_store:ParquetLabelFile")
    )
    label_file_codecs = providers.Dict(csv=csv_label_file, parquet=parquet_label_file)

    # Models. The relay is every model's training callback: a use case attaches a listener
    # (a progress bar) for as long as it trains one model.
    training_relay = providers.Singleton(TrainingRelay)
    model_repository: providers.Singleton[ModelRepository] = providers.Singleton(
        adapter("ssvae.adapters.model.repository:JaxModelRepository"),
        callbacks=providers.List(training_relay),
    )
    model_generator: providers.Singleton[ModelGenerator] = providers.Singleton(
        adapter("ssvae.adapters.model.generation:JaxModelGenerator")
    )

    # Comparisons: experiment files and reports. The adapter reads the file; the application
    # decides what wins over what (flags over the file), so `experiment_reader` serves the
    # resolved experiment.
    experiment_files: providers.Singleton[ExperimentReader] = providers.Singleton(
        adapter("ssvae.adapters.yaml.experiment:YamlExperimentReader")
    )
    experiment_reader = providers.Factory(ExperimentResolver, reader=experiment_files)
    report_writer: providers.Singleton[ReportWriter] = providers.Singleton(
        adapter("ssvae.adapters.reporting.writer:FileReportWriter")
    )

    # Active learning: training runs and simulated-oracle experiment reports.
    training_lock: providers.Singleton[TrainingLock] = providers.Singleton(
        adapter("ssvae.adapters.workspace_files:FileTrainingLock")
    )
    # Several processes on JAX's distributed runtime (`ssvae train --coordinator ...`).
    distributed_runtime: providers.Singleton[DistributedRuntime] = providers.Singleton(
        adapter("ssvae.adapters.model.distributed:JaxDistributedRuntime")
    )
    learning_curve_writer: providers.Singleton[LearningCurveWriter] = providers.Singleton(
        adapter("ssvae.adapters.reporting.learning_curves:FileLearningCurveWriter")
    )

    # Application services.
    dataset_service = providers.Factory(DatasetService, source=data_source)
    label_service = providers.Factory(LabelService, store=label_store)
    label_exchange = providers.Factory(
        LabelExchange,
        service=label_service,
        codecs=label_file_codecs,
        valid_serials=valid_serials,
    )
    compare_service = providers.Factory(
        CompareService,
        source=data_source,
        repository=model_repository,
        generator=model_generator,
        writer=report_writer,
        relay=training_relay,
    )
    query_service = providers.Factory(
        QueryService, repository=model_repository, workspaces=workspace_service
    )
    # The pool's 2-D map: laid out once per trained model by the projector, kept in the
    # workspace by the cache (`ssvae map`, the dashboard).
    map_projector: providers.Singleton[MapProjector] = providers.Singleton(
        adapter("ssvae.adapters.maps:OpenTsneProjector")
    )
    map_cache: providers.Singleton[MapCache] = providers.Singleton(
        adapter("ssvae.adapters.maps:NpzMapCache")
    )
    prediction_cache: providers.Singleton[PredictionCache] = providers.Singleton(
        adapter("ssvae.adapters.maps:NpzPredictionCache")
    )
    map_table_writer: providers.Singleton[MapTableWriter] = providers.Singleton(
        adapter("ssvae.adapters.maps:MapTableFile")
    )
    map_service = providers.Factory(
        MapService,
        repository=model_repository,
        workspaces=workspace_service,
        projector=map_projector,
        cache=map_cache,
        prediction_cache=prediction_cache,
    )
    # A singleton: it keeps each workspace's model loaded, so the next round is incremental.
    train_service = providers.Singleton(
        TrainService,
        repository=model_repository,
        workspaces=workspace_service,
        relay=training_relay,
        lock=training_lock,
        runtime=distributed_runtime,
    )
    simulate_service = providers.Factory(
        SimulateService,
        source=data_source,
        repository=model_repository,
        writer=learning_curve_writer,
    )

    # Text: `ssvae embed` writes a file's messages as vectors (imported on first use).
    embed_text_file: providers.Object[TextFileEmbedder] = providers.Object(
        adapter("ssvae.adapters.text.embed_file:embed_text_file")
    )

    # `--set NAME=VALUE` texts as spec overrides, read as YAML within the files' limits.
    spec_assignments: providers.Object[Callable[[Sequence[str]], dict[str, Any]]] = (
        providers.Object(adapter("ssvae.adapters.yaml.spec:parse_assignments"))
    )

    # The dashboard's spec form: a YAML text as a spec, errors naming the line.
    dashboard_spec_from_yaml: providers.Object[Callable[[str, str], ModelSpec]] = providers.Object(
        adapter("ssvae.adapters.yaml.spec:spec_from_yaml")
    )
