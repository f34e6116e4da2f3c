"""The comparison report's figures as PNG bytes (matplotlib, Agg backend, no pyplot state).

Each function takes plain values from `ssvae.domain.comparison` and returns the PNG, so the
writer decides where it goes and writes it atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure  # a bare Figure renders PNG with Agg: no pyplot, no GUI
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ssvae.adapters.reporting.projection import to_2d
from ssvae.domain.comparison import ModelOutcome

DPI = 110
# Metrics that are not loss terms: timing and optimiser diagnostics.
NOT_PLOTTED = ("seconds", "samples_per_second", "grad_norm", "finite")
TITLES = {
    "loss": "total loss (minimised)",
    "unlabelled_loss": "unlabelled term: E_q(y|x)[-ELBO] - H",
    "labelled_loss": "labelled term: -ELBO(x, y)",
    "classification": "classification: -log q(y|x)",
    "reconstruction": "reconstruction: -log p(x|y,z)",
    "kl": "KL(q(z|x,y) || p(z))",
    "entropy": "entropy of q(y|x)",
    "consistency": "consistency KL",
    "accuracy": "accuracy of q(y|x) on labels",
    "elbo": "ELBO (higher is better)",
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def model_colors(names: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per model, the same in every figure."""
    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def class_colors(count: int) -> list[Any]:
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "hsv"]
    return [cmap(i / count if count > 20 else i) for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Loss curves.


def loss_terms(outcomes: Sequence[ModelOutcome]) -> list[tuple[str, str | None, str | None]]:
    """(panel, training metric or None, validation metric or None) for every plotted term.

    A term's validation twin is `val_<term>`; accuracy pairs `train_accuracy` with
    `val_accuracy`. Terms that are zero in every epoch of every model (an extra switched
    off) are left out.
    """
    names: list[str] = []
    for outcome in outcomes:
        for record in outcome.history:
            names.extend(n for n in record.metrics if n not in names and n not in NOT_PLOTTED)

    def informative(name: str) -> bool:
        return any(abs(r.metrics.get(name, 0.0)) > 0 for o in outcomes for r in o.history)

    panels: list[tuple[str, str | None, str | None]] = []
    used: set[str] = set()
    for name in names:
        if name in used:
            continue
        if name.startswith("val_"):
            base = name[4:]
            train = base if base in names else f"train_{base}" if f"train_{base}" in names else None
        else:
            base = name[6:] if name.startswith("train_") else name
            train = name
        val = f"val_{base}" if f"val_{base}" in names else None
        used.update(n for n in (train, val) if n)
        if any(informative(n) for n in (train, val) if n):
            panels.append((base, train, val))
    return panels


def loss_curves(outcomes: Sequence[ModelOutcome], colors: dict[str, Any]) -> bytes:
    """One panel per loss term; a colour per model; training solid, validation dashed."""
    with_history = [o for o in outcomes if o.history]
    panels = loss_terms(with_history)
    columns = min(3, max(len(panels), 1))
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(5.2 * columns, 3.4 * rows + 0.9), layout="constrained")
    figure.suptitle("Loss terms per epoch (solid: training, dashed: validation)")
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for axes, (base, train, val) in zip(axes_grid.flat, panels, strict=False):
        for outcome in with_history:
            epochs = [r.epoch for r in outcome.history]
            for metric, style in ((train, "-"), (val, "--")):
                if metric is None:
                    continue
                values = [r.metrics.get(metric, np.nan) for r in outcome.history]
                axes.plot(
                    epochs, values, style, marker="o", markersize=3, color=colors[outcome.name]
                )
        axes.set_title(TITLES.get(base, base.replace("_", " ")), fontsize=10)
        axes.set_xlabel("epoch")
        axes.set_ylabel("accuracy" if base == "accuracy" else "nats per sample")
        axes.grid(alpha=0.3)
        axes.ticklabel_format(axis="y", useOffset=False)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        last = max((len(o.history) for o in with_history), default=1)
        if last == 1:
            axes.set_xlim(0.5, 1.5)
    for axes in list(axes_grid.flat)[len(panels) :]:
        axes.set_visible(False)
    handles = [Line2D([], [], color=colors[o.name], label=o.name) for o in with_history]
    handles += [
        Line2D([], [], color="grey", linestyle="-", label="training"),
        Line2D([], [], color="grey", linestyle="--", label="validation"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    return _png(figure)


# ---------------------------------------------------------------------------------------------
# Latent space.


def latent_space(outcomes: Sequence[ModelOutcome], class_names: Sequence[str]) -> bytes:
    """One panel per model: latent means in 2-D (PCA beyond 2 dimensions), coloured by class."""
    done = [o for o in outcomes if o.evaluation is not None]
    columns = min(3, len(done))
    rows = math.ceil(len(done) / columns)
    figure = Figure(figsize=(5.0 * columns, 4.6 * rows + 0.8), layout="constrained")
    figure.suptitle("Latent means of test samples, coloured by true class")
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    colors = class_colors(len(class_names))
    for axes, outcome in zip(axes_grid.flat, done, strict=False):
        assert outcome.evaluation is not None
        view = to_2d(outcome.evaluation.latent)
        classes = outcome.evaluation.latent_classes
        for c, name in enumerate(class_names):
            chosen = classes == c
            axes.scatter(
                *view.points[chosen].T, s=5, alpha=0.6, color=colors[c], label=name, linewidths=0
            )
        dim = outcome.evaluation.latent.shape[1]
        how = f"{dim}-D latent" if view.explained is None else f"PCA of {dim}-D latent"
        axes.set_title(f"{outcome.name} ({how})", fontsize=10)
        x_name, y_name = view.axis_names
        if view.explained is not None:
            x_name += f" ({100 * view.explained[0]:.0f}% of variance)"
            y_name += f" ({100 * view.explained[1]:.0f}% of variance)"
        axes.set_xlabel(x_name)
        axes.set_ylabel(y_name)
        axes.grid(alpha=0.3)
    for axes in list(axes_grid.flat)[len(done) :]:
        axes.set_visible(False)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[c], label=name)
        for c, name in enumerate(class_names)
    ]
    figure.legend(handles=handles, title="true class", loc="outside right center")
    return _png(figure)


# ---------------------------------------------------------------------------------------------
# Images: reconstructions and generated samples.


def is_image_shape(shape: Sequence[int]) -> bool:
    """True for (H, W), (H, W, 1) and (H, W, 3) samples."""
    return len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))


def _as_image(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    image = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def mosaic(images: npt.NDArray[Any], gap: int = 2) -> npt.NDArray[np.float32]:
    """A (rows, cols, H, W[, 3]) array of images tiled into one picture with white gaps."""
    grid = np.stack([[_as_image(i) for i in row] for row in images])
    rows, cols, h, w = grid.shape[:4]
    extra = grid.shape[4:]
    canvas = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, *extra), np.float32)
    for r in range(rows):
        for c in range(cols):
            canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = grid[
                r, c
            ]
    return canvas


def _show_mosaic(
    axes: Any, images: npt.NDArray[Any], row_labels: Sequence[str], col_labels: Sequence[str]
) -> None:
    picture = mosaic(images)
    rows, cols, h, w = images.shape[:4]
    axes.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_yticks([r * (h + 2) + h / 2 for r in range(rows)], list(row_labels))
    axes.set_xticks([c * (w + 2) + w / 2 for c in range(cols)], list(col_labels))
    axes.tick_params(length=0, labelsize=8)
    for side in axes.spines.values():
        side.set_visible(False)


def reconstructions(outcomes: Sequence[ModelOutcome]) -> bytes:
    """Test samples (top row) over each model's reconstructions (one row per model)."""
    done = [o for o in outcomes if o.evaluation is not None]
    assert done and done[0].evaluation is not None
    originals = done[0].evaluation.originals
    rows = [originals]
    labels = ["original"]
    for outcome in done:
        assert outcome.evaluation is not None
        if outcome.evaluation.reconstructions is not None:
            rows.append(outcome.evaluation.reconstructions)
            labels.append(outcome.name)
    images = np.stack(rows)
    figure = Figure(
        figsize=(1.0 + 0.75 * images.shape[1] + 1.2, 0.9 + 0.8 * len(rows)), layout="constrained"
    )
    axes = figure.subplots()
    _show_mosaic(axes, images, labels, [str(i + 1) for i in range(images.shape[1])])
    axes.set_xlabel("test sample")
    axes.set_title("Originals (top) over reconstructions through the predicted class")
    return _png(figure)


def generated_samples(outcome: ModelOutcome, class_names: Sequence[str]) -> bytes:
    """Left: samples per class (z from the prior). Right: each component's mean per class."""
    assert outcome.evaluation is not None and outcome.evaluation.generated is not None
    generated = outcome.evaluation.generated
    per_class = generated.per_class
    per_component = generated.per_component
    k = per_component.shape[0]
    weights = generated.mixing_weights
    c, n = per_class.shape[:2]
    figure = Figure(
        figsize=(2.0 + 0.55 * (n + len(class_names)) + 1.5, 1.4 + 0.5 * max(c, k)),
        layout="constrained",
    )
    figure.suptitle(f"{outcome.name}: what the model generates", fontsize=11)
    left, right = figure.subplots(1, 2, width_ratios=[n, len(class_names)])
    _show_mosaic(left, per_class, list(class_names), [str(i + 1) for i in range(n)])
    left.set_title("per class: z drawn from the prior", fontsize=10)
    left.set_ylabel("class")
    left.set_xlabel("sample")
    component_labels = [f"{i + 1} (π={weights[i]:.2f})" for i in range(k)]
    _show_mosaic(right, per_component, component_labels, list(class_names))
    right.set_title("per component: its mean, decoded with each class", fontsize=10)
    right.set_ylabel("component (mixing weight)")
    right.set_xlabel("class")
    return _png(figure)


# ---------------------------------------------------------------------------------------------
# Confusion matrices and component usage.


def confusion_matrices(outcomes: Sequence[ModelOutcome], class_names: Sequence[str]) -> bytes:
    """One panel per model: counts of true (rows) against predicted (columns) classes."""
    done = [o for o in outcomes if o.evaluation is not None]
    columns = min(3, len(done))
    rows = math.ceil(len(done) / columns)
    size = 1.8 + 0.38 * len(class_names)
    figure = Figure(figsize=(size * columns + 1.0, size * rows + 0.6), layout="constrained")
    figure.suptitle("Confusion matrices of q(y|x) on the test samples (colour: share of row)")
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    image = None
    for axes, outcome in zip(axes_grid.flat, done, strict=False):
        assert outcome.evaluation is not None
        counts = outcome.evaluation.confusion
        totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = axes.imshow(counts / totals, cmap="Blues", vmin=0.0, vmax=1.0)
        if len(class_names) <= 20:
            for t in range(counts.shape[0]):
                for p in range(counts.shape[1]):
                    share = counts[t, p] / totals[t, 0]
                    axes.text(
                        p,
                        t,
                        str(counts[t, p]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share > 0.6 else "black",
                    )
        ticks = list(range(len(class_names)))
        axes.set_xticks(ticks, list(class_names), fontsize=8)
        axes.set_yticks(ticks, list(class_names), fontsize=8)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        axes.set_title(
            f"{outcome.name}: accuracy {100 * outcome.evaluation.accuracy:.1f}%", fontsize=10
        )
    for axes in list(axes_grid.flat)[len(done) :]:
        axes.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=axes_grid.ravel().tolist(), label="share of the true class")
    return _png(figure)


def component_usage(outcomes: Sequence[ModelOutcome], colors: dict[str, Any]) -> bytes:
    """For each model with several components: usage on the test set and mixing weights."""
    mixtures = [
        o for o in outcomes if o.evaluation is not None and len(o.evaluation.component_usage) > 1
    ]
    figure = Figure(figsize=(max(7.0, 5.5 * len(mixtures)), 3.8), layout="constrained")
    figure.suptitle("Component usage by test samples, and learned mixing weights")
    axes_list = figure.subplots(1, len(mixtures), squeeze=False)[0]
    for axes, outcome in zip(axes_list, mixtures, strict=True):
        assert outcome.evaluation is not None
        usage = outcome.evaluation.component_usage
        index = np.arange(len(usage))
        axes.bar(
            index - 0.2,
            usage,
            width=0.4,
            color=colors[outcome.name],
            label="usage (mean responsibility)",
        )
        weights = outcome.evaluation.mixing_weights
        if weights is not None:
            axes.bar(index + 0.2, weights, width=0.4, color="grey", label="mixing weight π")
        axes.set_xticks(index, [str(i + 1) for i in index])
        axes.set_xlabel("component")
        axes.set_ylabel("share")
        axes.set_title(
            f"{outcome.name} (usage entropy {outcome.evaluation.usage_entropy:.2f} nats)",
            fontsize=10,
        )
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3, axis="y")
    return _png(figure)
