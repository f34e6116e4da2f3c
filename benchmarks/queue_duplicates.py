"""How alike must two pool samples be for the dashboard's queue to show only one of them?

The queue leaves out a candidate whose input vector (`application.pool_scan.input_vectors`, what
the map holds) is at least a cosine threshold from one it shows already, or whose message
masks to the same text (numbers and hex ids replaced). A good threshold drops only
near-copies: pairs that close should nearly always hold the same class (a label on one
then teaches the model what a label on the other would), and few samples should have such
a twin, so that the strip keeps the policy's ranking.

For every pool sample this finds its nearest other sample by cosine and reports, per
threshold, the share of the pool whose nearest neighbour is at least that close ("twin"),
and the share of those pairs that hold the same class ("same class"). For Loghub it also
reports the same for masked-text identity.

    .venv/bin/python benchmarks/queue_duplicates.py [--mnist 10000] [--loghub-task event]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from benchmarks_common import cpu_model, load_mnist
from text_common import add_text_options, load_splits, open_loghub

from ssvae.application.pool_scan import input_vectors
from ssvae.entrypoints.dashboard.viewmodels.queue import masked

THRESHOLDS = (0.85, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99)


def nearest_cosine(vectors: np.ndarray, chunk: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity to the nearest other row, its row) for every row."""
    units = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    best = np.empty(len(units))
    where = np.empty(len(units), np.int64)
    for start in range(0, len(units), chunk):
        block = units[start : start + chunk] @ units.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        where[start : start + len(block)] = block.argmax(axis=1)
        best[start : start + len(block)] = block.max(axis=1)
    return best, where


def table(name: str, vectors: np.ndarray, classes: np.ndarray) -> None:
    start = time.perf_counter()
    best, where = nearest_cosine(np.asarray(vectors, np.float64))
    same = classes[where] == classes
    print(f"\n{name}: {len(vectors):,} samples ({time.perf_counter() - start:.1f} s)")
    print("| cosine >= | twin (share of pool) | same class (share of twins) |")
    print("|---|---|---|")
    for threshold in THRESHOLDS:
        twin = best >= threshold
        share = float(same[twin].mean()) if twin.any() else float("nan")
        print(f"| {threshold:.2f} | {twin.mean():.3f} | {share:.3f} |")
    print(f"(any nearest neighbour: same class {same.mean():.3f})")


def masked_table(texts: list[str], classes: np.ndarray) -> None:
    groups: dict[str, list[int]] = {}
    for row, text in enumerate(texts):
        groups.setdefault(masked(text), []).append(row)
    shared = [rows for rows in groups.values() if len(rows) > 1]
    in_shared = sum(len(rows) for rows in shared)
    pure = sum(len(rows) for rows in shared if len(set(classes[rows].tolist())) == 1)
    print(
        f"masked text: {len(groups):,} distinct of {len(texts):,} messages; "
        f"{in_shared / len(texts):.3f} of messages share theirs with another, "
        f"{pure / max(in_shared, 1):.3f} of those in groups of a single class"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=int, default=10_000, help="training images (0: skip)")
    parser.add_argument("--loghub-task", default="event", help="'' skips Loghub")
    add_text_options(parser)
    args: Any = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    if args.mnist:
        x, y = load_mnist("train")
        pixels = input_vectors(x[: args.mnist])
        table("MNIST (input_vectors of the pixels)", pixels, y[: args.mnist])
    if args.loghub_task:
        source = open_loghub(args.loghub_task, args)
        train, _, _ = load_splits(source)
        assert train.y is not None
        table(f"Loghub {args.loghub_task} ({args.embedder})", input_vectors(train.x), train.y)
        texts = source.texts("train", np.asarray(train.serials, np.int64))
        masked_table(list(texts), np.asarray(train.y))


if __name__ == "__main__":
    main()
