# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Train page: start and stop a background run, watch progress and the loss curves."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure as bokeh_figure

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.dashboard.viewmodels.hub import OpenModel
from ssvae.entrypoints.dashboard.viewmodels.training import (
    FINISHED,
    RUNNING,
    STOPPING,
    TRAIN_FIELDS,
    TrainingProgress,
    check_epochs,
    field_errors,
)
from ssvae.entrypoints.dashboard.widgets import text_of

POLL_MS = 500


def parse_value(text: str) -> Any:
    """A widget's text as an int or float when it reads as one; else the text itself, so the
    spec's own check names what is wrong with it."""
    stripped = text.strip()
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            continue
    return stripped


def error_html(message: str) -> str:
    return f"<span class='ssvae-field-error' style='color:#c0392b'>{html.escape(message)}</span>"


class TrainPage:
    """The Train tab; `on_finished` is called once for every run that ends with a model."""

    def __init__(self, model: OpenModel, on_finished: Callable[[], None]) -> None:
        self.model = model
        self.on_finished = on_finished
        current = model.workspace.spec.to_fields()
        self.epochs = pn.widgets.TextInput(label="epochs", value="1", width=140)
        self.epochs_error = pn.pane.HTML("", width=290)
        self.fields = {
            name: pn.widgets.TextInput(label=name, value=str(current[name]), width=140)
            for name in TRAIN_FIELDS
        }
        self.errors = {name: pn.pane.HTML("", width=290) for name in TRAIN_FIELDS}
        for widget in (self.epochs, *self.fields.values()):
            widget.param.watch(lambda _: self.validate(), "value")
        self.start_button = pn.widgets.Button(label="start training", color="primary")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button = pn.widgets.Button(label="stop", color="warning")
        self.stop_button.on_click(lambda _: self.stop())
        self.progress = pn.indicators.Progress(value=0, max=100, width=400, active=False)
        self.status = pn.pane.HTML(self._status_html("idle", ""))
        self.fixed_note = pn.pane.HTML("")
        self.source = ColumnDataSource({"x": [], "y": []}, name="ssvae-loss-source")
        self.epoch_source = ColumnDataSource({"x": [], "y": []}, name="ssvae-val-loss-source")
        figure = bokeh_figure(
            width=620,
            height=380,
            title="training loss (steps) and validation loss (epochs)",
            x_axis_label="epoch of this run",
            y_axis_label="loss",
            name="ssvae-loss-figure",
            tools="pan,wheel_zoom,reset,save",
            x_range=Range1d(start=0, end=1),
            y_range=Range1d(start=0, end=1),
        )
        figure.line("x", "y", source=self.source, legend_label="training loss", line_width=2)
        figure.scatter(
            "x", "y", source=self.epoch_source, color="#d62728", size=8, legend_label="val loss"
        )
        figure.scatter("x", "y", source=self.source, size=4, legend_label="training loss")
        figure.add_layout(figure.legend[0], "below")  # beside the curves, never over them
        figure.legend[0].orientation = "horizontal"
        self.figure = figure
        self._seen_run = 0
        self._seen_finished = model.job.progress().finished_runs
        self._shown_points = -1
        cells = [pn.Column(self.epochs, self.epochs_error, width=300)]
        cells += [
            pn.Column(self.fields[name], self.errors[name], width=300) for name in TRAIN_FIELDS
        ]
        controls = pn.Column(
            pn.pane.HTML("<b>a run trains in the background: keep labelling meanwhile</b>"),
            pn.GridBox(*cells, ncols=2),
            self.fixed_note,
            pn.Row(self.start_button, self.stop_button),
            self.progress,
            self.status,
            width=640,
        )
        self.view = pn.Row(controls, pn.pane.Bokeh(figure), name="Train")
        self._show_fixed()
        self.poll()

    def _show_fixed(self) -> None:
        trained = self.model.workspace.has_model
        for widget in self.fields.values():
            widget.disabled = trained
        self.fixed_note.object = (
            "<small>hyperparameters are fixed once the model is trained (the optimizer state is "
            "kept between runs); clone the model on the Model page to change them</small>"
            if trained
            else "<small>hyperparameters apply from the first run on</small>"
        )

    def values(self) -> dict[str, Any]:
        return {name: parse_value(text_of(widget)) for name, widget in self.fields.items()}

    def validate(self) -> bool:
        """Show the spec's own error next to each invalid widget; True when all are valid."""
        ok = True
        try:
            check_epochs(parse_value(text_of(self.epochs)))
            self.epochs_error.object = ""
        except SsvaeError as error:
            self.epochs_error.object = error_html(str(error))
            ok = False
        errors = field_errors(self.model.workspace.spec, self.values())
        for name, pane in self.errors.items():
            pane.object = error_html(errors[name]) if name in errors else ""
        return ok and not errors

    def start(self) -> None:
        if not self.validate():
            self.status.object = self._status_html("invalid", "fix the values marked in red")
            return
        current = self.model.workspace.spec.to_fields()
        overrides = (
            {}
            if self.model.workspace.has_model
            else {name: value for name, value in self.values().items() if current[name] != value}
        )
        try:
            self.model.job.start(int(parse_value(text_of(self.epochs))), overrides)
        except SsvaeError as error:
            self.status.object = self._status_html("refused", str(error))
            return
        self.poll()

    def stop(self) -> None:
        if not self.model.job.stop():
            self.status.object = self._status_html("idle", "no run to stop")

    @staticmethod
    def _status_html(state: str, message: str, label: str = "") -> str:
        return (
            f"<div class='ssvae-train-status' data-state='{html.escape(state)}'>"
            f"<b>{html.escape(label or state)}</b> {html.escape(message)}</div>"
        )

    def poll(self) -> None:
        """Copy the job's progress to the widgets (called every POLL_MS by the session)."""
        progress = self.model.job.progress()
        self._draw(progress)
        if progress.finished_runs > self._seen_finished:
            self._seen_finished = progress.finished_runs
            self._show_fixed()
            self.on_finished()

    def _draw(self, progress: TrainingProgress) -> None:
        running = progress.state in (RUNNING, STOPPING)
        self.progress.value = round(100 * progress.fraction)
        self.progress.active = running
        self.start_button.disabled = running
        self.stop_button.disabled = progress.state != RUNNING
        if progress.state == FINISHED and progress.stopped:
            # "stopped at epoch k of n" reads as one phrase: it is the status's bold part.
            head, _, tail = progress.where().partition("; ")
            self.status.object = self._status_html("stopped", f"({tail})", label=head)
        else:
            self.status.object = self._status_html(progress.state, progress.where())
        points = len(progress.step_losses) + 1000 * len(progress.epoch_metrics)
        if progress.run != self._seen_run or points != self._shown_points:
            self._seen_run, self._shown_points = progress.run, points
            xs = [x for x, _ in progress.step_losses]
            ys = [y for _, y in progress.step_losses]
            self.source.data = {"x": xs, "y": ys}
            val = [
                (float(r.epoch - progress.epoch_metrics[0].epoch + 1), r.metrics["val_loss"])
                for r in progress.epoch_metrics
                if "val_loss" in r.metrics
            ]
            self.epoch_source.data = {"x": [x for x, _ in val], "y": [y for _, y in val]}
            self._fit_ranges(xs + [x for x, _ in val], ys + [y for _, y in val], progress.epochs)

    def _fit_ranges(self, xs: list[float], ys: list[float], epochs: int) -> None:
        """Axes that show every point (set here: the curves grow while the page is open)."""
        end = float(max([epochs, 1, *xs]))
        self.figure.x_range.update(start=-0.03 * end, end=1.03 * end)  # no point on the frame
        if ys:
            low, high = min(ys), max(ys)
            pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
            self.figure.y_range.update(start=low - pad, end=high + pad)
