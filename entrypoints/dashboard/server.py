# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Start the Panel server: one hub for the whole server, one app per browser session."""

from __future__ import annotations

import ipaddress
import secrets
import time
from pathlib import Path
from typing import Any

import holoviews as hv
import panel as pn

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings
from ssvae.entrypoints.dashboard.app import TITLE, ModelApp, session
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    settings: AppSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 5006,
    model_dir: Path | None = None,
    show: bool = False,
    password: str | None = None,
    echo: Any = print,
) -> None:
    """Serve the dashboard until interrupted. With `model_dir`, its map is computed before
    the server listens, so the first page is quick."""
    hv.extension("bokeh", logo=False)
    pn.extension(notifications=False)
    hub = DashboardHub(settings, bootstrap)
    if model_dir is not None:
        started = time.perf_counter()
        model = hub.open_directory(model_dir)
        model.warm()
        ModelApp(hub, model)  # builds every page once: the first visitor waits for no import
        echo(
            f"model {model.id}: {len(model.pool())} samples mapped in "
            f"{time.perf_counter() - started:.1f} s"
        )
    origins = [f"{host}:{port}"] + ([f"localhost:{port}"] if is_loopback(host) else [])
    options: dict[str, Any] = {}
    if password is not None:
        options.update(basic_auth=password, cookie_secret=secrets.token_hex(32))
    server = pn.serve(
        {"/": lambda: session(hub, model_dir)},
        port=port,
        address=host,
        websocket_origin=origins,
        show=False,
        start=False,
        title=TITLE,
        **options,
    )
    echo(f"dashboard ready at http://{host}:{server.port}/ (Ctrl-C stops it)")
    if show:
        server.io_loop.add_callback(server.show, "/")
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        echo("dashboard stopped")
