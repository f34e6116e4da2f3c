"""The report of a simulated-oracle experiment: learning curves as PNG, CSV and JSON, REPORT.md.

Files in `artifacts/experiments/<YYYYmmdd-HHMMSS>/` (a `-2`, `-3`... suffix when taken):
- `learning_curves.png`: mean test accuracy against labels per policy, a band of +-1
  standard deviation over seeds, the target accuracy as a dotted line;
- `learning_curves.csv`: one row per policy, seed and round;
- `learning_curves.json`: the settings, every round of every run, the summaries (AULC);
- `REPORT.md`: the command, the settings, the AULC table, the conclusions, the figure.
Every file is written atomically.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders PNG with Agg: no pyplot, no GUI

from ssvae.adapters.files import (
    atomic_write_bytes,
    atomic_write_text,
    create_timestamped_directory,
)
from ssvae.adapters.reporting.documents import to_markdown
from ssvae.adapters.reporting.examples import example_blocks
from ssvae.adapters.reporting.summary import examples_summary
from ssvae.domain.simulation import (
    FINISHED,
    PolicySummary,
    SimulationResult,
    conclusions,
    summarise,
)

DPI = 110
PNG = "learning_curves.png"
CSV = "learning_curves.csv"
JSON = "learning_curves.json"
REPORT = "REPORT.md"
CSV_COLUMNS = (
    "policy",
    "seed",
    "status",
    "round",
    "labels",
    "accuracy",
    "kappa",
    "tau_change",
    "stop_reasons",
    "seconds",
    "queried",
)


RETRAIN_WORDS = {"warm": "warm start", "scratch": "a fresh model every round"}


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def learning_curve_png(result: SimulationResult, summaries: Sequence[PolicySummary]) -> bytes:
    """Mean test accuracy against labels, one colour per policy, +-1 std band over seeds."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for index, summary in enumerate(summaries):
        if not summary.labels:
            continue
        x = np.array(summary.labels, np.float64)
        mean = 100 * np.array(summary.mean_accuracy)
        std = 100 * np.array(summary.std_accuracy)
        color = cmap(index % 10)
        label = (
            f"{summary.policy} (AULC {summary.aulc_mean:.3f}, {len(summary.seeds)} seed"
            f"{'s' if len(summary.seeds) != 1 else ''})"
        )
        axes.plot(x, mean, marker="o", markersize=3, color=color, label=label)
        if len(summary.seeds) > 1:
            axes.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
    target = result.settings.target_accuracy
    axes.axhline(100 * target, color="grey", linestyle=":", label=f"target {_pct(target)}")
    axes.set_xlabel("labels")
    axes.set_ylabel(f"test accuracy (%), {result.test_size} samples, mean +- 1 std")
    axes.set_title(
        f"{result.dataset}: {result.settings.initial_labels} initial labels, "
        f"{result.settings.k} per round, pool {result.pool_size}"
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def learning_curve_csv(result: SimulationResult) -> str:
    """One row per (policy, seed, round)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in result.runs:
        for r in run.rounds:
            writer.writerow(
                [
                    run.policy,
                    run.seed,
                    run.status,
                    r.round,
                    r.labels,
                    repr(r.accuracy),
                    "" if r.kappa is None else repr(r.kappa),
                    "" if r.tau_change is None else repr(r.tau_change),
                    "; ".join(r.stop_reasons),
                    f"{r.seconds:.3f}",
                    " ".join(str(s) for s in r.queried),
                ]
            )
    return buffer.getvalue()


def _summary_json(summary: PolicySummary) -> dict[str, Any]:
    return {
        "policy": summary.policy,
        "seeds": list(summary.seeds),
        "aulc": [_finite(v) for v in summary.aulc],
        "aulc_mean": _finite(summary.aulc_mean),
        "aulc_std": _finite(summary.aulc_std),
        "aulc_range": _finite(summary.aulc_range),
        "labels": list(summary.labels),
        "mean_accuracy": [_finite(v) for v in summary.mean_accuracy],
        "std_accuracy": [_finite(v) for v in summary.std_accuracy],
        "labels_to_target": summary.labels_to_target,
        "seed_labels_to_target": list(summary.seed_labels_to_target),
        "first_stops": {name: labels for name, labels in summary.first_stops},
    }


def learning_curve_json(result: SimulationResult, summaries: Sequence[PolicySummary]) -> str:
    """Settings, every round of every run, the per-policy summaries."""
    settings = result.settings
    stopping = settings.stopping
    document = {
        "dataset": result.dataset,
        "class_names": list(result.class_names),
        "pool_size": result.pool_size,
        "test_size": result.test_size,
        "started": result.started,
        "seconds": round(result.seconds, 3),
        "settings": {
            "policies": list(settings.policies),
            "seeds": list(settings.seeds),
            "initial_labels": settings.initial_labels,
            "rounds": settings.rounds,
            "k": settings.k,
            "epochs_per_round": settings.epochs_per_round,
            "retrain": settings.retrain,
            "initial_epochs": settings.initial_epochs,
            "num_samples": settings.num_samples,
            "num_test": settings.num_test,
            "data_seed": settings.data_seed,
            "preset": settings.preset,
            "overrides": {name: _plain(value) for name, value in settings.overrides},
            "target_accuracy": settings.target_accuracy,
            "stopping": {
                "budget": stopping.budget,
                "max_rounds": stopping.max_rounds,
                "kappa_threshold": stopping.kappa_threshold,
                "kappa_window": stopping.kappa_window,
                "tau_tolerance": stopping.tau_tolerance,
                "tau_measure": stopping.tau_measure,
            },
            "stop_set_size": settings.stop_set_size,
            "command": settings.command,
        },
        "spec": {name: _plain(value) for name, value in result.spec.to_fields().items()},
        "runs": [
            {
                "policy": run.policy,
                "seed": run.seed,
                "status": run.status,
                "message": run.message,
                "rounds": [
                    {
                        "round": r.round,
                        "labels": r.labels,
                        "accuracy": _finite(r.accuracy),
                        "kappa": _finite(r.kappa),
                        "tau_change": _finite(r.tau_change),
                        "stop_reasons": list(r.stop_reasons),
                        "seconds": round(r.seconds, 3),
                        "queried": list(r.queried),
                    }
                    for r in run.rounds
                ],
            }
            for run in result.runs
        ],
        "summaries": [_summary_json(s) for s in summaries],
        "message_examples": None
        if result.text_examples is None
        else examples_summary(result.text_examples),
        "conclusions": list(conclusions(summaries, settings.target_accuracy)),
    }
    return json.dumps(document, indent=1) + "\n"


def _plain(value: Any) -> Any:
    """Tuples as lists; everything else JSON already knows."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(result: SimulationResult, summaries: Sequence[PolicySummary]) -> str:
    """REPORT.md: how it was run, the AULC table, the conclusions, stopping, the figure."""
    settings = result.settings
    lines = [
        f"# Simulated-oracle active learning on {result.dataset}",
        "",
        f"Started {result.started}, {result.seconds:.0f} s in all. "
        f"Pool {result.pool_size} training samples, test {result.test_size} samples.",
        "",
    ]
    if settings.command:
        lines += ["Command:", "", f"    {settings.command}", ""]
    overrides = ", ".join(f"{n}={v!r}" for n, v in settings.overrides) or "none"
    lines += [
        "| setting | value |",
        "| --- | --- |",
        f"| policies | {', '.join(settings.policies)} |",
        f"| seeds | {' '.join(str(s) for s in settings.seeds)} |",
        f"| labels | {settings.initial_labels} initial, {settings.k} per round, "
        f"{settings.rounds} rounds: up to {settings.final_labels} |",
        f"| training | {settings.initial_epochs} initial epochs, {settings.epochs_per_round} "
        f"per round ({RETRAIN_WORDS[settings.retrain]}) |",
        f"| model | preset {settings.preset}, overrides: {_cell(overrides)} |",
        f"| target accuracy | {_pct(settings.target_accuracy)} |",
        "",
        "## Area under the learning curve",
        "",
        "AULC: trapezoid area under test accuracy against labels, divided by the label range "
        "(the mean accuracy over it). Spread: max - min over seeds.",
        "",
        "| policy | seeds | AULC mean | std | spread | final accuracy | labels to target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        if not s.aulc:
            lines.append(f"| {s.policy} | 0 | - | - | - | - | - |")
            continue
        lines.append(
            f"| {s.policy} | {len(s.seeds)} | {s.aulc_mean:.4f} | {s.aulc_std:.4f} | "
            f"{s.aulc_range:.4f} | {_pct(s.final_accuracy)} | "
            f"{s.labels_to_target if s.labels_to_target is not None else 'not reached'} |"
        )
    lines += ["", "## Conclusions", ""]
    lines += [f"- {line}" for line in conclusions(summaries, settings.target_accuracy)]
    rule = settings.stopping
    lines += [
        "",
        "## Stopping criteria",
        "",
        f"Checked after every round (reported, not applied): budget {rule.budget}, maximum "
        f"rounds {rule.max_rounds}, Cohen's kappa between consecutive rounds' predictions "
        f"averaged over the last {rule.kappa_window} pair(s) >= {rule.kappa_threshold}, tau "
        f"change ({rule.tau_measure}) <= {rule.tau_tolerance}; predictions on a fixed stop "
        f"set of {min(settings.stop_set_size, result.pool_size)} pool samples. Mean labels at "
        "which each criterion first held (over the seeds where it held):",
        "",
    ]
    for s in summaries:
        met = ", ".join(f"{name} at {labels:.0f} labels" for name, labels in s.first_stops)
        lines.append(f"- {s.policy}: {met or 'none met'}")
    unfinished = [run for run in result.runs if run.status != FINISHED]
    if unfinished:
        lines += ["", "## Runs left out of the summaries", ""]
        lines += [
            f"- {run.policy}, seed {run.seed}: {run.status}: {_cell(run.message)}"
            for run in unfinished
        ]
    lines += ["", "## Learning curves", "", f"![learning curves]({PNG})", ""]
    lines += [f"Data: [{CSV}]({CSV}), [{JSON}]({JSON}).", ""]
    if result.text_examples is not None:
        blocks = example_blocks(result.text_examples, "Message examples of the best run")
        lines += [to_markdown(blocks)]
    return "\n".join(lines)


class FileLearningCurveWriter:
    """A LearningCurveWriter into `<root>/<YYYYmmdd-HHMMSS>/`."""

    def __init__(self, now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.now = now

    def create_run_directory(self, root: Path) -> Path:
        """`root/<YYYYmmdd-HHMMSS>`, unique even for runs started in the same second."""
        stamp = self.now().strftime("%Y%m%d-%H%M%S")
        return create_timestamped_directory(root, stamp, "experiment", "--artifacts")

    def write(self, result: SimulationResult, directory: Path) -> Sequence[Path]:
        """The PNG, CSV, JSON and REPORT.md of `result` in `directory`."""
        summaries = summarise(result)
        files = [directory / name for name in (PNG, CSV, JSON, REPORT)]
        atomic_write_bytes(files[0], learning_curve_png(result, summaries))
        atomic_write_text(files[1], learning_curve_csv(result))
        atomic_write_text(files[2], learning_curve_json(result, summaries))
        atomic_write_text(files[3], report_markdown(result, summaries))
        return files
