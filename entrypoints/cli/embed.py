"""`ssvae embed`: turn a file of messages into a Parquet file of vectors.

Importing this module is cheap: the container, scikit-learn and JAX load inside the command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ssvae.domain.text import EMBEDDERS  # cheap: attrs only


class _Bar:
    """Stage lines and a progress bar with a rate (messages/s) on stderr.

    The bar appears once embedding starts, from the messages an interrupted run had already
    embedded; it stays off where stderr is not a terminal (a log file would fill with
    redraws) and, with the stage lines, under --quiet.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.done = 0

    def stage(self, text: str) -> None:
        if not self.quiet:
            click.echo(f"{text}...", err=True)

    def progress(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                desc="embedding",
                unit="msg",
                unit_scale=True,
                file=sys.stderr,
                disable=True if self.quiet else None,  # None: off unless stderr is a terminal
                dynamic_ncols=True,
            )
            self.done = done
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("embed")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The messages: .csv, .jsonl or .parquet with an id and a text column.",
)
@click.option(
    "--embedder",
    type=click.Choice(EMBEDDERS),
    default="tfidf",
    show_default=True,
    help="tfidf (offline, fitted on these messages) or minilm (a local model folder).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write: columns id, vector and (if the input has one) label.",
)
@click.option(
    "--embedder-dim",
    type=click.IntRange(min=2),
    help="Width of the tfidf vectors. [default: 256, or as many as fewer messages allow]",
)
@click.option(
    "--embedder-folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="For minilm: a local sentence-transformers folder (never downloaded).",
)
@click.option("--id-column", help="Column of the integer ids (default: id or serial).")
@click.option("--text-column", help="Column of the messages (default: text or message).")
@click.option("--label-column", help="Column of the class names (default: label or class).")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    help="Messages embedded and committed together: a kill loses at most one chunk. "
    "[default: 65536]",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Discard the chunks an interrupted run of another input or settings left.",
)
@click.option("--quiet", is_flag=True, help="No stage lines and no progress bar.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where embeddings are cached (default: ~/.cache/ssvae).",
)
def embed(cache_dir: Path | None, quiet: bool, **options: Any) -> None:
    """Embed the messages of a file and write them as vectors to a Parquet file.

    \b
    Example:
      ssvae embed --input messages.csv --embedder tfidf --out vectors.parquet
    The output is a vectors dataset: ssvae init --vectors vectors.parquet. The file is read
    and written a chunk at a time, in bounded memory; tfidf is fitted on a seeded sample of
    20,000 messages at most. Each chunk is committed beside the output (.NAME.parts/), so a
    run that is killed resumes where it stopped when run again; the output appears only
    once complete. Embeddings are cached by the messages and the embedder's settings, so a
    second run is instant.
    """
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import DataSettings

    cache = cache_dir if cache_dir is not None else DataSettings().cache_dir
    if options["chunk_rows"] is None:
        del options["chunk_rows"]  # the embedder's own default
    bar = _Bar(quiet)
    try:
        summary = bootstrap().embed_text_file()(
            cache_dir=cache, stage=bar.stage, progress=bar.progress, **options
        )
    finally:
        bar.close()
    if summary.note is not None:
        click.echo(f"note: {summary.note}", err=True)
    labelled = f", {summary.labelled} labelled" if summary.labelled else ""
    click.echo(
        f"wrote {summary.rows} vectors of {summary.dimension} values{labelled} to "
        f"{summary.out} in {summary.seconds:.1f} s"
    )
