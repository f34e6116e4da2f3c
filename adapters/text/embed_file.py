"""`ssvae embed`: the messages of a file as vectors in a Parquet file (id, vector, label).

The output reads back as a vectors dataset (`--vectors FILE.parquet`).

A file of millions of messages is embedded in bounded memory and survives a kill:
- a first pass streams the file (`iter_text_tables`), checks every row and every id, counts
  the messages, keeps each chunk's rows in a work folder beside the output (`.NAME.parts/`,
  as Arrow files, so that the file is read and checked once) and keeps a seeded uniform
  sample of at most `FIT_SAMPLE` of them (reservoir sampling), on which tfidf is fitted: a
  fit's cost and memory grow with its texts, and a vocabulary and an SVD learnt from 20,000
  messages describe the rest as well. A file that small or smaller is fitted on all of its
  messages, in file order, as a workspace is;
- then each chunk of `chunk_rows` messages is embedded and committed as its own Arrow file in
  the work folder, written atomically, so a chunk is either complete or absent;
- the work folder's `manifest.json` (written once, atomically, before the first chunk) names
  the input (size and sha256), the settings and the fitted embedder's fingerprint; the
  fitted tfidf is saved beside it. A rerun after a kill checks that the manifest matches,
  reuses the saved embedder and skips the committed chunks; a changed input or other
  settings are refused in one line unless `restart` discards the work;
- each committed chunk is copied, one row group, to the end of a file in the work folder,
  renamed to the output once the last is: the output appears only complete. The work folder
  is removed last;
- tfidf chunks of a large file are embedded by a pool of processes, one a core, each with the
  saved tfidf, while the main process copies the committed chunks in order
  (adapters/text/embed_pool.py). The workers start while tfidf is fitted.

Vectors go through the embedding cache a chunk at a time, so embedding the same messages with
the same embedder again is instant.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ssvae.adapters.data.text_source import EMBEDDINGS_CACHE, fitted_tfidf, open_minilm
from ssvae.adapters.data.text_table import IdTally, TextColumns, TextTable, iter_text_tables
from ssvae.adapters.files import atomic_write_text
from ssvae.adapters.json_limits import JsonLimitError, load_json_bounded
from ssvae.adapters.text.cache import ProgressEmbedder, cached_embed
from ssvae.adapters.text.embed_pool import (
    UNGUARDED,
    Output,
    died_importing_the_script,
    gc_paused,
    read_messages,
    refuse_in_a_starting_worker,
    worker_model,
    write_messages,
)
from ssvae.adapters.text.embed_pool import worker_pool as _worker_pool
from ssvae.adapters.text.embed_pool import write_part as _write_part
from ssvae.adapters.text.tfidf import DEFAULT_DIM, TfidfEmbedder, narrowed_note
from ssvae.domain.echo import one_line
from ssvae.domain.errors import DataError
from ssvae.domain.text import Embedder

FORMAT = "ssvae-embed-parts-2"  # chunks as Arrow files (version 1 wrote Parquet ones)
MANIFEST = "manifest.json"
TFIDF_FILE = "tfidf.npz"
CHUNK_ROWS = 65_536  # 64 MB of 256-wide vectors: what a kill can cost, and the memory held
FIT_SAMPLE = 20_000  # messages tfidf is fitted on at most
SAMPLE_SEED = 0
_EMBED_BATCH = 8_192  # texts per embed call: a progress report, and the tfidf matrices held
STAGING = "output.parquet.tmp"  # the output being assembled, in the work folder
_IN_FLIGHT = 3  # chunks submitted and not yet copied: what a pool holds in memory


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
    resumed_chunks: int = 0  # chunks an earlier, interrupted run had committed
    chunks: int = 0
    # The messages tfidf was fitted on: all of them, or a seeded sample of FIT_SAMPLE.
    fitted_on: int | None = None

    @property
    def note(self) -> str | None:
        """One line for the user when the width was narrowed, else None."""
        if self.narrowed_from is None:
            return None
        return narrowed_note(self.fitted_on or self.rows, self.dimension)


@attrs.frozen
class _Plan:
    """What the first pass learnt, recorded in the manifest so that a rerun skips it."""

    rows: int
    chunks: int
    dimension: int
    fingerprint: str
    narrowed_from: int | None
    fitted_on: int | None


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
    restart: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    fit_sample: int = FIT_SAMPLE,
    workers: int | None = None,
) -> EmbedSummary:
    """Embed every message of `input_path` and write id, vector (and label) to `out_path`.

    tfidf is fitted on the file's messages (a seeded sample of `fit_sample` of them in a
    larger file), `embedder_dim` values wide; unless a width is given, DEFAULT_DIM or as many
    as the messages allow. minilm reads `embedder_folder`. `stage` hears what is being done;
    `progress` hears (messages embedded, total) as chunks finish. A run killed part way
    resumes from its last committed chunk; `restart` discards that work instead. `workers`
    processes embed tfidf chunks side by side (by default, one a core for a large file).
    """
    refuse_in_a_starting_worker()
    started = time.perf_counter()
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".parquet", ".pq"):
        raise DataError(f"--out {out_path}: write embeddings to a .parquet file")
    if embedder not in ("tfidf", "minilm"):
        raise DataError(f"embedder {embedder!r} is unknown; use tfidf or minilm")
    if embedder == "minilm" and embedder_folder is None:
        from ssvae.adapters.text.minilm import HOW_TO_PROVIDE

        raise DataError(f"the minilm embedder needs a model folder: {HOW_TO_PROVIDE}")
    if chunk_rows < 1 or fit_sample < 2:
        raise DataError("--chunk-rows must be at least 1 (and the tfidf sample at least 2)")
    _check_writable(out_path)
    input_path = Path(input_path).expanduser()
    columns = TextColumns(id_column, text_column, label_column)
    work = out_path.parent / f".{out_path.name}.parts"
    identity = {
        "input": _input_identity(input_path),
        "settings": {
            "embedder": embedder,
            "embedder_dim": embedder_dim,
            "embedder_folder": None if embedder_folder is None else str(embedder_folder),
            "columns": list(attrs.astuple(columns)),
            "chunk_rows": chunk_rows,
            "fit_sample": fit_sample,
            "sample_seed": SAMPLE_SEED,
        },
    }
    plan = _resumable_plan(work, identity, restart, out_path)
    pool: ProcessPoolExecutor | None = None
    model: Embedder
    try:
        if plan is None:
            shutil.rmtree(work, ignore_errors=True)
            try:

                def start_workers(rows: int) -> None:
                    # Once the file is known to be large enough, while it is still read on
                    # one core: they are ready when tfidf is fitted.
                    nonlocal pool
                    if pool is None:
                        pool = _worker_pool(embedder, work, workers, rows)

                first = _first_pass(
                    input_path, columns, chunk_rows, fit_sample, embedder, work, start_workers
                )
                plan, model = _fitted(
                    first, identity, embedder, embedder_dim, embedder_folder, cache_dir, work,
                    stage,
                )  # fmt: skip
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)  # no manifest: nothing to resume
                raise
        else:
            model = _saved_model(work, plan, embedder, embedder_folder, out_path)
        done_chunks = _committed(work, plan.chunks)
        if pool is None:
            rows = (plan.chunks - len(done_chunks)) * chunk_rows
            pool = _worker_pool(embedder, work, workers, rows)
        if done_chunks:
            stage(f"resuming: {len(done_chunks)} of {plan.chunks} chunks were embedded before")
        stage(f"embedding {plan.rows} messages")
        embedded, labelled = _second_pass(
            input_path, model, plan, work, done_chunks, cache_dir, progress, pool, out_path
        )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if embedded != plan.rows:
        raise DataError(
            f"--out {out_path}: the chunks in {work} do not add up to the input's {plan.rows} "
            "messages; rerun with --restart"
        )
    progress(plan.rows, plan.rows)
    shutil.rmtree(work, ignore_errors=True)
    return EmbedSummary(
        out_path,
        plan.rows,
        plan.dimension,
        labelled,
        time.perf_counter() - started,
        plan.narrowed_from,
        len(done_chunks),
        plan.chunks,
        plan.fitted_on,
    )


def _input_identity(path: Path) -> dict[str, Any]:
    """The input's size and sha256: a rerun resumes only from the same bytes."""
    if not path.is_file():
        raise DataError(f"{path}: text file not found; check the --input path")
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({one_line(error, 200)})") from None
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def _resumable_plan(
    work: Path, identity: dict[str, Any], restart: bool, out_path: Path
) -> _Plan | None:
    """The plan an earlier run of the same input and settings left in `work`, else None;
    DataError when `work` holds another input's or settings' chunks and `restart` is off."""
    manifest = _read_manifest(work / MANIFEST)
    if manifest is None or restart:
        return None  # no committed work (a run killed before its first commit), or discarded
    if {name: manifest.get(name) for name in identity} != identity:
        what = "input file" if manifest.get("input") != identity["input"] else "settings"
        raise DataError(
            f"--out {out_path}: {work} holds an unfinished embedding of another {what}; "
            "rerun with --restart to discard it, or choose another --out"
        )
    try:
        plan = _Plan(**manifest["plan"])
        if not all(isinstance(value, int | str | None) for value in attrs.astuple(plan)):
            raise TypeError("plan values")
        return plan
    except (KeyError, TypeError):
        return None  # not written by this version: start over


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = load_json_bounded(path.read_bytes())
    except (OSError, JsonLimitError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


@attrs.frozen
class _FirstPass:
    """What reading the whole file once learnt: its size, and tfidf's sample."""

    rows: int
    chunks: int
    sample: list[str]


def _first_pass(
    input_path: Path,
    columns: TextColumns,
    chunk_rows: int,
    fit_sample: int,
    embedder: str,
    work: Path,
    rows_read: Callable[[int], None],
) -> _FirstPass:
    """Check every row and id of the file, count them, keep the chunks in `work` and draw
    tfidf's sample; `rows_read` hears the rows read so far after each chunk."""
    tally = IdTally()
    sample = _Reservoir(fit_sample if embedder == "tfidf" else 0, SAMPLE_SEED)
    rows = chunks = 0
    with gc_paused():
        for table in iter_text_tables(input_path, columns, chunk_rows):
            tally.add(table)
            sample.add(table.texts)
            _write(work, write_messages, _messages(work, chunks), table)
            rows += len(table.ids)
            chunks += 1
            rows_read(rows)
    tally.check()
    return _FirstPass(rows, chunks, sample.texts())


def _fitted(
    first: _FirstPass,
    identity: dict[str, Any],
    embedder: str,
    embedder_dim: int | None,
    embedder_folder: Path | None,
    cache_dir: Path | None,
    work: Path,
    stage: Callable[[str], None],
) -> tuple[_Plan, Embedder]:
    """Fit or open the embedder, and commit the manifest."""
    rows, chunks = first.rows, first.chunks
    model: Embedder
    narrowed_from = fitted_on = None
    if embedder == "minilm":
        assert embedder_folder is not None
        stage(f"loading the minilm encoder from {embedder_folder}")
        model = open_minilm(embedder_folder)
    else:
        width = DEFAULT_DIM if embedder_dim is None else embedder_dim
        texts = first.sample
        fitted_on = len(texts)
        of = "" if fitted_on == rows else f"a seeded sample of {fitted_on} of "
        stage(f"fitting tfidf ({width} values) on {of}{rows} messages")
        with gc_paused():  # scikit-learn's analyzers make a list of n-grams a message
            tfidf = fitted_tfidf(texts, embedder_dim, cache_dir)
        if tfidf.dimension < width:
            narrowed_from = width
        _write(work, tfidf.save, work / TFIDF_FILE)
        model = tfidf
    plan = _Plan(rows, chunks, model.dimension, model.fingerprint(), narrowed_from, fitted_on)
    manifest = {"format": FORMAT, **identity, "plan": attrs.asdict(plan)}
    _write(work, atomic_write_text, work / MANIFEST, json.dumps(manifest, indent=1))
    return plan, model


class _Reservoir:
    """A uniform sample of at most `size` texts of a stream, chosen by `seed` (algorithm R),
    given back in stream order; the whole stream when it holds no more than `size`."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self.kept: list[str] = []
        self.order: list[int] = []

    def add(self, texts: list[str]) -> None:
        """Offer the stream's next `texts`."""
        room = max(0, min(self.size - len(self.kept), len(texts)))
        self.kept.extend(texts[:room])
        self.order.extend(range(self.seen, self.seen + room))
        self.seen += room
        rest = len(texts) - room
        if rest <= 0 or self.size == 0:
            self.seen += max(rest, 0)
            return
        positions = np.arange(self.seen, self.seen + rest)
        slots = self.rng.integers(0, positions + 1)  # uniform in [0, position]
        for offset in np.flatnonzero(slots < self.size):
            slot = int(slots[offset])
            self.kept[slot] = texts[room + int(offset)]
            self.order[slot] = int(positions[offset])
        self.seen += rest

    def texts(self) -> list[str]:
        """The sample in the order its texts came."""
        return [self.kept[i] for i in np.argsort(self.order, kind="stable")]


def _saved_model(
    work: Path, plan: _Plan, embedder: str, folder: Path | None, out_path: Path
) -> Embedder:
    """The embedder the interrupted run used: its saved tfidf, or the same minilm folder."""
    model: Embedder
    if embedder == "minilm":
        assert folder is not None
        model = open_minilm(folder)
    else:
        model = TfidfEmbedder.load(work / TFIDF_FILE)
    if model.fingerprint() != plan.fingerprint:
        raise DataError(
            f"--out {out_path}: the embedder of the unfinished run in {work} has changed; "
            "rerun with --restart to embed everything again"
        )
    return model


def _part(work: Path, index: int) -> Path:
    return work / f"part-{index:06d}.arrow"


def _messages(work: Path, index: int) -> Path:
    return work / f"messages-{index:06d}.arrow"


def _committed(work: Path, chunks: int) -> set[int]:
    """The chunks whose Parquet files a run committed (renamed into place only when whole)."""
    return {index for index in range(chunks) if _part(work, index).is_file()}


def _second_pass(
    input_path: Path,
    model: Embedder,
    plan: _Plan,
    work: Path,
    done_chunks: set[int],
    cache_dir: Path | None,
    progress: Callable[[int, int], None],
    pool: ProcessPoolExecutor | None,
    out_path: Path,
) -> tuple[int, int]:
    """Embed and commit every chunk not yet committed, and append every chunk, in file order,
    to the output staged in the work folder; (rows appended, rows labelled).

    The output grows as the chunks are committed rather than in a copy after the last one, so
    copying overlaps embedding. With a pool, its processes embed and commit chunks while this
    one appends; a few chunks are in flight at once, so memory stays bounded and rows keep
    the file's order.
    """
    output = Output(work / STAGING, out_path)
    pending: deque[tuple[int, Future[None] | None]] = deque()
    finished = 0

    def finish_oldest() -> None:
        nonlocal finished
        index, job = pending.popleft()
        if job is not None:
            job.result()
        finished += output.append(_part(work, index))
        progress(finished, plan.rows)

    try:
        for index in range(plan.chunks):
            job: Future[None] | None = None
            if index in done_chunks:
                pass
            elif pool is None:
                report = functools.partial(_shifted, progress, finished, plan.rows)
                table = read_messages(_messages(work, index), input_path)
                _embed_part(model, work, index, table, cache_dir, report)
            else:
                job = pool.submit(_pooled_part, input_path, work, index, cache_dir)
            pending.append((index, job))
            while pending and (len(pending) > _IN_FLIGHT or pending[0][1] is None):
                finish_oldest()
        while pending:
            finish_oldest()
    except BrokenProcessPool:
        output.discard()
        assert pool is not None
        if died_importing_the_script(pool):
            raise DataError(UNGUARDED) from None
        raise DataError(
            f"{input_path}: a process embedding its chunks died (out of memory?); run again "
            "to resume from the chunks already embedded"
        ) from None
    except BaseException:
        output.discard()
        raise
    if finished == plan.rows:
        output.commit()
    else:
        output.discard()
    return finished, output.labelled


def _shifted(progress: Callable[[int, int], None], before: int, total: int, done: int) -> None:
    progress(before + done, total)


def _embed_part(
    model: Embedder,
    work: Path,
    index: int,
    table: TextTable,
    cache_dir: Path | None,
    report: Callable[[int], None],
) -> None:
    """Embed chunk `index` and commit its Arrow file."""
    vectors = _embed(model, table.texts, cache_dir, report)
    _write(work, _write_part, _part(work, index), table, vectors)


def _pooled_part(input_path: Path, work: Path, index: int, cache_dir: Path | None) -> None:
    model = worker_model(work / TFIDF_FILE)
    with gc_paused():
        table = read_messages(_messages(work, index), input_path)
        _embed_part(model, work, index, table, cache_dir, lambda _done: None)


def _embed(
    model: Embedder, texts: list[str], cache_dir: Path | None, report: Callable[[int], None]
) -> np.ndarray:
    chunked = ProgressEmbedder(model, lambda done, _total: report(done), _EMBED_BATCH)
    if cache_dir is None:
        return chunked.embed(texts)
    return cached_embed(chunked, texts, Path(cache_dir) / EMBEDDINGS_CACHE)


def _write(work: Path, write: Callable[..., None], *args: Any) -> None:
    """`write(*args)`, which writes a file in the work folder; a failure is one line."""
    try:
        work.mkdir(parents=True, exist_ok=True)
        write(*args)
    except OSError as error:
        raise DataError(
            f"{work}: cannot be written ({error.strerror or error}); choose an --out in a "
            "folder you can write to, with room for the vectors"
        ) from None


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
