"""The library entry point: build the application from settings, or for one model workspace.

from ssvae.application.bootstrap import bootstrap, open_workspace
from ssvae.application.settings import AppSettings, LabelSettings

app = bootstrap(AppSettings(labels=LabelSettings(path="labels.csv")))
app.dataset_service().describe()

opened = open_workspace("my-model", artifacts_dir="artifacts")
opened.app.label_service().counts()   # labels of that workspace's pool only
opened.services().labels.counts()     # the same, through the typed bundle a front end keeps

`open_workspace` is the one way to compose a workspace's container: the CLI, the dashboard and
library users all call it, so a workspace's labels, pool and dataset are the same whichever
door it is opened through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from ssvae.application.container import Container
from ssvae.application.labeling import LabelService
from ssvae.application.maps import MapService
from ssvae.application.query import QueryService
from ssvae.application.settings import DEFAULT_ARTIFACTS, AppSettings
from ssvae.application.training import TrainService
from ssvae.application.workspace import WorkspaceService, read_workspace, workspace_settings
from ssvae.domain.comparison import ModelGenerator
from ssvae.domain.data import DatasetInfo
from ssvae.domain.ports import LabelStore
from ssvae.domain.spec import ModelSpec
from ssvae.domain.workspace import MODELS_DIR, Workspace


def bootstrap(settings: AppSettings | None = None) -> Container:
    """A container configured from `settings` (defaults: embedded MNIST, labels.csv)."""
    return configure(Container(), settings or AppSettings())


def configure(
    container: Container, settings: AppSettings, workspace: Workspace | None = None
) -> Container:
    """`container` configured from `settings`, serving `workspace` when one is given.

    Call it before the container builds anything that reads the configuration (a data source,
    a label store): providers built earlier keep the values they were built with. Overrides
    (tests' fakes) are kept.
    """
    container.config.from_dict({**settings.as_config(), "workspace": workspace})
    return container


AppFactory = Callable[[AppSettings], Container]


@attrs.frozen
class WorkspaceServices:
    """The services that serve one open workspace, resolved once from its container: a front
    end that keeps them (the dashboard keeps one per open model) never looks a service up by
    name, and mypy sees each one's type."""

    workspaces: WorkspaceService
    labels: LabelService
    query: QueryService
    train: TrainService
    generator: ModelGenerator
    label_store: LabelStore
    info: DatasetInfo
    maps: MapService


@attrs.frozen
class WorkspaceApp:
    """A model workspace and the container that serves it."""

    app: Container
    workspace: Workspace

    def services(self) -> WorkspaceServices:
        """Every service of the workspace, built now (the data source, the label store and
        the model repository among them)."""
        app = self.app
        return WorkspaceServices(
            workspaces=app.workspace_service(),
            labels=app.label_service(),
            query=app.query_service(),
            train=app.train_service(),
            generator=app.model_generator(),
            label_store=app.label_store(),
            info=app.dataset_service().describe(),
            maps=app.map_service(),
        )


@attrs.frozen
class CatalogServices:
    """What a front end needs before any workspace is open: the workspaces of the configured
    dataset (list, create, clone) and the reader of a spec typed as YAML."""

    workspaces: WorkspaceService
    spec_from_yaml: Callable[[str, str], ModelSpec]


def open_catalog(settings: AppSettings, make_app: AppFactory | None = None) -> CatalogServices:
    """The catalog of workspaces under `settings`' artifacts folder, on its dataset."""
    app = (make_app or bootstrap)(settings)
    return CatalogServices(app.workspace_service(), app.dashboard_spec_from_yaml())


def open_workspace(
    model: Path | str,
    artifacts_dir: Path | str = DEFAULT_ARTIFACTS,
    make_app: AppFactory | None = None,
) -> WorkspaceApp:
    """The container serving the workspace in `model` (a folder, or an id under
    `artifacts_dir/models/`): the workspace's dataset, its labels file, and labels valid only
    for serials of its pool.

    One container: its workspace store reads the workspace (it needs no configuration), then
    it is configured from what the workspace records, before it builds any data source.
    `make_app` builds that container (default `bootstrap`; tests pass one with fakes).
    WorkspaceError when `model` is no workspace.
    """
    artifacts = Path(artifacts_dir)
    app = (make_app or bootstrap)(AppSettings(artifacts_dir=artifacts))
    workspace = read_workspace(app.workspace_store(), artifacts / MODELS_DIR, model)
    configure(app, workspace_settings(workspace, artifacts), workspace)
    return WorkspaceApp(app, workspace)
