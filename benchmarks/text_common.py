"""Helpers shared by the text benchmarks: Loghub vectors and labels per class."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ssvae.adapters.data.text_source import TextDataSource, loghub_source
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet

MINILM_FOLDER = (
    Path(__file__).resolve().parents[1].parent / "shared" / "models" / "all-MiniLM-L6-v2"
)


def add_text_options(parser: Any) -> None:
    """Embedder, scaling, spec overrides and cache folder: the options of every text benchmark."""
    parser.add_argument("--embedder", choices=["tfidf", "minilm"], default="tfidf")
    parser.add_argument("--embedder-dim", type=int, default=256, help="tfidf SVD dimension")
    parser.add_argument("--embedder-folder", type=Path, default=MINILM_FOLDER)
    parser.add_argument("--scaling", choices=["l2", "standardise", "none"], default="l2")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="embedding cache (default ~/.cache/ssvae; an empty folder times the embedding)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")


def open_loghub(task: str, args: Any) -> TextDataSource:
    """The built-in Loghub source with the benchmark's embedder and scaling options."""
    return loghub_source(
        task,
        embedder=args.embedder,
        embedder_dim=args.embedder_dim,
        embedder_folder=args.embedder_folder if args.embedder == "minilm" else None,
        scaling=args.scaling,
        cache_dir=args.cache_dir,
    )


def load_splits(source: TextDataSource) -> tuple[Samples, Samples, float]:
    """(train, test, seconds): embedding (or reading the cache) and scaling included."""
    start = time.perf_counter()
    train, test = source.load("train"), source.load("test")
    return train, test, time.perf_counter() - start


def labels_per_class(
    pool: Samples, vocabulary: ClassVocabulary, per_class: int, seed: int
) -> LabelSet:
    """`per_class` labelled pool samples of every class, chosen by `seed`."""
    assert pool.y is not None
    rng = np.random.default_rng(seed)
    rows = np.concatenate(
        [
            rng.choice(np.flatnonzero(pool.y == c), per_class, replace=False)
            for c in range(len(vocabulary))
        ]
    )
    names = vocabulary.names
    return LabelSet.from_pairs(
        vocabulary, [(int(pool.serials[r]), names[int(pool.y[r])]) for r in rows]
    )
