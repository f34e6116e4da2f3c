"""`ssvae embed`: the messages of a file as vectors in a Parquet file (id, vector, label).

The output reads back as a vectors dataset (`--vectors FILE.parquet`). Vectors go through
the embedding cache, so embedding the same messages with the same embedder again is instant.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from ssvae.adapters.data.text_source import EMBEDDINGS_CACHE, fitted_tfidf, open_minilm
from ssvae.adapters.data.text_table import read_text_table
from ssvae.adapters.files import atomic_write_bytes
from ssvae.adapters.text.cache import ProgressEmbedder, cached_embed
from ssvae.adapters.text.tfidf import DEFAULT_DIM, narrowed_note
from ssvae.domain.errors import DataError
from ssvae.domain.text import Embedder


@attrs.frozen
class EmbedSummary:
    """What `embed_text_file` wrote."""

    out: Path
    rows: int
    dimension: int
    labelled: int
    seconds: float
    # Set when no width was asked for and the messages allowed fewer values than the default.
    narrowed_from: int | None = None

    @property
    def note(self) -> str | None:
        """One line for the user when the width was narrowed, else None."""
        if self.narrowed_from is None:
            return None
        return narrowed_note(self.rows, self.dimension)


def embed_text_file(
    input_path: Path,
    out_path: Path,
    *,
    embedder: str = "tfidf",
    embedder_dim: int | None = None,
    embedder_folder: Path | None = None,
    id_column: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    cache_dir: Path | None = None,
    stage: Callable[[str], None] = lambda _: None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> EmbedSummary:
    """Embed every message of `input_path` and write id, vector (and label) to `out_path`.

    tfidf is fitted on the file's messages, `embedder_dim` values wide; unless a width is
    given, DEFAULT_DIM or as many as the messages allow (a small file cannot support the
    default). minilm reads `embedder_folder`. `stage` hears what is being done; `progress`
    hears (messages embedded, total) after each chunk.
    """
    started = time.perf_counter()
    narrowed_from: int | None = None
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".parquet", ".pq"):
        raise DataError(f"--out {out_path}: write embeddings to a .parquet file")
    if embedder not in ("tfidf", "minilm"):
        raise DataError(f"embedder {embedder!r} is unknown; use tfidf or minilm")
    if embedder == "minilm" and embedder_folder is None:
        from ssvae.adapters.text.minilm import HOW_TO_PROVIDE

        raise DataError(f"the minilm embedder needs a model folder: {HOW_TO_PROVIDE}")
    _check_writable(out_path)
    table = read_text_table(input_path, id_column, text_column, label_column)
    model: Embedder
    if embedder_folder is not None and embedder == "minilm":
        stage(f"loading the minilm encoder from {embedder_folder}")
        model = open_minilm(embedder_folder)
    else:
        width = DEFAULT_DIM if embedder_dim is None else embedder_dim
        stage(f"fitting tfidf ({width} values) on {len(table.texts)} messages")
        model = fitted_tfidf(table.texts, embedder_dim, cache_dir)
        if model.dimension < width:
            narrowed_from = width
    stage(f"embedding {len(table.texts)} messages")
    chunked = ProgressEmbedder(model, progress)
    if cache_dir is None:
        vectors = chunked.embed(table.texts)
    else:
        vectors = cached_embed(chunked, table.texts, Path(cache_dir) / EMBEDDINGS_CACHE)
    progress(len(table.texts), len(table.texts))
    try:
        _write_parquet(out_path, table.ids, vectors, table.labels)
    except OSError as error:
        raise DataError(
            f"--out {out_path}: cannot be written ({error.strerror or error}); choose a path "
            "in a folder you can write to"
        ) from None
    labelled = 0 if table.labels is None else sum(1 for label in table.labels if label)
    return EmbedSummary(
        out_path,
        len(table.ids),
        model.dimension,
        labelled,
        time.perf_counter() - started,
        narrowed_from,
    )


def _check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written before any embedding work is done."""
    if path.is_dir():
        raise DataError(f"--out {path} is a folder; give the path of a .parquet file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(
            f"--out {path}: {folder} is a file, not a folder; choose another output path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(
            f"--out {path}: cannot write in {folder} (permission denied); choose a folder "
            "you can write to"
        )


def _write_parquet(
    path: Path, ids: np.ndarray, vectors: np.ndarray, labels: list[str] | None
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    width = vectors.shape[1]
    columns = {
        "id": pa.array(ids, pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vectors, np.float32).ravel()), width
        ),
    }
    if labels is not None:
        columns["label"] = pa.array([label or None for label in labels], pa.string())
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    atomic_write_bytes(path, buffer.getvalue())
