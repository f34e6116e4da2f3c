"""Click options shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def data_options(command: F) -> F:
    """Options that choose the dataset, shared by every command that reads data."""
    options = [
        click.option(
            "--dataset",
            default="mnist",
            show_default=True,
            help="Built-in dataset: mnist or fashion_mnist.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder holding the dataset files (default: the embedded copy).",
        ),
        click.option(
            "--vectors",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Your own vectors (.npy, .npz or .parquet) instead of a built-in dataset.",
        ),
        click.option(
            "--classes",
            help="Comma-separated class names for --vectors files without a label column.",
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
            help="Where downloads go (default: ~/.cache/ssvae).",
        ),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)
