"""The library entry point: build the application from settings.

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, LabelSettings

app = bootstrap(AppSettings(labels=LabelSettings(path="labels.csv")))
app.dataset_service().describe()
"""

from __future__ import annotations

from ssvae.application.container import Container
from ssvae.application.settings import AppSettings


def bootstrap(settings: AppSettings | None = None) -> Container:
    """A container configured from `settings` (defaults: embedded MNIST, labels.csv)."""
    container = Container()
    container.config.from_dict((settings or AppSettings()).as_config())
    return container
