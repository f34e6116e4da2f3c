"""How much does one model's MNIST test accuracy depend on its own seed, labels held fixed?

An active-learning curve trains one fresh model per round, so the spread of single models on
the same labels is noise that every policy's curve carries. This script fixes the pool and
the labels (`--per-class` per digit, chosen by `--label-seed`), trains one model per
`--seeds` value for `--epochs` epochs, and prints the test accuracy of each, their mean and
their spread (max - min), for the preset with any `--set` overrides:

    .venv/bin/python benchmarks/mnist_seed_spread.py --per-class 5 --set classification_weight=1.0

Pool: `--num-samples` training images drawn by `--pool-seed`; test: all 10,000 test images.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from benchmarks_common import choose_labels, cpu_model, load_mnist, overrides_of

from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.data import Samples
from ssvae.domain.spec import preset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--pool-seed", type=int, default=0)
    parser.add_argument("--label-seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    overrides = overrides_of(args.set)

    x, y = load_mnist("train")
    x_test, y_test = load_mnist("t10k")
    rows = np.random.default_rng(args.pool_seed).permutation(len(x))[: args.num_samples]
    x, y = x[rows], y[rows]
    pool = Samples(serials=np.arange(len(x), dtype=np.int64), x=x, y=y)
    labels = choose_labels(y, args.per_class, args.label_seed)

    accuracies = []
    for seed in args.seeds:
        model = JaxSsvaeModel(preset(args.preset, seed=seed, **overrides))
        start = time.perf_counter()
        model.fit(pool, labels, args.epochs)
        accuracy = float(np.mean(model.predict(x_test).class_probs.argmax(1) == y_test))
        accuracies.append(accuracy)
        print(
            json.dumps(
                {
                    "seed": seed,
                    "test_accuracy": round(accuracy, 4),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "preset": args.preset,
                "overrides": overrides,
                "per_class": args.per_class,
                "epochs": args.epochs,
                "pool": len(x),
                "mean_accuracy": round(float(np.mean(accuracies)), 4),
                "spread": round(float(max(accuracies) - min(accuracies)), 4),
                "cpu": cpu_model(),
                "load_average": os.getloadavg(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
