"""The `ssvae` group: every command, and one line on stderr for a user's error.

Each command parses its input, calls one application service and renders the result.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.cli.compare import compare
from ssvae.entrypoints.cli.embed import embed
from ssvae.entrypoints.cli.label import label
from ssvae.entrypoints.cli.map import map_command
from ssvae.entrypoints.cli.options import data_app, data_options
from ssvae.entrypoints.cli.simulate import simulate
from ssvae.entrypoints.cli.workspace import init, query, train
from ssvae.entrypoints.dashboard.cli import dashboard


class SsvaeGroup(click.Group):
    """A group that turns user errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SsvaeError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=SsvaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ssvae-al", prog_name="ssvae")
def main() -> None:
    """Active learning with a semi-supervised VAE: train, compare, query and label."""


@main.group()
def data() -> None:
    """Inspect datasets."""


@data.command("describe")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def data_describe(as_json: bool, **options: Any) -> None:
    """Load every split of a dataset and summarise it (checks the whole data path)."""
    summary = data_app(options).dataset_service().summarise()
    info = summary.info
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": info.name,
                    "sample_shape": list(info.sample_shape),
                    "classes": list(info.vocabulary.names),
                    "sources": list(info.sources),
                    "notes": list(info.notes),
                    "splits": [
                        {
                            "split": s.split,
                            "samples": s.samples,
                            "min": s.value_min,
                            "max": s.value_max,
                            "mean": s.value_mean,
                            "class_counts": s.class_counts,
                        }
                        for s in summary.splits
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"dataset {info.name}: samples of shape {info.sample_shape}, "
        f"{len(info.vocabulary)} classes ({', '.join(info.vocabulary.names)})"
    )
    for source in info.sources:
        click.echo(f"  files  {source}")
    for note in info.notes:  # e.g. a tfidf width narrowed to what a small file allows
        click.echo(f"  note   {note}")
    for split in summary.splits:
        click.echo(
            f"  {split.split:<6} {split.samples:>7} samples, values in "
            f"[{split.value_min:.3f}, {split.value_max:.3f}], mean {split.value_mean:.4f}"
        )
        if split.class_counts:
            counts = "  ".join(f"{k}:{v}" for k, v in split.class_counts.items())
            click.echo(f"         per class  {counts}")


for command in (label, compare, init, query, train, simulate, embed, map_command, dashboard):
    main.add_command(command)
