"""The library entry point: build the application from settings, or for one model workspace.

from ssvae.application.bootstrap import bootstrap, open_workspace
from ssvae.application.settings import AppSettings, LabelSettings

app = bootstrap(AppSettings(labels=LabelSettings(path="labels.csv")))
app.dataset_service().describe()

opened = open_workspace("my-model", artifacts_dir="artifacts")
opened.app.label_service().counts()   # labels of that workspace's pool only

`open_workspace` is the one way to compose a workspace's container: the CLI, the dashboard and
library users all call it, so a workspace's labels, pool and dataset are the same whichever
door it is opened through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from ssvae.application.container import Container
from ssvae.application.settings import AppSettings
from ssvae.application.workspace import read_workspace, workspace_settings
from ssvae.domain.workspace import MODELS_DIR, Workspace

DEFAULT_ARTIFACTS = Path("artifacts")


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
class WorkspaceApp:
    """A model workspace and the container that serves it."""

    app: Container
    workspace: Workspace


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
