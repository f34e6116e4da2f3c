"""Click options shared by several commands, the settings they describe, and the container
built from the dataset options."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ssvae.application.settings import DEFAULT_ARTIFACTS  # cheap: attrs only
from ssvae.domain.spec import PRESETS  # cheap: attrs only
from ssvae.domain.text import EMBEDDERS, LOGHUB_TASKS, SCALINGS  # cheap: attrs only

if TYPE_CHECKING:  # the container loads inside the commands, to keep this import cheap
    from ssvae.application.container import Container
    from ssvae.application.settings import DataSettings
    from ssvae.domain.distributed import ClusterSettings
    from ssvae.domain.stopping import StoppingRule

F = TypeVar("F", bound=Callable[..., Any])

PRESET_NAMES = tuple(PRESETS)

# The option names (click's parameter names) of `text_options` and `data_options`: a command
# that passes its other options on pops these first.
TEXT_OPTION_NAMES = (
    "task",
    "input",
    "test_input",
    "id_column",
    "text_column",
    "label_column",
    "vector_column",
    "embedder",
    "embedder_dim",
    "embedder_folder",
    "scaling",
    "test_fraction",
    "split_seed",
    "min_class_size",
)
DATA_OPTION_NAMES = (
    "dataset",
    "data_dir",
    "vectors",
    "classes",
    "download",
    "cache_dir",
    *TEXT_OPTION_NAMES,
)
TEXT_DATASET = "text"  # --dataset text: the messages in --input


def _apply(command: F, options: Sequence[Callable[[Any], Any]]) -> F:
    result: F = functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)
    return result


def text_options(command: F) -> F:
    """Options for text datasets (the built-in loghub or --input FILE) and column names."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--task",
            type=click.Choice(tuple(LOGHUB_TASKS)),
            help="For --dataset loghub: classify the emitting system (10 classes) or the "
            "message template (event: the 99 templates with at least 20 messages).",
        ),
        click.option(
            "--input",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Your own messages (.csv, .jsonl or .parquet: an id and a text column, an "
            "optional label column); implies --dataset text.",
        ),
        click.option(
            "--test-input",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Messages of the test split, in the same layout as --input (default: hold "
            "out --test-fraction of the labelled messages).",
        ),
        click.option("--id-column", help="Column of the integer ids (default: id or serial)."),
        click.option("--text-column", help="Column of the messages (default: text or message)."),
        click.option(
            "--label-column", help="Column of the class names (default: label or class, if any)."
        ),
        click.option(
            "--vector-column",
            help="Column of the vectors in --vectors files (default: vector, embedding, x).",
        ),
        click.option(
            "--embedder",
            type=click.Choice(EMBEDDERS),
            help="How messages become vectors: tfidf (offline, fitted on the pool) or minilm "
            "(a local sentence-transformers folder). [default: tfidf]",
        ),
        click.option(
            "--embedder-dim",
            type=click.IntRange(min=2),
            help="Width of the tfidf vectors (truncated SVD). [default: 256, or as many as "
            "fewer messages allow]",
        ),
        click.option(
            "--embedder-folder",
            type=click.Path(file_okay=False, path_type=Path),
            help="The minilm model: a local sentence-transformers folder such as "
            "all-MiniLM-L6-v2 (never downloaded).",
        ),
        click.option(
            "--scaling",
            type=click.Choice(SCALINGS),
            help="Scaling of the vectors for the Gaussian likelihood, fitted on the pool: "
            "l2 (unit rows), standardise (per feature) or none. [default: l2]",
        ),
        click.option(
            "--test-fraction",
            type=click.FloatRange(0, 1, max_open=True),
            help="Labelled messages held out as the test split, stratified by class, when "
            "there is no --test-input. [default: 0.2]",
        ),
        click.option(
            "--split-seed",
            type=click.IntRange(min=0),
            help="Seed of the held-out test messages. [default: 0]",
        ),
        click.option(
            "--min-class-size",
            type=click.IntRange(min=1),
            help="Classes with fewer labelled messages are left unlabelled. [default: 1]",
        ),
    ]
    return _apply(command, options)


def data_options(command: F) -> F:
    """Options that choose the dataset, shared by every command that reads data."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--dataset",
            default="mnist",
            show_default=True,
            help="Built-in dataset: mnist, fashion_mnist or loghub (with --task); "
            "text for your messages in --input.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder holding the dataset files (default: the embedded copy).",
        ),
        click.option(
            "--vectors",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Your own vectors (.npy, .npz, .parquet or .csv) instead of a built-in dataset.",
        ),
        click.option(
            "--classes",
            help="Comma-separated class names for --vectors or --input files without labels.",
        ),
        click.option(
            "--download/--no-download",
            default=False,
            show_default=True,
            help="Download missing files from the public mirrors (checksums verified).",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where downloads and text embeddings go (default: ~/.cache/ssvae).",
        ),
        text_options,
    ]
    return _apply(command, options)


def data_settings(options: Mapping[str, Any]) -> DataSettings:
    """The DataSettings that the values of `data_options` (by parameter name) describe.

    Options a command lacks count as not given; SettingsError (one line) for combinations
    that make no sense, e.g. --task without --dataset loghub.
    """
    from ssvae.application.settings import TEXT_DATASETS, DataSettings, SettingsError

    def given(name: str) -> Any:
        return options.get(name)

    # Checked here so that every command, the dashboard's start page included, refuses a
    # missing file at once instead of when it first reads the data.
    for name in ("input", "test_input", "vectors"):
        path = given(name)
        if path is None:
            continue
        flag = "--" + name.replace("_", "-")
        shown = str(path) if len(str(path)) <= 200 else str(path)[:100] + "..." + str(path)[-40:]
        try:
            found = Path(path).is_file()
        except OSError as error:  # e.g. a name too long for the file system: not "not found"
            raise SettingsError(
                f"{shown}: cannot be opened ({error.strerror or error}); check the {flag} path"
            ) from None
        if not found:
            raise SettingsError(f"{shown}: file not found; check the {flag} path")

    common: dict[str, Any] = {"download": bool(given("download")), "directory": given("data_dir")}
    if given("cache_dir") is not None:
        common["cache_dir"] = given("cache_dir")
    dataset = given("dataset") or "mnist"
    columns = {
        name: given(name) for name in ("id_column", "label_column") if given(name) is not None
    }
    text_values = {
        name: given(name)
        for name in (
            "text_column",
            "embedder",
            "embedder_dim",
            "embedder_folder",
            "scaling",
            "test_fraction",
            "split_seed",
            "min_class_size",
        )
        if given(name) is not None
    }
    if given("input") is not None or dataset == TEXT_DATASET:
        if given("input") is None:
            raise SettingsError("--dataset text needs --input FILE: your file of messages")
        return DataSettings(
            kind="text",
            name=Path(given("input")).stem,
            train_path=given("input"),
            test_path=given("test_input"),
            classes=given("classes"),
            **columns,
            **text_values,
            **common,
        )
    if dataset in TEXT_DATASETS:
        if columns or given("test_input") is not None:
            raise SettingsError(
                f"--dataset {dataset} has fixed columns and splits; column options and "
                "--test-input are for --input files"
            )
        return DataSettings(kind="text", name=dataset, task=given("task"), **text_values, **common)
    if given("task") is not None:
        raise SettingsError(f"--task is for --dataset {' or '.join(TEXT_DATASETS)}")
    if given("vectors") is not None:
        vector_columns = {**columns}
        if given("vector_column") is not None:
            vector_columns["vector_column"] = given("vector_column")
        return DataSettings(
            kind="vectors",
            name=Path(given("vectors")).stem,
            train_path=given("vectors"),
            classes=given("classes"),
            **vector_columns,
            **common,
        )
    return DataSettings(kind="idx", name=dataset, **common)


def _is_text(settings: DataSettings) -> bool:
    return getattr(settings, "kind", None) == "text"


def default_preset(settings: DataSettings) -> str:
    """The preset a command uses unless told: a text preset for text, mixture_k10 otherwise."""
    from ssvae.domain.spec import DEFAULT_IMAGE_PRESET, DEFAULT_TEXT_PRESET

    return DEFAULT_TEXT_PRESET if _is_text(settings) else DEFAULT_IMAGE_PRESET


def default_models(settings: DataSettings) -> tuple[str, ...] | None:
    """The models `compare` trains unless told: text presets for text (the image presets'
    Bernoulli pixels and conv classifier do not suit message embeddings), else None (the
    experiment's own default)."""
    return ("text_standard", "text_mixture_k20") if _is_text(settings) else None


def data_app(options: Mapping[str, Any], labels: Path | None = None) -> Container:
    """The container for the dataset `data_options` describe, with the label store `labels`."""
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, LabelSettings

    label_settings = LabelSettings(path=labels) if labels is not None else LabelSettings()
    return bootstrap(AppSettings(data=data_settings(options), labels=label_settings))


def artifacts_option(command: F) -> F:
    """--artifacts: the folder of workspaces and experiments."""
    return click.option(
        "--artifacts",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_ARTIFACTS,
        show_default=True,
        help="The artifacts folder: workspaces in models/, experiments in experiments/.",
    )(command)


def model_option(command: F) -> F:
    """--model: the workspace a command works on."""
    return click.option(
        "--model",
        "model",
        required=True,
        metavar="DIR",
        help="The model workspace: its folder, or its id under ARTIFACTS/models/.",
    )(command)


def stopping_options(command: F) -> F:
    """The stopping criteria to check; each is off unless given (kappa and tau have defaults)."""
    options: list[Callable[[Any], Any]] = [
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
    return _apply(command, options)


def stopping_rule(options: dict[str, Any]) -> StoppingRule:
    """The StoppingRule of the `stopping_options` values, popped from `options`."""
    from ssvae.domain.stopping import StoppingRule

    return StoppingRule(
        budget=options.pop("budget"),
        max_rounds=options.pop("max_rounds"),
        kappa_threshold=options.pop("kappa_threshold"),
        kappa_window=options.pop("kappa_window"),
        tau_tolerance=options.pop("tau_tolerance"),
        tau_measure=options.pop("tau_measure"),
    )


def distributed_options(command: F) -> F:
    """How this process joins a run of several (jax.distributed); one process when none is set.

    Each flag also reads an environment variable, so a job script can set them once."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--coordinator",
            envvar="SSVAE_COORDINATOR",
            metavar="HOST:PORT",
            help="Process 0's address and a free port, the same for every process "
            "[env SSVAE_COORDINATOR].",
        ),
        click.option(
            "--num-processes",
            envvar="SSVAE_NUM_PROCESSES",
            type=click.IntRange(min=1),
            help="How many processes take part [env SSVAE_NUM_PROCESSES].",
        ),
        click.option(
            "--process-id",
            envvar="SSVAE_PROCESS_ID",
            type=click.IntRange(min=0),
            help="This process's number, 0 to N-1; process 0 writes the workspace "
            "[env SSVAE_PROCESS_ID].",
        ),
        click.option(
            "--cluster",
            envvar="SSVAE_CLUSTER",
            is_flag=True,
            help="Let the cluster say the coordinator, count and id (SLURM, Open MPI, "
            "Kubernetes indexed Jobs) [env SSVAE_CLUSTER=1].",
        ),
        click.option(
            "--init-timeout",
            envvar="SSVAE_INIT_TIMEOUT",
            type=click.IntRange(min=1),
            default=300,
            show_default=True,
            help="Seconds to wait for every process to join; a process that cannot reach the "
            "coordinator in that time stops with its address [env SSVAE_INIT_TIMEOUT].",
        ),
    ]
    return _apply(command, options)


def cluster_settings(options: dict[str, Any]) -> ClusterSettings:
    """The ClusterSettings of the `distributed_options` values, popped from `options`."""
    from ssvae.domain.distributed import ClusterSettings

    return ClusterSettings(
        coordinator=options.pop("coordinator"),
        num_processes=options.pop("num_processes"),
        process_id=options.pop("process_id"),
        detect=options.pop("cluster"),
        init_timeout=options.pop("init_timeout"),
    )


def split_words(_: click.Context, __: click.Parameter, values: Sequence[str]) -> tuple[str, ...]:
    """Values given as separate words or comma-separated."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def expand_multi_value_options(args: Sequence[str], names: Sequence[str]) -> list[str]:
    """`--models a b --epochs 3` -> `--models a --models b --epochs 3`.

    Click options take one value each; this lets `--models` take every following word that
    is not an option, as users write it (`--models standard mixture_k10`).
    """
    out: list[str] = []
    current: str | None = None
    taken = 0
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            current = None
            break
        if arg in names:
            if current is not None and taken == 0:
                raise click.UsageError(f"{current} needs at least one value")
            current, taken = arg, 0
            continue
        if current is not None and not arg.startswith("-"):
            out += [current, arg]
            taken += 1
            continue
        if current is not None and taken == 0:
            raise click.UsageError(
                f"{current} needs at least one value, e.g. {current} standard mixture_k10"
            )
        current = None
        out.append(arg)
    if current is not None and taken == 0:
        raise click.UsageError(
            f"{current} needs at least one value, e.g. {current} standard mixture_k10"
        )
    return out


class MultiValueCommand(click.Command):
    """A command whose `multi_value_options` take several space-separated values."""

    multi_value_options: tuple[str, ...] = ()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_value_options(args, self.multi_value_options))
