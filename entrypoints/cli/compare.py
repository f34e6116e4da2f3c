"""`ssvae compare`: train several models on the same data and write a side-by-side report.

Importing this module is cheap: the container, JAX and matplotlib load inside the command.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from ssvae.entrypoints.cli.options import (
    PRESET_NAMES,
    TEXT_OPTION_NAMES,
    MultiValueCommand,
    data_settings,
    default_models,
    split_words,
    text_options,
)
from ssvae.entrypoints.cli.printers import echo_dataset_lines

if TYPE_CHECKING:  # the domain's values load inside the command, to keep this import cheap
    from ssvae.domain.comparison import Experiment, ModelOutcome, ModelPlan
    from ssvae.domain.model import EpochRecord


class _CompareCommand(MultiValueCommand):
    """`--models standard mixture_k10`: --models takes every following word."""

    multi_value_options = ("--models",)


def _config_sets_num_samples(experiment: Experiment, config: Path | None) -> bool:
    """Whether `--config` chose num_samples (a value other than the default)."""
    import attrs

    from ssvae.domain.comparison import Experiment

    default = attrs.fields_dict(Experiment)["num_samples"].default
    return config is not None and experiment.num_samples != default


class ProgressBar:
    """One progress bar across every model and epoch of a comparison (on stderr).

    Progress counts epochs: a model that stops early jumps to its end. On a terminal the bar
    redraws in place; elsewhere (a log file) it prints one line per epoch.
    """

    def __init__(self, plans: Sequence[ModelPlan], stream: TextIO | None = None, width: int = 28):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.epochs = [int(p.spec.training.max_epochs) for p in plans]
        self.names = [str(p.name) for p in plans]
        self.total = max(sum(self.epochs), 1)
        self.done_before = 0  # epochs of the models already finished
        self.index = 0
        self.epoch_fraction = 0.0
        self.shown_epoch = 1
        self.loss = float("nan")
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self, note: str = "") -> str:
        fraction = min((self.done_before + self.epoch_fraction) / self.total, 1.0)
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        eta = f" eta {elapsed / fraction - elapsed:4.0f}s" if 0.02 < fraction < 1 else ""
        model = f"{self.names[self.index]} ({self.index + 1}/{len(self.names)})"
        return (
            f"[{bar}] {100 * fraction:3.0f}% {model} epoch {self.shown_epoch}/"
            f"{self.epochs[self.index]}"
            f" loss {self.loss:.4g}{eta}{note}"
        )

    def _draw(self, force: bool = False, note: str = "") -> None:
        now = time.perf_counter()
        if not force and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        if self.tty:
            self.stream.write("\r\033[K" + self._line(note))
        elif force:
            self.stream.write(self._line(note) + "\n")
        self.stream.flush()

    def model_started(self, index: int, plan: ModelPlan) -> None:
        self.index, self.epoch_fraction, self.loss = index, 0.0, float("nan")
        self.shown_epoch = 1
        self._draw(force=self.tty)

    def step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        self.epoch_fraction = epoch + step / max(steps_per_epoch, 1)
        self.shown_epoch = epoch + 1
        self.loss = loss
        self._draw()

    def epoch_finished(self, record: EpochRecord) -> None:
        self.epoch_fraction = float(record.epoch)
        self.shown_epoch = record.epoch
        self.loss = float(record.metrics.get("loss", self.loss))
        accuracy = record.metrics.get("val_accuracy")
        note = f" val_acc {accuracy:.3f}" if accuracy is not None else ""
        self._draw(force=True, note=note)

    def model_finished(self, outcome: ModelOutcome) -> None:
        self.done_before += self.epochs[self.index]
        self.epoch_fraction = 0.0
        if self.tty:
            self.stream.write("\r\033[K")
        evaluation = outcome.evaluation
        if evaluation is not None:
            tau = evaluation.tau_accuracy
            extra = f", component-label map {100 * tau:.1f}%" if tau is not None else ""
            self.stream.write(
                f"{outcome.name}: test accuracy {100 * evaluation.accuracy:.1f}%{extra} "
                f"({outcome.epochs_run} epochs, {outcome.seconds:.0f} s)\n"
            )
        elif outcome.message:
            self.stream.write(f"{outcome.name}: {outcome.message}\n")
        self.stream.flush()

    def stage(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + "...")
            self.stream.flush()


@click.command("compare", cls=_CompareCommand)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML experiment file (see configs/comparisons/); flags override it.",
)
@click.option(
    "--models",
    multiple=True,
    callback=split_words,
    metavar="NAME...",
    help=f"Models to compare: presets ({', '.join(PRESET_NAMES)}) or names defined in --config. "
    "[default: standard mixture_k10; text_standard text_mixture_k20 for text data]",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per model. [default: 10]")
@click.option(
    "--num-samples",
    type=click.IntRange(min=2),
    help="Training samples drawn from the train split. "
    "[default: 5000, or as many as have a class when fewer]",
)
@click.option(
    "--num-labeled",
    type=click.IntRange(min=1),
    help="How many of them are labelled, balanced over classes. [default: 50]",
)
@click.option(
    "--num-test",
    type=click.IntRange(min=0),
    help="Test samples to evaluate on (0: the whole test split). [default: 0]",
)
@click.option(
    "--sampling",
    type=click.Choice(["stratified", "random"]),
    help="How the training samples are drawn. [default: stratified]",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Seed of the data selection and of every model. [default: 0]",
)
@click.option(
    "--dataset",
    help="Built-in dataset: mnist, fashion_mnist or loghub (with --task). [default: mnist]",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the dataset files (default: the embedded copy).",
)
@click.option(
    "--vectors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your own vectors (.npy, .npz, .parquet or .csv) with their classes in a label "
    "column, instead of a built-in dataset.",
)
@click.option(
    "--test-vectors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Vectors to test on, in the same layout as --vectors (default: hold out "
    "20% of the labelled vectors).",
)
@click.option(
    "--classes",
    help="Comma-separated class names for --vectors files whose labels are class indices.",
)
@click.option(
    "--download/--no-download",
    default=False,
    show_default=True,
    help="Download missing dataset files from the public mirrors (checksums verified).",
)
@click.option(
    "--out",
    help="Folder under which the timestamped report folder is made. "
    "[default: artifacts/comparisons]",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model spec field for every model, e.g. --set batch_size=64 (repeatable).",
)
@text_options
def compare(
    config: Path | None,
    models: tuple[str, ...],
    data_dir: Path | None,
    vectors: Path | None,
    test_vectors: Path | None,
    classes: str | None,
    download: bool,
    assignments: tuple[str, ...],
    **settings: Any,
) -> None:
    """Train several models on the same data and write a side-by-side report.

    \b
    Example:
      ssvae compare --models standard mixture_k10 --epochs 10
    The report (REPORT.md, REPORT.html, summary.json, figures, checkpoints) goes to
    artifacts/comparisons/<timestamp>/. Ctrl-C stops the current model and still writes
    the report for the models that finished.
    """
    import attrs

    from ssvae.application.bootstrap import bootstrap, configure
    from ssvae.application.compare import HELD_OUT_FRACTION
    from ssvae.application.settings import AppSettings, SettingsError

    text = {name: settings.pop(name) for name in TEXT_OPTION_NAMES}
    own = {"data_dir": data_dir, "vectors": vectors, "classes": classes, **text}
    if test_vectors is not None and vectors is None:
        raise SettingsError("--test-vectors goes with --vectors, the vectors to train on")
    if not models and config is None:
        given = {"dataset": settings.get("dataset") or "mnist", **own}
        models = default_models(data_settings(given)) or models
    flags = {**settings, "models": models or None, "set": assignments or None}
    # No workspace: one container, configured once the experiment file names the dataset
    # (reading that file needs no configuration).
    app = bootstrap()
    experiment = app.experiment_reader().resolve(config, flags)
    data = data_settings({"dataset": experiment.dataset, "download": download, **own})
    if test_vectors is not None:
        if not test_vectors.is_file():
            raise SettingsError(f"{test_vectors}: file not found; check the --test-vectors path")
        data = attrs.evolve(data, test_path=test_vectors)
    configure(app, AppSettings(data=data))
    echo_dataset_lines(app.dataset_service().describe())
    if settings.get("num_samples") is None and not _config_sets_num_samples(experiment, config):
        # The default (5000) must work on a small file; a number the user chose stays an error.
        fitted = app.compare_service().fitted_num_samples(experiment)
        if fitted < experiment.num_samples:
            click.echo(
                f"note: the data has {fitted} training samples with a known class, so the "
                f"comparison trains on {fitted} instead of {experiment.num_samples} "
                "(--num-samples chooses)",
                err=True,
            )
            experiment = attrs.evolve(experiment, num_samples=fitted)
    progress = ProgressBar(experiment.models)
    click.echo(
        f"comparing {', '.join(p.name for p in experiment.models)} on {data.name}: "
        f"{experiment.num_samples} training samples, {experiment.num_labeled} labelled",
        err=True,
    )
    if vectors is not None and test_vectors is None:
        click.echo(
            f"testing on {HELD_OUT_FRACTION:.0%} of the labelled vectors, held out from "
            "training (--test-vectors FILE tests on your own)",
            err=True,
        )
    try:
        run = app.compare_service().run(experiment, progress)
    except KeyboardInterrupt:
        click.echo("\ninterrupted before any report was written", err=True)
        sys.exit(130)
    report = run.directory / "REPORT.md"
    if run.result.interrupted:
        click.echo(f"interrupted: partial report written to {report}", err=True)
        sys.exit(130)
    click.echo(f"report: {report}")
    from ssvae.domain.comparison import FAILED

    failed = [f"{o.name} failed: {o.message}" for o in run.result.outcomes if o.status == FAILED]
    if failed:  # the report has the others' results, but a model did not train
        click.echo(f"error: {'; '.join(failed)}", err=True)
        sys.exit(1)
