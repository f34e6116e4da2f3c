"""The active-learning commands: `ssvae init`, `ssvae query`, `ssvae train`, `ssvae simulate`.

Importing this module is cheap: the container, JAX and matplotlib load inside the commands.
"""

from __future__ import annotations

import functools
import json
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ssvae.domain.spec import PRESETS  # cheap: attrs only
from ssvae.entrypoints.compare_cli import echo_dataset_lines, expand_multi_value_options
from ssvae.entrypoints.options import DATA_OPTION_NAMES, data_options, default_preset

if TYPE_CHECKING:  # the container loads inside the commands, to keep this import cheap
    from ssvae.application.container import Container
    from ssvae.domain.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])

PRESET_NAMES = tuple(PRESETS)
# Kept in step with ssvae.application.query.QUERY_POLICIES (a test checks): listed here so
# that --help needs no import of the application.
POLICY_NAMES = (
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "tau_ood",
    "novelty",
    "bald",
    "elbo",
    "kcenter",
    "diverse_margin",
    "diverse_entropy",
    "cold_start",
    "typiclust",
    "typiclust_margin",
)
SIMULATE_MULTI_VALUE_OPTIONS = ("--policies", "--seeds")
DEFAULT_ARTIFACTS = Path("artifacts")


class _SimulateCommand(click.Command):
    """`--policies margin random --seeds 0 1 2`: these options take every following word."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(
            ctx, expand_multi_value_options(args, SIMULATE_MULTI_VALUE_OPTIONS)
        )


def _split_words(_: click.Context, __: click.Parameter, values: Sequence[str]) -> tuple[str, ...]:
    """Values given as separate words or comma-separated."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _split_seeds(_: click.Context, __: click.Parameter, values: Sequence[str]) -> tuple[int, ...]:
    seeds = []
    for word in _split_words(_, __, values):
        if not word.isdigit():
            raise click.BadParameter(f"{word!r} is not a seed: seeds are integers >= 0")
        seeds.append(int(word))
    return tuple(seeds)


def _check_assignments(texts: Sequence[str]) -> None:
    """`--set NAME=VALUE` texts must have a name; the container's `spec_assignments` reads the
    values (as YAML: [64], 0.1) once the app is built."""
    for text in texts:
        name, sep, _ = text.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"{text[:80]!r} is invalid: write NAME=VALUE, e.g. --set batch_size=64",
                param_hint="--set",
            )


def _artifacts_option(command: F) -> F:
    return click.option(
        "--artifacts",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_ARTIFACTS,
        show_default=True,
        help="The artifacts folder: workspaces in models/, experiments in experiments/.",
    )(command)


def _stopping_options(command: F) -> F:
    """The stopping criteria to check; each is off unless given (kappa and tau have defaults)."""
    options = [
        click.option("--budget", type=click.IntRange(min=1), help="Label budget."),
        click.option("--max-rounds", type=click.IntRange(min=1), help="Maximum rounds."),
        click.option(
            "--kappa-threshold",
            type=click.FloatRange(-1, 1),
            default=0.99,
            show_default=True,
            help="Stable predictions: mean Cohen's kappa between consecutive rounds' "
            "stop-set predictions at least this.",
        ),
        click.option(
            "--kappa-window",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Consecutive-round pairs the kappa is averaged over.",
        ),
        click.option(
            "--tau-tolerance",
            type=click.FloatRange(min=0),
            default=0.02,
            show_default=True,
            help="Stable tau: the component-to-label map moved at most this in the last round.",
        ),
        click.option(
            "--tau-measure",
            type=click.Choice(["max_abs", "mean_tv"]),
            default="max_abs",
            show_default=True,
            help="How tau's change is measured: largest entry change or mean total variation.",
        ),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def _stopping_rule(options: dict[str, Any]) -> Any:
    from ssvae.domain.stopping import StoppingRule

    return StoppingRule(
        budget=options.pop("budget"),
        max_rounds=options.pop("max_rounds"),
        kappa_threshold=options.pop("kappa_threshold"),
        kappa_window=options.pop("kappa_window"),
        tau_tolerance=options.pop("tau_tolerance"),
        tau_measure=options.pop("tau_measure"),
    )


def _stopping_json(decision: Any) -> dict[str, Any]:
    return {
        "stop": decision.stop,
        "reasons": list(decision.reasons),
        "kappa": decision.kappa,
        "tau_change": decision.tau_change,
    }


def _echo_stopping(decision: Any, rounds: int) -> None:
    """Which stopping criteria hold, with the stability figures known so far."""
    kappa = "n/a" if decision.kappa is None else f"{decision.kappa:.4f}"
    tau = "n/a" if decision.tau_change is None else f"{decision.tau_change:.4g}"
    click.echo(f"stopping after {rounds} round(s): mean kappa {kappa}, tau change {tau}")
    if decision.reasons:
        for reason in decision.reasons:
            click.echo(f"  met: {reason}")
    else:
        click.echo("  no stopping criterion met")


def workspace_app(
    model: Path | str, artifacts: Path = DEFAULT_ARTIFACTS
) -> tuple[Container, Workspace]:
    """(container, workspace) for the workspace in `model` (a folder or an id under artifacts),
    composed by `open_workspace` as the dashboard's are."""
    from ssvae.application.bootstrap import open_workspace

    opened = open_workspace(model, artifacts)
    return opened.app, opened.workspace


def _model_option(command: F) -> F:
    return click.option(
        "--model",
        "model",
        required=True,
        metavar="DIR",
        help="The model workspace: its folder, or its id under ARTIFACTS/models/.",
    )(command)


@click.command("init")
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    help="The model preset; spec.yaml in the workspace can be edited before training. "
    "[default: mixture_k10; text_mixture_k20 for text datasets]",
)
@data_options
@click.option("--id", "workspace_id", help="The workspace's name: 1-64 letters, digits, _ or -.")
@_artifacts_option
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
    metavar="NAME=VALUE",
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
    from ssvae.entrypoints.cli import _data_settings

    _check_assignments(assignments)
    data = _data_settings(options)
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


def _row_json(row: Any) -> dict[str, Any]:
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
@_model_option
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
@_artifacts_option
@_stopping_options
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
    rule = _stopping_rule(options)
    app, workspace = workspace_app(model, artifacts)
    batch = app.query_service().next_batch(workspace, app.label_store(), policy, k, seed)
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
            "stopping": _stopping_json(decision),
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
    _echo_stopping(decision, len(workspace.metadata.rounds))


class _EpochPrinter:
    """A TrainingCallback that prints one line per finished epoch on stderr."""

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing: one line per epoch is enough in a terminal or a log."""

    def on_epoch_end(self, record: Any) -> None:
        metrics = record.metrics
        shown = "  ".join(
            f"{name} {metrics[name]:.4g}"
            for name in ("loss", "val_loss", "val_accuracy")
            if name in metrics
        )
        click.echo(f"epoch {record.epoch}: {shown}", err=True)

    def on_train_end(self, report: Any) -> None:
        """Nothing: the command prints the outcome."""


@click.command("train")
@_model_option
@click.option(
    "--epochs", type=click.IntRange(min=1), required=True, help="Epochs to train in this round."
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start again from a new model (spec.yaml) instead of continuing the saved one: "
    "with few labels a continued model can stay locked to its first class assignment.",
)
@_artifacts_option
@_stopping_options
def train(model: str, epochs: int, fresh: bool, artifacts: Path, **options: Any) -> None:
    """Continue training the workspace's model on its current labels (one round).

    \b
    Example:
      ssvae train --model artifacts/models/ID --epochs 5
    The checkpoint, history.csv and metadata.json are updated; the stopping criteria are
    checked after the round.
    """
    rule = _stopping_rule(options)
    app, workspace = workspace_app(model, artifacts)
    outcome = app.train_service().train(
        workspace, epochs, app.label_store(), listener=_EpochPrinter(), rule=rule, fresh=fresh
    )
    report = outcome.report
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
    _echo_stopping(outcome.stopping, len(outcome.workspace.metadata.rounds))
    if report.stop_reason == "interrupted":
        sys.exit(130)


class _RoundPrinter:
    """Shows an experiment's progress on stderr: stages, runs and one line per round."""

    def stage(self, text: str) -> None:
        click.echo(f"{text}...", err=True)

    def run_started(self, policy: str, seed: int, index: int, total: int) -> None:
        click.echo(f"run {index + 1}/{total}: {policy}, seed {seed}", err=True)

    def round_finished(self, policy: str, seed: int, result: Any) -> None:
        met = f"; met: {', '.join(r.split(':')[0] for r in result.stop_reasons)}"
        click.echo(
            f"  round {result.round}: {result.labels} labels, test accuracy "
            f"{100 * result.accuracy:.1f}%{met if result.stop_reasons else ''}",
            err=True,
        )


@click.command("simulate", cls=_SimulateCommand)
@click.option(
    "--policies",
    multiple=True,
    callback=_split_words,
    metavar="NAME...",
    help=f"Policies to compare: {', '.join(POLICY_NAMES)}. [default: margin random]",
)
@click.option(
    "--seeds",
    multiple=True,
    callback=_split_seeds,
    metavar="SEED...",
    help="Seeds: each gives other initial labels and model initialisation. [default: 0]",
)
@click.option(
    "--initial-labels",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Labels at the start, balanced over classes (0: cold start).",
)
@click.option(
    "--rounds", type=click.IntRange(min=0), default=5, show_default=True, help="Query rounds."
)
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Labels per round."
)
@click.option(
    "--epochs-per-round",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Epochs of training after each round's labels.",
)
@click.option(
    "--retrain",
    type=click.Choice(["warm", "scratch"]),
    default="warm",
    show_default=True,
    help="warm: continue the last round's model; scratch: a fresh model every round "
    "(slower, but does not lock into the first rounds' classes).",
)
@click.option(
    "--initial-epochs",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Epochs on the initial labels before the first query.",
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=0),
    default=5000,
    show_default=True,
    help="Pool size: a stratified subset of the train split (0: all of it).",
)
@click.option(
    "--num-test",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="Test samples accuracy is measured on (0: the whole test split).",
)
@click.option(
    "--data-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the pool and test subsets (the same for every run).",
)
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    help="The model preset. [default: mixture_k10; text_mixture_k20 for text datasets]",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="Model spec field over the preset, e.g. --set batch_size=64 (repeatable).",
)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="The accuracy the report looks for (labels needed to reach it).",
)
@click.option(
    "--stop-set-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Pool samples whose predictions the kappa criterion compares between rounds.",
)
@data_options
@_artifacts_option
@_stopping_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def simulate(
    policies: tuple[str, ...],
    seeds: tuple[int, ...],
    assignments: tuple[str, ...],
    artifacts: Path,
    as_json: bool,
    **options: Any,
) -> None:
    """Simulated-oracle experiment: policies against each other, true labels as the oracle.

    \b
    Example:
      ssvae simulate --policies margin random --seeds 0 1 2 --initial-labels 10 \\
          --rounds 19 --k 10 --epochs-per-round 3 --num-samples 0 --num-test 0
    Writes learning_curves.png/.csv/.json and REPORT.md (area under the learning curve per
    policy) to ARTIFACTS/experiments/<timestamp>/. Ctrl-C stops the current run and still
    writes the report.
    """
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings
    from ssvae.domain.simulation import SimulationSettings, conclusions, summarise
    from ssvae.entrypoints.cli import _data_settings

    rule = _stopping_rule(options)
    data = _data_settings({key: options.pop(key) for key in DATA_OPTION_NAMES})
    options["preset"] = options.get("preset") or default_preset(data)
    _check_assignments(assignments)
    app = bootstrap(AppSettings(data=data, artifacts_dir=artifacts))
    echo_dataset_lines(app.dataset_service().describe())
    settings = SimulationSettings(
        policies=policies or ("margin", "random"),
        seeds=seeds or (0,),
        overrides=app.spec_assignments()(assignments),
        dataset=data.name,
        stopping=rule,
        out=str(artifacts / "experiments"),
        command=shlex.join(["ssvae", *sys.argv[1:]]) if sys.argv else "",
        **options,
    )
    try:
        run = app.simulate_service().run(settings, _RoundPrinter())
    except KeyboardInterrupt:
        click.echo("\ninterrupted before any report was written", err=True)
        sys.exit(130)
    summaries = summarise(run.result)
    report = run.directory / "REPORT.md"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "directory": str(run.directory),
                    "interrupted": run.interrupted,
                    "policies": [
                        {
                            "policy": s.policy,
                            "seeds": list(s.seeds),
                            "aulc_mean": s.aulc_mean if s.aulc else None,
                            "aulc_std": s.aulc_std if s.aulc else None,
                            "labels": list(s.labels),
                            "mean_accuracy": list(s.mean_accuracy),
                            "labels_to_target": s.labels_to_target,
                            "first_stops": dict(s.first_stops),
                        }
                        for s in summaries
                    ],
                },
                indent=2,
            )
        )
    else:
        for summary in summaries:
            if summary.aulc:
                click.echo(
                    f"{summary.policy}: AULC {summary.aulc_mean:.4f} +- {summary.aulc_std:.4f} "
                    f"over {len(summary.seeds)} seed(s), final accuracy "
                    f"{100 * summary.final_accuracy:.1f}% with {summary.labels[-1]} labels"
                )
        for line in conclusions(summaries, settings.target_accuracy):
            click.echo(line)
        click.echo(f"report: {report}")
    if run.interrupted:
        click.echo(f"interrupted: partial report written to {report}", err=True)
        sys.exit(130)
