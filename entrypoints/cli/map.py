"""`ssvae map`: the 2-D map of a workspace's trained model as a table, for notebooks and tests.

Importing this module is cheap: the container, JAX and openTSNE load inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ssvae.entrypoints.cli.options import artifacts_option, model_option
from ssvae.entrypoints.cli.workspace import workspace_app


@click.command("map")
@model_option
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Where to write serial, x, y per pool sample: Parquet, or CSV when FILE ends in .csv.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@artifacts_option
def map_command(model: str, out: Path, as_json: bool, artifacts: Path) -> None:
    """Write where every pool sample sits on the map of the trained model.

    \b
    Example:
      ssvae map --model artifacts/models/ID --out map.parquet
    The map is laid out once per trained model (t-SNE of the class probabilities and
    encodings), seeded by the spec's seed, and kept in the workspace, so the next call reads
    it back and the dashboard draws the same map.
    """
    app, workspace = workspace_app(model, artifacts)
    writer = app.map_table_writer()
    writer.check(out)  # before the layout: a bad --out costs no minutes
    layout = app.map_service().positions(workspace)
    writer.write(out, layout)
    if as_json:
        document = {
            "model": str(workspace.directory),
            "out": str(out),
            "rows": len(layout.serials),
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"wrote the map of {len(layout.serials)} pool samples to {out}")
