"""How much novelty slows a query: `ssvae query --policy novelty` against `--policy margin`.

A workspace over the whole MNIST training split (60,000 images, preset `standard`) with
`--labels` random labels (10 a digit by default) and one training epoch; then the two
queries run in turn, `--repeats` times each, as a user runs them (one `ssvae` process per
query, so each wall time includes starting Python and JAX and loading the checkpoint). The
figure: the median novelty query time over the median margin query time.

    .venv/bin/python benchmarks/novelty_speed.py [--labels 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from benchmarks_common import cpu_model, load_mnist

SSVAE = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "ssvae")


def run(*args: str) -> float:
    """Seconds `ssvae ARGS` took; raises with its stderr when it fails."""
    start = time.perf_counter()
    done = subprocess.run([SSVAE, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ssvae {' '.join(args)} failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", type=int, default=10, help="random labels per digit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run(
            "init",
            "--dataset",
            "mnist",
            "--preset",
            "standard",
            "--id",
            "speed",
            "--artifacts",
            str(root),
        )
        workspace = root / "models" / "speed"
        _, y = load_mnist("train")  # the pool: every training image, serial = row
        rng = np.random.default_rng(args.seed)
        chosen = [
            int(s)
            for digit in range(10)
            for s in rng.choice(np.flatnonzero(y == digit), args.labels, replace=False)
        ]
        labels = root / "labels.csv"
        labels.write_text(
            "Serial,label\n" + "".join(f"{s},{y[s]}\n" for s in chosen), encoding="utf-8"
        )
        run("label", "--model", str(workspace), "import", str(labels))
        train_seconds = run("train", "--model", str(workspace), "--epochs", "1")
        times: dict[str, list[float]] = {"margin": [], "novelty": []}
        for _ in range(args.repeats):
            for policy in times:
                times[policy].append(
                    run("query", "--model", str(workspace), "--policy", policy, "--json")
                )
    margin, novel = statistics.median(times["margin"]), statistics.median(times["novelty"])
    print(
        json.dumps(
            {
                "pool": len(y),
                "labels": 10 * args.labels,
                "train_one_epoch_seconds": round(train_seconds, 1),
                "margin_seconds": [round(t, 2) for t in times["margin"]],
                "novelty_seconds": [round(t, 2) for t in times["novelty"]],
                "slowdown": round(novel / margin - 1.0, 3),
                "target_slowdown": 0.30,
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "load_average": [round(v, 2) for v in os.getloadavg()],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
