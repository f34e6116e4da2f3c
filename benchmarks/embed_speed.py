"""Embedding speed on the 20,000 Loghub messages: TF-IDF and the MiniLM encoder, messages/s.

TF-IDF: the time of `fit` on the pool, then of `embed` on all messages. MiniLM (per compute
dtype): a cold `embed` of all messages (it compiles one forward per batch shape) and a warm
one (every shape compiled). Both embedders encode repeated texts once, so the unique-text
rate is reported too. Timings on a shared machine are noisy: the CPU time of the process is
reported beside the wall time. Usage:

    .venv/bin/python benchmarks/embed_speed.py [--limit N] [--dtypes float32 bfloat16]
    .venv/bin/python benchmarks/embed_speed.py --dtypes        # tfidf only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks_common import cpu_model

from ssvae.adapters.text.minilm import MiniLmEmbedder
from ssvae.adapters.text.tfidf import TfidfEmbedder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MESSAGES = Path(__file__).resolve().parents[1] / "data" / "loghub" / "messages.csv"
FOLDER = SHARED / "models" / "all-MiniLM-L6-v2"


def load_messages(limit: int | None) -> list[str]:
    """The `text` column of messages.csv, the first `limit` rows."""
    with MESSAGES.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return texts[:limit]


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def cpu_timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process over all its threads) of one call."""
    cpu = time.process_time()
    _, wall = timed(fn)
    return wall, time.process_time() - cpu


def bench_tfidf(texts: list[str], unique: int) -> dict[str, float]:
    embedder = TfidfEmbedder(dim=256, seed=0)
    _, fit_s = timed(lambda: embedder.fit(texts))
    embed_s, embed_cpu_s = cpu_timed(lambda: embedder.embed(texts))
    return {
        "fit_s": round(fit_s, 2),
        "embed_s": round(embed_s, 3),
        "embed_cpu_s": round(embed_cpu_s, 3),
        "messages_per_s": round(len(texts) / embed_s),
        "unique_texts_per_s": round(unique / embed_s),
    }


def bench_minilm(texts: list[str], unique: int, dtype: str, batch: int) -> dict[str, float]:
    embedder, load_s = timed(lambda: MiniLmEmbedder(FOLDER, batch_size=batch, compute_dtype=dtype))
    cold_s, cold_cpu_s = cpu_timed(lambda: embedder.embed(texts))
    warm_s, warm_cpu_s = cpu_timed(lambda: embedder.embed(texts))
    return {
        "load_s": round(load_s, 2),
        "cold_s": round(cold_s, 1),
        "warm_s": round(warm_s, 1),
        "cold_messages_per_s": round(len(texts) / cold_s, 1),
        "warm_messages_per_s": round(len(texts) / warm_s, 1),
        "warm_unique_texts_per_s": round(unique / warm_s, 1),
        # On a machine shared with other jobs much of the wall time is waiting for a core.
        "cold_cpu_s": round(cold_cpu_s, 1),
        "warm_cpu_s": round(warm_cpu_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N messages only")
    parser.add_argument(
        "--dtypes",
        nargs="*",
        default=["float32", "bfloat16"],
        help="minilm dtypes (none: tfidf only)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-tfidf", action="store_true")
    args = parser.parse_args()
    texts = load_messages(args.limit)
    unique = len(set(texts))
    report: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "messages": len(texts),
        "unique_texts": unique,
    }
    if not args.skip_tfidf:
        report["tfidf"] = bench_tfidf(texts, unique)
        print(json.dumps(report["tfidf"]), flush=True)
    for dtype in args.dtypes:
        report[f"minilm_{dtype}"] = bench_minilm(texts, unique, dtype, args.batch_size)
        print(json.dumps(report[f"minilm_{dtype}"]), flush=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
