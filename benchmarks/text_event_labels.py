"""Loghub --task event: SSVAE test accuracy for about 300 fixed labels, by how they are chosen.

A diagnostic for the active-learning target (>= 95% with <= 300 labels): it separates what the
labels cover (how many of the 99 templates, and the share of test messages whose template has
a label) from what the model makes of them. The pool and test split are those of
text_event_al.py (messages with a template class).

    .venv/bin/python benchmarks/text_event_labels.py --choice stratified random kcenter_input

- stratified: 3 labels of every template (297), the coverage an ideal policy would give;
- random: 300 pool messages at random;
- kcenter_input: 300 picks of greedy k-center on the embedded vectors themselves (not the
  model's latent space, which the `kcenter` policy uses), first pick at random.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
from benchmarks_common import cpu_model, overrides_of
from text_common import add_text_options, load_splits, open_loghub

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.data import Samples
from ssvae.domain.labels import LabelSet
from ssvae.domain.spec import preset

NUM_LABELS = 300


def kcenter_rows(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Greedy k-center on the rows of `x` (squared Euclidean), the first centre at random."""
    first = int(np.random.default_rng(seed).integers(len(x)))
    picks = [first]
    nearest = ((x - x[first]) ** 2).sum(1)
    for _ in range(k - 1):
        row = int(nearest.argmax())
        picks.append(row)
        nearest = np.minimum(nearest, ((x - x[row]) ** 2).sum(1))
    return np.asarray(picks)


def chosen_rows(choice: str, pool: Samples, num_classes: int, seed: int) -> np.ndarray:
    """The pool rows that `choice` labels."""
    assert pool.y is not None
    rng = np.random.default_rng(seed)
    if choice == "stratified":
        per_class = NUM_LABELS // num_classes
        return np.concatenate(
            [
                rng.choice(np.flatnonzero(pool.y == c), per_class, replace=False)
                for c in range(num_classes)
            ]
        )
    if choice == "random":
        return rng.choice(len(pool.y), NUM_LABELS, replace=False)
    return kcenter_rows(np.asarray(pool.x, np.float64), NUM_LABELS, seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--choice",
        nargs="+",
        choices=["stratified", "random", "kcenter_input"],
        default=["stratified", "random", "kcenter_input"],
    )
    parser.add_argument("--preset", default="text_mixture_k20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=5)
    add_text_options(parser)
    args = parser.parse_args()
    source = open_loghub("event", args)
    info = source.describe()
    train, test, _ = load_splits(source)
    assert train.y is not None and test.y is not None
    keep, keep_test = train.y >= 0, test.y >= 0
    pool = Samples(x=train.x[keep], y=train.y[keep], serials=train.serials[keep])
    x_test, y_test = test.x[keep_test], test.y[keep_test]
    overrides: dict[str, Any] = {"validation_split": 0.0, **overrides_of(args.set)}
    base = preset(args.preset, input_shape=pool.x.shape[1:], num_classes=len(info.vocabulary))
    names = info.vocabulary.names
    runs = []
    for choice in args.choice:
        for seed in args.seeds:
            rows = chosen_rows(choice, pool, len(names), seed)
            assert pool.y is not None
            classes = pool.y[rows]
            labels = LabelSet.from_pairs(
                info.vocabulary, [(int(pool.serials[r]), names[int(pool.y[r])]) for r in rows]
            )
            start = time.perf_counter()
            model = JaxSsvaeModel(base.evolve(seed=seed, **overrides))
            model.fit(pool, labels, epochs=args.epochs)
            probs = model.predict(x_test).class_probs
            run = {
                "choice": choice,
                "seed": seed,
                "labels": len(rows),
                "templates_covered": len(np.unique(classes)),
                "test_share_covered": round(float(np.isin(y_test, classes).mean()), 4),
                "test_accuracy": round(float(np.mean(probs.argmax(1) == y_test)), 4),
                "wall_seconds": round(time.perf_counter() - start, 1),
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {
        "preset": args.preset,
        "overrides": overrides,
        "embedder": args.embedder,
        "epochs": args.epochs,
        "pool": len(pool.x),
        "test": len(y_test),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
