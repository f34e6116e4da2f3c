"""Simulated-oracle active learning on MNIST: do the policies beat random sampling?

The benchmark (defaults): start from 10 labels (one per class), query 10 per round up
to 200 labels, 3 seeds, the whole train split as the pool and the whole test split for
accuracy. Targets: the best policy reaches 95% test accuracy with at most 150 labels, and
beats random sampling in area under the learning curve (AULC) by more than the seeds' spread
(the largest max - min of per-seed AULC of the two policies).

    .venv/bin/python benchmarks/simulate_mnist.py

It runs `ssvae simulate` in process (the same SimulateService and report), then writes
BENCHMARK.md and benchmark.json beside REPORT.md in artifacts/experiments/<timestamp>/.
The full run trains 3 seeds x (25 + 3 policies x 19 rounds x 3) epochs over 60,000 images:
hours on a small CPU, minutes on a GPU. A reduced run for a quick look:

    .venv/bin/python benchmarks/simulate_mnist.py --num-samples 2000 --num-test 1000 \\
        --seeds 0 --policies margin random --max-labels 50 --initial-epochs 5 \\
        --epochs-per-round 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks_common import cpu_model, overrides_of, policy_figures, write_benchmark

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings
from ssvae.domain.simulation import (
    PolicySummary,
    RoundResult,
    SimulationSettings,
    conclusions,
    summarise,
)
from ssvae.domain.stopping import StoppingRule

TARGET_ACCURACY = 0.95
TARGET_LABELS = 150


class Progress:
    """One line per stage and per round on stderr, with the elapsed time."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def _echo(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.0f} s] {text}", file=sys.stderr, flush=True)

    def stage(self, text: str) -> None:
        self._echo(text)

    def run_started(self, policy: str, seed: int, index: int, total: int) -> None:
        self._echo(f"run {index + 1}/{total}: {policy}, seed {seed}")

    def round_finished(self, policy: str, seed: int, result: RoundResult) -> None:
        self._echo(
            f"  {policy} seed {seed} round {result.round}: {result.labels} labels, "
            f"test accuracy {100 * result.accuracy:.2f}% ({result.seconds:.0f} s training)"
        )


def verdict(summaries: tuple[PolicySummary, ...]) -> dict[str, Any]:
    """The two targets above, checked on the summaries."""
    ranked = sorted((s for s in summaries if s.aulc), key=lambda s: -s.aulc_mean)
    random = next((s for s in summaries if s.policy == "random" and s.aulc), None)
    candidates = [s for s in ranked if s.policy != "random"]
    if not candidates:
        return {"best": None, "reaches_target": False, "beats_random": False}
    best = candidates[0]
    reaches = best.labels_to_target is not None and best.labels_to_target <= TARGET_LABELS
    result: dict[str, Any] = {
        "best": best.policy,
        "best_aulc": best.aulc_mean,
        "best_labels_to_95": best.labels_to_target,
        "reaches_target": reaches,
    }
    if random is not None:
        difference = best.aulc_mean - random.aulc_mean
        spread = max(best.aulc_range, random.aulc_range)
        result.update(
            random_aulc=random.aulc_mean,
            aulc_difference=difference,
            seeds_spread=spread,
            # One seed has no spread: the comparison cannot be decided.
            beats_random=difference > spread if len(best.seeds) > 1 else None,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", nargs="+", default=["margin", "diverse_margin", "random"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--initial-labels", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-labels", type=int, default=200)
    parser.add_argument("--initial-epochs", type=int, default=25)
    parser.add_argument("--epochs-per-round", type=int, default=3)
    parser.add_argument("--retrain", choices=["warm", "scratch"], default="warm")
    parser.add_argument("--num-samples", type=int, default=0, help="pool size (0: all 60,000)")
    parser.add_argument("--num-test", type=int, default=0, help="test samples (0: all 10,000)")
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()

    rounds = (args.max_labels - args.initial_labels) // args.k
    # The presets carry the semi-supervised configuration (top-3 enumeration, alpha 1.0 N,
    # consistency under 2-pixel shifts); --set changes any field over it.
    overrides = overrides_of(args.set)
    command = shlex.join([".venv/bin/python", "benchmarks/simulate_mnist.py", *sys.argv[1:]])
    settings = SimulationSettings(
        policies=tuple(args.policies),
        seeds=tuple(args.seeds),
        initial_labels=args.initial_labels,
        rounds=rounds,
        k=args.k,
        epochs_per_round=args.epochs_per_round,
        retrain=args.retrain,
        initial_epochs=args.initial_epochs,
        num_samples=args.num_samples,
        num_test=args.num_test,
        preset=args.preset,
        overrides=overrides,
        dataset="mnist",
        target_accuracy=TARGET_ACCURACY,
        stopping=StoppingRule(budget=args.max_labels, kappa_threshold=0.99, tau_tolerance=0.02),
        out=str(args.artifacts / "experiments"),
        command=command,
    )
    app = bootstrap(
        AppSettings(data=DataSettings(kind="idx", name="mnist"), artifacts_dir=args.artifacts)
    )
    run = app.simulate_service().run(settings, Progress())
    summaries = summarise(run.result)
    checked = verdict(summaries)
    document = {
        "command": command,
        "cpu": cpu_model(),
        "seconds": run.result.seconds,
        "interrupted": run.interrupted,
        "pool_size": run.result.pool_size,
        "test_size": run.result.test_size,
        "targets": {"accuracy": TARGET_ACCURACY, "labels": TARGET_LABELS},
        "verdict": checked,
        "policies": policy_figures(summaries),
    }
    full = args.num_samples == 0 and args.num_test == 0 and len(args.seeds) >= 3
    lines = [
        "# MNIST simulated-oracle benchmark",
        "",
        f"{'Full' if full else 'Reduced'} run on {cpu_model()}, {run.result.seconds / 60:.1f} "
        f"minutes; pool {run.result.pool_size}, test {run.result.test_size}.",
        "",
        "    " + command,
        "",
        f"- best policy: {checked['best']}; labels to {100 * TARGET_ACCURACY:.0f}%: "
        f"{checked.get('best_labels_to_95')} (target <= {TARGET_LABELS}): "
        f"{'met' if checked['reaches_target'] else 'not met'}",
    ]
    if "random_aulc" in checked:  # a best policy and random both finished
        lines.append(
            f"- AULC {checked['best_aulc']:.4f} vs random {checked['random_aulc']:.4f}: "
            f"difference {checked['aulc_difference']:+.4f}, seeds' spread "
            f"{checked['seeds_spread']:.4f}: "
            + {True: "met", False: "not met", None: "undecided (one seed)"}[checked["beats_random"]]
        )
    lines += [f"- {line}" for line in conclusions(summaries, TARGET_ACCURACY)]
    lines += ["", "![learning curves](learning_curves.png)", ""]
    write_benchmark(run.directory, document, lines)
    print("\n".join(lines))
    print(f"\nreport: {run.directory / 'REPORT.md'}")


if __name__ == "__main__":
    main()
