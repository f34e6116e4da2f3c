"""`summary.json`: every number of a comparison in one machine-readable file.

Accuracies are fractions in [0, 1]; a number that was not measured is null.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ssvae.domain.comparison import ComparisonResult, ModelOutcome, conclusion
from ssvae.domain.spec import ModelSpec
from ssvae.domain.text_examples import ExampleGroup, TextExamples

FORMAT_VERSION = 1


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def spec_fields(spec: ModelSpec) -> dict[str, Any]:
    """The spec as JSON values (tuples become lists)."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in spec.to_fields().items()
    }


def _relative(path: Path | None, directory: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.relative_to(directory).as_posix()
    except ValueError:
        return str(path)


def model_summary(
    outcome: ModelOutcome, class_names: tuple[str, ...], directory: Path
) -> dict[str, Any]:
    """One model's entry: spec, status, training and, when evaluated, test numbers."""
    entry: dict[str, Any] = {
        "name": outcome.name,
        "status": outcome.status,
        "message": outcome.message,
        "spec": spec_fields(outcome.plan.spec),
        "epochs_run": outcome.epochs_run,
        "max_epochs": outcome.plan.spec.training.max_epochs,
        "stop_reason": outcome.stop_reason or None,
        "best_epoch": outcome.best_epoch or None,
        "training_seconds": round(outcome.seconds, 3),
        "elbo": {
            "validation": _number(outcome.validation_elbo),
            "epoch": outcome.best_epoch or None,
        },
        "checkpoint": _relative(outcome.checkpoint, directory),
        "history": f"models/{outcome.name}/history.csv" if outcome.history else None,
        "test_accuracy": None,
        "per_class_accuracy": None,
        "component_usage": None,
        "usage_entropy": None,
        "effective_components": None,
        "mixing_weights": None,
        "confusion_matrix": None,
    }
    evaluation = outcome.evaluation
    if evaluation is None:
        return entry
    weights = evaluation.mixing_weights
    entry.update(
        test_accuracy={
            "classifier": _number(evaluation.accuracy),
            "component_map": _number(evaluation.tau_accuracy),
        },
        per_class_accuracy={
            name: _number(acc) for name, acc in zip(class_names, evaluation.per_class, strict=True)
        },
        component_usage=[round(float(u), 6) for u in evaluation.component_usage],
        usage_entropy=_number(evaluation.usage_entropy),
        effective_components=_number(math.exp(evaluation.usage_entropy)),
        mixing_weights=None if weights is None else [round(float(w), 6) for w in weights],
        confusion_matrix=np.asarray(evaluation.confusion).astype(int).tolist(),
        test_samples=evaluation.test_size,
    )
    if evaluation.examples is not None:
        entry["message_examples"] = examples_summary(evaluation.examples)
    return entry


def _groups(groups: tuple[ExampleGroup, ...]) -> dict[str, Any]:
    return {
        group.name: {
            "members": group.members,
            "share": _number(group.share),
            "majority_true_class": group.majority,
            "purity": _number(group.purity),
            "examples": [
                {
                    "serial": example.serial,
                    "score": _number(example.score),
                    "true_class": example.true_class,
                    "text": example.text,
                }
                for example in group.examples
            ],
        }
        for group in groups
    }


def examples_summary(examples: TextExamples) -> dict[str, Any]:
    """Text data: the messages per class and per component, as the report lists them."""
    return {
        "source": examples.source,
        "per_class": _groups(examples.per_class),
        "per_component": _groups(examples.per_component),
    }


def summary_of(result: ComparisonResult, directory: Path) -> dict[str, Any]:
    """The whole comparison as JSON-ready values."""
    experiment = result.experiment
    return {
        "format_version": FORMAT_VERSION,
        "started": result.started,
        "seconds": round(result.seconds, 3),
        "interrupted": result.interrupted,
        "experiment": {
            "source": experiment.source,
            "dataset": experiment.dataset,
            "num_samples": experiment.num_samples,
            "num_labeled": experiment.num_labeled,
            "num_test": experiment.num_test,
            "sampling": experiment.sampling,
            "seed": experiment.seed,
            "models": [plan.name for plan in experiment.models],
        },
        "data": {
            "dataset": result.dataset,
            "classes": list(result.class_names),
            "input_shape": list(result.input_shape),
            "train_samples": result.train_size,
            "labelled_samples": sum(result.labelled_per_class),
            "labelled_per_class": dict(
                zip(result.class_names, result.labelled_per_class, strict=True)
            ),
            "test_samples": result.test_size,
        },
        "models": [model_summary(o, result.class_names, directory) for o in result.outcomes],
        "conclusion": list(conclusion(result)),
    }
