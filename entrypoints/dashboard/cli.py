"""`ssvae dashboard`: serve the Panel app (Panel is imported only when the command runs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.cli.options import artifacts_option, data_options, data_settings

PASSWORD_VARIABLE = "SSVAE_DASHBOARD_PASSWORD"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback is reachable from other machines.",
)
@click.option(
    "--port", default=5006, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Open this model workspace (artifacts/models/<id>) directly.",
)
@artifacts_option
@data_options
@click.option("--show", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--basic-auth",
    is_flag=True,
    help=f"Ask for a password (taken from ${PASSWORD_VARIABLE}) before showing any page.",
)
def dashboard(
    host: str,
    port: int,
    model_dir: Path | None,
    artifacts: Path,
    show: bool,
    basic_auth: bool,
    **data_values: Any,
) -> None:
    """Label in the latent space, follow the queue and train in the background (a web page).

    The data options choose what models created on the start page learn from, e.g.
    `--dataset loghub --task system` or `--dataset text --input messages.csv`.
    """
    from ssvae.application.settings import AppSettings
    from ssvae.entrypoints.dashboard.server import is_loopback, serve

    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: other machines can reach the dashboard"
            + ("" if basic_auth else "; consider --basic-auth"),
            err=True,
        )
    password = None
    if basic_auth:
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise SsvaeError(
                f"--basic-auth needs a password: set the environment variable {PASSWORD_VARIABLE}"
            )
    settings = AppSettings(data=data_settings(data_values), artifacts_dir=artifacts)
    echo: Any = lambda text: click.echo(text, err=False)  # noqa: E731
    serve(
        settings, host=host, port=port, model_dir=model_dir, show=show, password=password, echo=echo
    )
