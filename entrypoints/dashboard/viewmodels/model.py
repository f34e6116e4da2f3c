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
    """One training round as the history of runs shows it.

    The validation figure is the validation loss of the run's last epoch: validation holds
    out unlabelled samples only (labels are too scarce to spare), so no validation accuracy
    is ever measured; the loss is what early stopping watches.
    """

    round: int
    labels: int
    epochs: int
    val_loss: float | None
    test_accuracy: float | None  # on the dataset's labelled test split, when measured
    stop_reason: str = ""

    @property
    def trained(self) -> bool:
        """Whether an epoch ended: a run stopped before its first has no figure of its own."""
        return self.epochs > 0


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
    """history.csv rows joined with the test accuracies measured for some rounds; a run that
    ended no epoch gets no figures (its test accuracy would be its predecessor's, or chance)."""
    records = []
    for row in history:
        index = int(_number(row.get("round")) or 0)
        epochs = int(_number(row.get("epochs_run")) or 0)
        records.append(
            RunRecord(
                round=index,
                labels=int(_number(row.get("labels")) or 0),
                epochs=epochs,
                val_loss=_number(row.get("val_loss")) if epochs else None,
                test_accuracy=test_accuracy.get(index) if epochs else None,
                stop_reason=str(row.get("stop_reason") or ""),
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


def short_names(names: tuple[str, ...], limit: int = 14) -> tuple[str, ...]:
    """Axis labels for `names`: each cut to `limit` characters with an ellipsis, and still
    one label per name (a cut that two names share gets the class's index appended), so a
    plot keyed by them keeps every class apart; the full name goes in the hover."""
    cut = [name if len(name) <= limit else name[: limit - 1] + "…" for name in names]
    counts: dict[str, int] = {}
    for label in cut:
        counts[label] = counts.get(label, 0) + 1
    seen = set(names)
    out = []
    for index, label in enumerate(cut):
        if label != names[index] and (counts[label] > 1 or label in seen):
            label = f"{label}#{index}"
        out.append(label)
    return tuple(out)
