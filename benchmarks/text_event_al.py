"""Loghub active learning with a simulated oracle, from zero labels: `--task event` (20 a
round up to 300 labels) or `--task system` (10 a round up to 50 labels).

- event: the target is >= 95% test accuracy (the held-out 20% of the 18,530 messages
  of the 99 templates) with at most 300 labels, and a learning curve against random sampling.
  The pool is the 14,824 training messages with a template class (the oracle answers with
  it); the 1,470 messages of rarer templates never enter the pool of a simulation.
- system: a budget of 50 labels chosen by the tool, 10 a round, for the 10 systems; the
  target is >= 97% mean test accuracy (the 4,000 held-out messages) at 50 labels. The pool is
  the 16,000 training messages. `benchmarks/text_system.py` measures 5 random labels a system
  instead; run `random` here beside the tool's policies for the same budget.

    .venv/bin/python benchmarks/text_event_al.py [--task event|system] [--policies P ...]
        [--seeds 0 1 2] [--quick]

It runs `ssvae simulate` in process (the same SimulateService and report) and writes
BENCHMARK.md and benchmark.json beside REPORT.md in artifacts/experiments/<timestamp>/.
Round 0 trains on no labels (`--initial-epochs`, default per task: with 0 the first query sees
an untrained model, so the first labels come from the policy's features or at random); every
round then trains a fresh model (`--retrain scratch`) on all labels so far. Options left out
take the task's defaults (TASKS below).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks_common import cpu_model, overrides_of, policy_figures, write_benchmark
from simulate_mnist import Progress
from text_common import MINILM_FOLDER

from ssvae.application.bootstrap import bootstrap
from ssvae.application.settings import AppSettings, DataSettings
from ssvae.domain.simulation import SimulationSettings, conclusions, summarise
from ssvae.domain.stopping import StoppingRule


@dataclass(frozen=True)
class TaskDefaults:
    """What a task's benchmark runs unless the command says otherwise, and its target."""

    policies: tuple[str, ...]
    k: int  # labels a round
    max_labels: int  # the target's label budget
    target_accuracy: float
    preset: str
    initial_epochs: int
    epochs_per_round: int
    overrides: tuple[str, ...] = ()  # --set NAME=VALUE items that come before the command's


TASKS = {
    "event": TaskDefaults(
        policies=("typiclust", "kcenter", "random"),
        k=20,
        max_labels=300,
        target_accuracy=0.95,
        preset="text_mixture_k20",
        initial_epochs=0,
        epochs_per_round=10,
    ),
    # Chosen on seed 0 (benchmarks/README.md): the noise and the classification weight that
    # lift the SSVAE above logistic regression on the same 50 labels; typiclust throughout,
    # since margin's picks after 30 labels cover fewer templates.
    "system": TaskDefaults(
        policies=("typiclust", "typiclust_margin", "random"),
        k=10,
        max_labels=50,
        target_accuracy=0.97,
        preset="text_standard",
        initial_epochs=5,
        epochs_per_round=30,
        overrides=("augment_noise=2.0", "classification_weight=1.0"),
    ),
}


def verdict(summaries: Any, target_labels: int) -> dict[str, Any]:
    """Best non-random policy by AULC, its labels to the target, and its AULC against random."""
    ranked = sorted((s for s in summaries if s.aulc), key=lambda s: -s.aulc_mean)
    random = next((s for s in ranked if s.policy == "random"), None)
    best = next((s for s in ranked if s.policy != "random"), None)
    if best is None:
        return {"best": None, "reaches_target": False}
    out: dict[str, Any] = {
        "best": best.policy,
        "best_aulc": best.aulc_mean,
        "best_final_accuracy": best.final_accuracy,
        "best_labels_to_target": best.labels_to_target,
        "reaches_target": best.labels_to_target is not None
        and best.labels_to_target <= target_labels,
    }
    if random is not None:
        out.update(
            random_aulc=random.aulc_mean,
            random_final_accuracy=random.final_accuracy,
            random_labels_to_target=random.labels_to_target,
            aulc_difference=best.aulc_mean - random.aulc_mean,
        )
    return out


def final_accuracies(runs: Any) -> dict[str, dict[str, Any]]:
    """Per policy: the test accuracy of each finished seed's last round, and their mean."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.status == "finished" and run.rounds:
            last = run.rounds[-1]
            entry = out.setdefault(run.policy, {"labels": last.labels, "per_seed": {}})
            entry["per_seed"][str(run.seed)] = round(last.accuracy, 4)
    for entry in out.values():
        values = list(entry["per_seed"].values())
        entry["mean"] = round(sum(values) / len(values), 4)
    return out


def parse_arguments() -> tuple[argparse.Namespace, TaskDefaults]:
    """The command's options, with those it left out taken from its task's defaults."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=sorted(TASKS), default="event")
    parser.add_argument("--policies", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--k", type=int, default=None, help="labels a round")
    parser.add_argument("--max-labels", type=int, default=None)
    parser.add_argument("--initial-epochs", type=int, default=None)
    parser.add_argument("--epochs-per-round", type=int, default=None)
    parser.add_argument("--retrain", choices=["warm", "scratch"], default="scratch")
    parser.add_argument("--num-samples", type=int, default=0, help="pool size (0: all)")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--embedder", choices=["tfidf", "minilm"], default="tfidf")
    parser.add_argument("--embedder-dim", type=int, default=256)
    parser.add_argument("--scaling", choices=["l2", "standardise", "none"], default="l2")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument(
        "--quick", action="store_true", help="4,000-message pool, 100 labels, 5 epochs a round"
    )
    args = parser.parse_args()
    task = TASKS[args.task]
    for name in ("policies", "k", "max_labels", "initial_epochs", "epochs_per_round", "preset"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(task, name))
    args.set = [*task.overrides, *args.set]
    if args.quick:
        args.num_samples = args.num_samples or 4000
        args.max_labels = min(args.max_labels, 100)
        args.epochs_per_round = min(args.epochs_per_round, 5)
    return args, task


def main() -> None:
    args, task = parse_arguments()
    command = shlex.join([".venv/bin/python", "benchmarks/text_event_al.py", *sys.argv[1:]])
    settings = SimulationSettings(
        policies=tuple(args.policies),
        seeds=tuple(args.seeds),
        initial_labels=0,
        rounds=args.max_labels // args.k,
        k=args.k,
        epochs_per_round=args.epochs_per_round,
        retrain=args.retrain,
        initial_epochs=args.initial_epochs,
        num_samples=args.num_samples,
        num_test=0,
        preset=args.preset,
        overrides=overrides_of(args.set),
        dataset="loghub",
        target_accuracy=task.target_accuracy,
        stopping=StoppingRule(budget=args.max_labels, kappa_threshold=0.99, tau_tolerance=0.02),
        out=str(args.artifacts / "experiments"),
        command=command,
    )
    data = DataSettings(
        kind="text",
        name="loghub",
        task=args.task,
        embedder=args.embedder,
        embedder_dim=args.embedder_dim,
        embedder_folder=MINILM_FOLDER if args.embedder == "minilm" else None,
        scaling=args.scaling,
    )
    app = bootstrap(AppSettings(data=data, artifacts_dir=args.artifacts))
    run = app.simulate_service().run(settings, Progress())
    summaries = summarise(run.result)
    curves = {
        f"{r.policy}/{r.seed}": [[p.labels, round(p.accuracy, 4)] for p in r.rounds]
        for r in run.result.runs
    }
    document = {
        "command": command,
        "task": args.task,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "seconds": run.result.seconds,
        "interrupted": run.interrupted,
        "pool_size": run.result.pool_size,
        "test_size": run.result.test_size,
        "seeds": list(args.seeds),
        "targets": {"accuracy": task.target_accuracy, "labels": task.max_labels},
        "verdict": verdict(summaries, task.max_labels),
        "policies": policy_figures(summaries),
        "final_accuracy": final_accuracies(run.result.runs),
        "curves": curves,
        "report": str(run.directory / "REPORT.md"),
    }
    lines = [
        f"# Loghub --task {args.task} simulated-oracle benchmark",
        "",
        f"{cpu_model()}, {run.result.seconds / 60:.1f} minutes; pool {run.result.pool_size}, "
        f"test {run.result.test_size}.",
        "",
        "    " + command,
        "",
        *[f"- {line}" for line in conclusions(summaries, task.target_accuracy)],
        *[
            f"- {policy} at {entry['labels']} labels: mean {100 * entry['mean']:.1f}% "
            f"(per seed {', '.join(f'{100 * v:.1f}%' for v in entry['per_seed'].values())})."
            for policy, entry in document["final_accuracy"].items()
        ],
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]
    write_benchmark(run.directory, document, lines)
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
