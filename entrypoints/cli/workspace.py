"""The workspace commands: `ssvae init`, `ssvae query` and `ssvae train`.

Importing this module is cheap: the container, JAX and matplotlib load inside the commands.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ssvae.application.settings import DEFAULT_ARTIFACTS  # cheap: attrs only
from ssvae.domain.policies import POLICY_NAMES  # cheap: attrs only
from ssvae.entrypoints.cli.options import (
    PRESET_NAMES,
    artifacts_option,
    cluster_settings,
    data_options,
    data_settings,
    default_preset,
    distributed_options,
    model_option,
    stopping_options,
    stopping_rule,
)
from ssvae.entrypoints.cli.printers import echo_dataset_lines, echo_stopping, stopping_json

if TYPE_CHECKING:  # the container loads inside the commands, to keep this import cheap
    from ssvae.application.container import Container
    from ssvae.application.query import QueryRow
    from ssvae.domain.model import EpochRecord, TrainingReport
    from ssvae.domain.workspace import Workspace


def workspace_app(
    model: Path | str, artifacts: Path = DEFAULT_ARTIFACTS
) -> tuple[Container, Workspace]:
    """(container, workspace) for the workspace in `model` (a folder or an id under artifacts),
    composed by `open_workspace` as the dashboard's are."""
    from ssvae.application.bootstrap import open_workspace

    opened = open_workspace(model, artifacts)
    return opened.app, opened.workspace


@click.command("init")
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    help="The model preset; spec.yaml in the workspace can be edited before training. "
    "[default: mixture_k10; text_mixture_k20 for text datasets]",
)
@data_options
@click.option("--id", "workspace_id", help="The workspace's name: 1-64 letters, digits, _ or -.")
@artifacts_option
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    help="Make the pool a seeded random subset of this many training samples (default: all).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the pool."
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model spec field over the preset, e.g. --set max_epochs=30 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def init(
    preset: str | None,
    workspace_id: str | None,
    artifacts: Path,
    num_samples: int | None,
    seed: int,
    assignments: tuple[str, ...],
    as_json: bool,
    **options: Any,
) -> None:
    """Create a model workspace: spec, labels, checkpoint and history in one folder.

    \b
    Examples:
      ssvae init --preset mixture_k10 --dataset mnist --num-samples 5000
      ssvae init --dataset loghub --task system --preset text_standard
      ssvae init --input messages.csv --label-column category --embedder tfidf
    The workspace goes to ARTIFACTS/models/<id>/ (for text, with the fitted embedder in
    embedder/); then label, train and query it:
      ssvae label --model DIR set 3 17 --class 7
      ssvae train --model DIR --epochs 5
      ssvae query --model DIR --policy margin --k 20
    """
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings

    data = data_settings(options)
    preset = preset or default_preset(data)
    app = bootstrap(AppSettings(data=data, artifacts_dir=artifacts))
    overrides = app.spec_assignments()(assignments)
    echo_dataset_lines(app.dataset_service().describe())
    workspace = app.workspace_service().init(
        preset, data, workspace_id, num_samples=num_samples, seed=seed, overrides=overrides
    )
    metadata = workspace.metadata
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": workspace.id,
                    "directory": str(workspace.directory),
                    "preset": metadata.preset,
                    "dataset": metadata.dataset["name"],
                    "pool_size": metadata.pool_size,
                },
                indent=2,
            )
        )
        return
    pool = f"a seeded subset of {metadata.pool_size}" if metadata.subset else "all"
    click.echo(
        f"created workspace {workspace.directory} (preset {preset}, dataset "
        f"{metadata.dataset['name']}, pool: {pool} training samples)"
    )
    click.echo(f"next: ssvae query --model {workspace.directory} --policy cold_start --k 20")


def _row_json(row: QueryRow) -> dict[str, Any]:
    score = row.score if math.isfinite(row.score) else None
    return {
        "serial": row.serial,
        "score": score,
        "predicted": row.predicted,
        "certainty": row.certainty,
        **({} if row.text is None else {"text": row.text}),
    }


# A message longer than this is cut (with an ellipsis) in the table; --json keeps it whole.
TEXT_COLUMN_WIDTH = 100


def _one_line(text: str, width: int = TEXT_COLUMN_WIDTH) -> str:
    """`text` on one line (whitespace runs as single spaces), cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"


@click.command("query")
@model_option
@click.option(
    "--policy",
    type=click.Choice(POLICY_NAMES),
    default="margin",
    show_default=True,
    help="The acquisition policy.",
)
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True, help="Batch size.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the random, k-center and cold-start choices and of bald's and elbo's z draws.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@artifacts_option
@stopping_options
@distributed_options
def query(
    model: str, policy: str, k: int, seed: int, as_json: bool, artifacts: Path, **options: Any
) -> None:
    """Print the next K samples to label: serial, score and predicted class.

    \b
    Example:
      ssvae query --model artifacts/models/ID --policy margin --k 20
    Before the first `ssvae train` the model is a fresh one from spec.yaml: use
    --policy cold_start or random then. The stopping criteria are checked on the rounds
    trained so far.
    """
    rule = stopping_rule(options)
    cluster = cluster_settings(options)
    app, workspace = workspace_app(model, artifacts)
    # With several processes each scores its part of the pool and all get every score.
    place = app.distributed_runtime().start(cluster)
    batch = app.query_service().next_batch(workspace, app.label_store(), policy, k, seed)
    if not place.writes:
        return  # process 0 prints the batch
    decision = app.workspace_service().stopping(workspace, rule)
    if as_json:
        document = {
            "model": str(workspace.directory),
            "policy": batch.policy,
            "k": batch.k,
            "labels": batch.labels,
            "pool_size": batch.pool_size,
            "trained": batch.trained,
            "rounds": len(workspace.metadata.rounds),
            "rows": [_row_json(row) for row in batch.rows],
            "stopping": stopping_json(decision),
        }
        click.echo(json.dumps(document, indent=2))
        return
    if not batch.trained:
        click.echo("note: the model is not trained yet; scores come from a fresh model", err=True)
    has_text = any(row.text is not None for row in batch.rows)
    width = max([len("predicted"), *(len(row.predicted) for row in batch.rows)])
    header = f"{'serial':>8}  {'score':>10}  {'predicted':<{width}}"
    click.echo(f"{header}  text" if has_text else header.rstrip())
    for row in batch.rows:
        line = f"{row.serial:>8}  {row.score:>10.4f}  {row.predicted:<{width}}"
        click.echo(f"{line}  {_one_line(row.text or '')}" if has_text else line.rstrip())
    click.echo(
        f"{len(batch.rows)} of {batch.pool_size - batch.labels} unlabelled samples by "
        f"{batch.policy}; {batch.labels} labels so far"
    )
    echo_stopping(decision, len(workspace.metadata.rounds))


class _EpochPrinter:
    """A TrainingCallback that prints one line per finished epoch on stderr."""

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing: one line per epoch is enough in a terminal or a log."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        metrics = record.metrics
        shown = "  ".join(
            f"{name} {metrics[name]:.4g}"
            for name in ("loss", "val_loss", "val_accuracy")
            if name in metrics
        )
        click.echo(f"epoch {record.epoch}: {shown}", err=True)

    def on_train_end(self, report: TrainingReport) -> None:
        """Nothing: the command prints the outcome."""


@click.command("train")
@model_option
@click.option(
    "--epochs", type=click.IntRange(min=1), required=True, help="Epochs to train in this round."
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start again from a new model (spec.yaml) instead of continuing the saved one: "
    "with few labels a continued model can stay locked to its first class assignment.",
)
@artifacts_option
@stopping_options
@distributed_options
def train(model: str, epochs: int, fresh: bool, artifacts: Path, **options: Any) -> None:
    """Continue training the workspace's model on its current labels (one round).

    \b
    Example:
      ssvae train --model artifacts/models/ID --epochs 5
    The checkpoint, history.csv and metadata.json are updated; the stopping criteria are
    checked after the round. Several processes train one model together when started with
    --coordinator/--num-processes/--process-id or --cluster (docs/SCALING.md).
    """
    rule = stopping_rule(options)
    cluster = cluster_settings(options)
    app, workspace = workspace_app(model, artifacts)
    place = app.distributed_runtime().start(cluster)  # before any JAX computation
    outcome = app.train_service().train(
        workspace, epochs, app.label_store(), listener=_EpochPrinter(), rule=rule, fresh=fresh
    )
    report = outcome.report
    if not place.writes:
        click.echo(
            f"process {place.index} of {place.count}: trained {report.epochs_run} epoch(s) "
            f"({report.stop_reason}, {report.seconds:.1f} s); process 0 writes the workspace"
        )
        return
    if outcome.restarted_for_classes is not None:
        before, now = outcome.restarted_for_classes
        click.echo(
            f"the labels have {now} classes, the saved model {before}: a new model was "
            "trained for them all"
        )
    click.echo(
        f"round {outcome.round.index}: trained {report.epochs_run} epoch(s) on "
        f"{outcome.round.labels_used} labels ({report.stop_reason}, {report.seconds:.1f} s); "
        f"checkpoint {outcome.workspace.checkpoint_dir}"
    )
    if report.message:
        click.echo(report.message)
    echo_stopping(outcome.stopping, len(outcome.workspace.metadata.rounds))
    if report.stop_reason == "interrupted":
        sys.exit(130)
