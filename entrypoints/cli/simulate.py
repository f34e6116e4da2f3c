"""`ssvae simulate`: policies against each other, with the true labels as the oracle.

Importing this module is cheap: the container, JAX and matplotlib load inside the command.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ssvae.domain.policies import POLICY_NAMES  # cheap: attrs only
from ssvae.entrypoints.cli.options import (
    DATA_OPTION_NAMES,
    PRESET_NAMES,
    MultiValueCommand,
    artifacts_option,
    data_options,
    data_settings,
    default_preset,
    split_words,
    stopping_options,
    stopping_rule,
)
from ssvae.entrypoints.cli.printers import echo_dataset_lines

if TYPE_CHECKING:  # the domain's values load inside the command, to keep this import cheap
    from ssvae.domain.simulation import RoundResult


class _SimulateCommand(MultiValueCommand):
    """`--policies margin random --seeds 0 1 2`: these options take every following word."""

    multi_value_options = ("--policies", "--seeds")


def _split_seeds(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[int, ...]:
    seeds = []
    for word in split_words(ctx, param, values):
        if not word.isdigit():
            raise click.BadParameter(f"{word!r} is not a seed: seeds are integers >= 0")
        seeds.append(int(word))
    return tuple(seeds)


class _RoundPrinter:
    """Shows an experiment's progress on stderr: stages, runs and one line per round."""

    def stage(self, text: str) -> None:
        click.echo(f"{text}...", err=True)

    def run_started(self, policy: str, seed: int, index: int, total: int) -> None:
        click.echo(f"run {index + 1}/{total}: {policy}, seed {seed}", err=True)

    def round_finished(self, policy: str, seed: int, result: RoundResult) -> None:
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
    callback=split_words,
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
    metavar="KEY=VALUE",
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
@artifacts_option
@stopping_options
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

    rule = stopping_rule(options)
    data = data_settings({key: options.pop(key) for key in DATA_OPTION_NAMES})
    options["preset"] = options.get("preset") or default_preset(data)
    app = bootstrap(AppSettings(data=data, artifacts_dir=artifacts))
    overrides = app.spec_assignments()(assignments)
    echo_dataset_lines(app.dataset_service().describe())
    settings = SimulationSettings(
        policies=policies or ("margin", "random"),
        seeds=seeds or (0,),
        overrides=overrides,
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
