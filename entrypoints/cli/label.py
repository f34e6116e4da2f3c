"""`ssvae label`: set, unset, undo, import, export and show labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ssvae.domain.errors import LabelError
from ssvae.domain.serials import MAX_SERIAL_DIGITS
from ssvae.entrypoints.cli.options import data_app, data_options
from ssvae.entrypoints.cli.workspace import workspace_app

if TYPE_CHECKING:  # the container is imported when a command runs, so --help stays quick
    from ssvae.application.container import Container


class SerialType(click.ParamType[int]):
    """A serial on the command line: digits, at most as long as an int64. A bad one is a
    LabelError (one line), where click's int would echo a 5,000-digit argument in full."""

    name = "serial"
    max_digits = MAX_SERIAL_DIGITS

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip()
        if not text.isascii() or not text.isdigit():
            raise LabelError(f"{text[:30]!r} is not a serial: serials are non-negative integers")
        if len(text.lstrip("0")) > self.max_digits:
            raise LabelError(
                f"serial {text[:20]}... has {len(text)} digits; serials have at most "
                f"{self.max_digits}: give the serial of a sample of the dataset"
            )
        return int(text)


SERIAL = SerialType()


@click.group()
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("labels.csv"),
    show_default=True,
    help="The label store: a .csv (Serial,label) or .parquet file.",
)
@click.option(
    "--model",
    "model_dir",
    metavar="DIR",
    help="A model workspace (ssvae init): use its label store, dataset and pool instead of "
    "--labels and the dataset options.",
)
@data_options
@click.pass_context
def label(ctx: click.Context, /, labels_path: Path, model_dir: str | None, **options: Any) -> None:
    """Set, unset, undo, import and export labels."""
    if model_dir is None:
        ctx.obj = data_app(options, labels=labels_path)
        return
    flags = {param.name: param.opts[0] for param in ctx.command.params if param.name}
    given = [
        flag
        for name, flag in flags.items()
        if name != "model_dir"
        and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise click.UsageError(
            f"--model uses the workspace's labels and dataset; drop {', '.join(given)}"
        )
    ctx.obj = workspace_app(model_dir)[0]


@label.command("set")
@click.argument("serials", nargs=-1, type=SERIAL, required=True)
@click.option("--class", "class_name", required=True, help="The class name to give them.")
@click.option(
    "--new-class",
    is_flag=True,
    help="Create --class as a new class first (a class the dataset lacks); the vocabulary "
    "is stored beside the labels and the model grows its outputs at the next ssvae train.",
)
@click.pass_obj
def label_set(app: Container, serials: tuple[int, ...], class_name: str, new_class: bool) -> None:
    """Give SERIALS the class --class.

    \b
    Example, a message of a system the dataset has no class for:
      ssvae label --model DIR set 1234 --class NewSystem --new-class
    """
    labels = app.label_service().set(list(serials), class_name, source="cli", new_class=new_class)
    if new_class:
        click.echo(f"added class {class_name!r} ({len(labels.vocabulary)} classes in all)")
    click.echo(f"labelled {len(serials)} sample(s) as {class_name!r}; {len(labels)} labels in all")


@label.command("unset")
@click.argument("serials", nargs=-1, type=SERIAL, required=True)
@click.pass_obj
def label_unset(app: Container, serials: tuple[int, ...]) -> None:
    """Remove the labels of SERIALS."""
    labels = app.label_service().unset(list(serials), source="cli")
    click.echo(f"unlabelled {len(serials)} sample(s); {len(labels)} labels in all")


@label.command("undo")
@click.pass_obj
def label_undo(app: Container) -> None:
    """Undo the latest change not undone yet, whoever made it: a whole batch (one set or
    unset, one import, one group labelled in the dashboard) at once."""
    undone = app.label_service().undo(source="cli")
    serials = undone.serials()
    if not serials:
        click.echo("nothing to undo")
    elif len(serials) == 1:
        label = undone.labels.get(serials[0])
        state = "unlabelled" if label is None else repr(label)
        click.echo(f"undone: serial {serials[0]} is {state} again")
    else:
        click.echo(f"undone: {len(serials)} serials")


@label.command("import")
@click.argument("source_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--merge",
    is_flag=True,
    help="Only add and overwrite labels; keep labels the file does not list.",
)
@click.pass_obj
def label_import(app: Container, source_file: Path, merge: bool) -> None:
    """Make the store's labels those of SOURCE_FILE (.csv or .parquet), validated first."""
    labels = app.label_exchange().import_file(source_file, "import", keep_unlisted=merge)
    click.echo(f"imported {source_file}; {len(labels)} labels in all")


@label.command("export")
@click.argument("target_file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def label_export(app: Container, target_file: Path) -> None:
    """Write the current labels to TARGET_FILE (.csv or .parquet) atomically."""
    labels = app.label_exchange().export_file(target_file)
    click.echo(f"exported {len(labels)} labels to {target_file}")


@label.command("show")
@click.pass_obj
def label_show(app: Container) -> None:
    """Print the label counts per class."""
    service = app.label_service()
    counts = service.counts()
    click.echo(f"{sum(counts.values())} labels")
    for name, count in counts.items():
        click.echo(f"  {name}: {count}")
