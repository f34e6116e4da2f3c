"""The Model page's view model: the spec, tau, component usage, labels and accuracy history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.spec import ModelSpec

FloatArray = npt.NDArray[np.float64]


@attrs.frozen
class RunRecord:
    """One training round as the accuracy history shows it."""

    round: int
    labels: int
    epochs: int
    val_accuracy: float | None
    test_accuracy: float | None  # on the dataset's labelled test split, when measured


@attrs.frozen(eq=False)
class ModelOverview:
    """Everything the Model page draws."""

    model_id: str
    preset: str
    spec: tuple[tuple[str, str, str], ...]  # (field, value, doc)
    tau: FloatArray | None  # (components, classes) after the latest round
    usage: FloatArray | None  # mean responsibility of each component over the pool
    counts: Mapping[str, int]
    runs: tuple[RunRecord, ...]
    class_names: tuple[str, ...]


def spec_rows(spec: ModelSpec) -> tuple[tuple[str, str, str], ...]:
    """(field, value, doc) for every spec field, in declaration order."""
    docs = ModelSpec.field_docs()
    return tuple((name, repr(value), docs[name]) for name, value in spec.to_fields().items())


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def run_records(
    history: list[dict[str, str]], test_accuracy: Mapping[int, float]
) -> tuple[RunRecord, ...]:
    """history.csv rows joined with the test accuracies measured for some rounds."""
    records = []
    for row in history:
        index = int(_number(row.get("round")) or 0)
        records.append(
            RunRecord(
                round=index,
                labels=int(_number(row.get("labels")) or 0),
                epochs=int(_number(row.get("epochs_run")) or 0),
                val_accuracy=_number(row.get("val_accuracy")),
                test_accuracy=test_accuracy.get(index),
            )
        )
    return tuple(records)


def component_usage(responsibilities: FloatArray | None) -> FloatArray | None:
    """The mean responsibility of each component over the pool; None for one component."""
    if responsibilities is None or responsibilities.shape[1] < 2:
        return None
    usage: FloatArray = np.asarray(responsibilities, np.float64).mean(axis=0)
    return usage


def accuracy(probs: npt.ArrayLike, truth: npt.ArrayLike) -> float | None:
    """The share of rows whose most probable class is the truth (rows with truth -1 skipped)."""
    classes = np.asarray(truth, np.int64)
    known = classes >= 0
    if not np.any(known):
        return None
    predicted = np.asarray(probs).argmax(axis=1)
    return float(np.mean(predicted[known] == classes[known]))
