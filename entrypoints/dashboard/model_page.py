# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Model page: spec, tau heatmap, component usage, label counts, accuracy per run, and a
form that creates or clones a model."""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, LinearColorMapper
from bokeh.models.annotations.legends import ColorBar
from bokeh.palettes import Blues256
from bokeh.plotting import figure as bokeh_figure

from ssvae.domain.errors import SsvaeError
from ssvae.domain.workspace import Workspace
from ssvae.entrypoints.dashboard.label_page import counters_html
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub, OpenModel
from ssvae.entrypoints.dashboard.viewmodels.model import (
    ModelOverview,
    RunRecord,
    short_names,
)
from ssvae.entrypoints.dashboard.widgets import text_of


def spec_html(overview: ModelOverview) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(value)}</td>"
        f"<td style='color:#666'>{html.escape(doc)}</td></tr>"
        for name, value, doc in overview.spec
    )
    return (
        f"<b>resolved spec</b> (preset {html.escape(overview.preset)})"
        f"<table class='ssvae-spec' style='font-size:12px'>{rows}</table>"
    )


def runs_html(overview: ModelOverview) -> str:
    if not overview.runs:
        return "<i>no training run yet</i>"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def loss(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    def figures(run: RunRecord) -> str:
        if not run.trained:
            return (
                "<td colspan='2' class='ssvae-run-untrained' style='color:#666'>"
                "stopped before the first epoch</td>"
            )
        return f"<td>{loss(run.val_loss)}</td><td>{pct(run.test_accuracy)}</td>"

    rows = "".join(
        f"<tr><td>{r.round}</td><td>{r.labels}</td><td>{r.epochs}</td>{figures(r)}</tr>"
        for r in overview.runs
    )
    return (
        "<b>training runs</b><table class='ssvae-runs' style='font-size:12px'>"
        "<tr><th>run</th><th>labels</th><th>epochs</th>"
        "<th title='loss on the held-out unlabelled samples after the last epoch "
        "(the figure early stopping watches)'>validation loss</th>"
        f"<th>test accuracy</th></tr>{rows}</table>"
    )


# Pixels per class on the tau heatmap's x axis: a rotated name of 14 characters at 11 px
# needs about 14 px of width; the figure grows with the classes up to a screen's width.
TAU_PX_PER_CLASS = 18
TAU_MIN_WIDTH, TAU_MAX_WIDTH = 460, 1400


def tau_plot(overview: ModelOverview) -> Any:
    """The heatmap of p(class | component): drawn with Bokeh, whose rectangles carry each
    class's full name for the hover while the axis shows the short one."""
    if overview.tau is None:
        return pn.pane.HTML("<i>tau appears after a run with labels on a mixture prior</i>")
    tau = np.asarray(overview.tau, np.float64)
    components, classes = tau.shape
    names = tuple(overview.class_names[:classes])
    names += tuple(str(y) for y in range(len(names), classes))
    labels = short_names(names)
    longest = max(len(label) for label in labels)
    rotated = classes > 10 or longest > 3  # digits fit flat; names need a column each
    rows = [str(c) for c in range(components)]
    source = ColumnDataSource(
        {
            "class": [labels[y] for _ in range(components) for y in range(classes)],
            "name": [names[y] for _ in range(components) for y in range(classes)],
            "component": [rows[c] for c in range(components) for _ in range(classes)],
            "tau": tau.reshape(-1).tolist(),
        }
    )
    mapper = LinearColorMapper(palette=Blues256[::-1], low=0.0, high=max(float(tau.max()), 1e-9))
    width = min(max(TAU_MIN_WIDTH, 140 + TAU_PX_PER_CLASS * classes), TAU_MAX_WIDTH)
    figure = bokeh_figure(
        x_range=FactorRange(factors=list(labels)),
        y_range=FactorRange(factors=rows),
        width=width,
        height=max(220, 22 * components) + (7 * longest if rotated else 0),
        title="tau: p(class | component)",
        x_axis_label="class",
        y_axis_label="component",
        tools="hover,save",
        tooltips=[("class", "@name"), ("component", "@component"), ("tau", "@tau{0.000}")],
        name="ssvae-tau",
    )
    figure.rect(
        "class",
        "component",
        1,
        1,
        source=source,
        line_color=None,
        fill_color={"field": "tau", "transform": mapper},
    )
    figure.add_layout(ColorBar(color_mapper=mapper, width=12), "right")
    axis = figure.xaxis[0]
    axis.major_label_orientation = math.pi / 2 if rotated else "horizontal"
    axis.major_label_text_font_size = "11px" if classes <= 40 else "9px"
    figure.grid.grid_line_color = None
    figure.axis.axis_line_color = None
    return pn.pane.Bokeh(figure)


def usage_plot(overview: ModelOverview) -> Any:
    if overview.usage is None:
        return pn.pane.HTML("<i>one prior component: no usage to show</i>")
    bars = hv.Bars(
        [(str(k), float(u)) for k, u in enumerate(overview.usage)],
        kdims=["component"],
        vdims=["mean responsibility"],
    ).opts(width=460, height=220, title="component usage over the pool")
    return pn.pane.HoloViews(bars, backend="bokeh")


CREATING = "creating the workspace"
CREATING_TEXT = "creating the workspace (the text embedder is fitted on the dataset's messages)"
DRAWING = "drawing the pages"


def creation_html(done: list[str], current: str, total: int, error: str = "") -> str:
    """The create form's status: the steps done with their seconds, then the one running
    (step k of n), or the one-line error that ended them."""
    lines = "".join(f"<li style='color:#666'>{html.escape(line)}</li>" for line in done)
    if error:
        now = f"<div class='ssvae-create-error' style='color:#c0392b'>{html.escape(error)}</div>"
        state = "failed"
    elif current:
        of = f" of {total}" if total > len(done) else ""  # unknown before the model opens
        now = (
            f"<div class='ssvae-create-step'><b>{html.escape(current)}…</b> "
            f"<span style='color:#666'>(step {len(done) + 1}{of})</span></div>"
        )
        state = "running"
    else:
        now, state = "<div class='ssvae-create-step'><b>opening the model…</b></div>", "done"
    return (
        f"<div class='ssvae-create-status' data-state='{state}'>{now}"
        f"<ul style='margin:2px 0;font-size:12px'>{lines}</ul></div>"
    )


class ModelCreation:
    """Creates a workspace and gets it ready to open, one step at a time off the page's
    thread: the buttons stay disabled and the status names the running step (reading the
    pool, compiling the model, predicting the pool...), since a first model takes tens of
    seconds; then the tab opens the model, whose page finds all of it done. A failed step
    leaves a one-line message and enables the buttons again."""

    def __init__(
        self,
        hub: DashboardHub,
        status: pn.pane.HTML,
        buttons: list[Any],
        navigate: Callable[[str], None],
        build_pages: Callable[[OpenModel], object] | None = None,
    ) -> None:
        self.hub = hub
        self.status = status
        self.buttons = buttons
        self.navigate = navigate
        self.build_pages = build_pages
        self.seconds: list[tuple[str, float]] = []  # the last run's steps, for the record

    async def run(self, create: Callable[[], Workspace]) -> bool:
        """Create with `create`, prepare the model, open it; False (and the error shown) when
        a step failed."""
        loop = asyncio.get_running_loop()
        done: list[str] = []
        self.seconds = []
        first = CREATING_TEXT if self.hub.settings.data.kind == "text" else CREATING
        total = 0  # known once the model is open
        for button in self.buttons:
            button.disabled = True

        async def step(what: str, work: Callable[[], Any]) -> Any:
            self.status.object = creation_html(done, what, total)
            started = time.perf_counter()
            # A plain executor thread: the page's document stays on the page's thread.
            result = await loop.run_in_executor(None, work)
            seconds = time.perf_counter() - started
            self.seconds.append((what, seconds))
            done.append(f"{what}: {seconds:.1f} s")
            return result

        try:
            workspace = await step(first, create)
            model = await step("opening the workspace", lambda: self.hub.open(workspace.id))
            steps = model.warm_steps()
            total = len(done) + len(steps) + (self.build_pages is not None)
            for what, work in steps:
                await step(what, work)
            if self.build_pages is not None:
                build = self.build_pages
                await step(DRAWING, lambda: build(model))
        except Exception as error:  # a bug as much as bad input: one line, and the form back
            message = str(error) if isinstance(error, SsvaeError) else repr(error)
            self.status.object = creation_html(done, "", total, message.splitlines()[0])
            for button in self.buttons:
                button.disabled = False
            return False
        self.status.object = creation_html(done, "", total)
        self.navigate(workspace.id)
        return True


class ModelPage:
    """The Model tab; `refresh()` after a run."""

    def __init__(
        self,
        hub: DashboardHub,
        model: OpenModel,
        navigate: Callable[[str], None],
        build_pages: Callable[[OpenModel], object] | None = None,
    ) -> None:
        self.hub = hub
        self.model = model
        self.navigate = navigate
        self.build_pages = build_pages
        self.body = pn.Column()
        self.preset = pn.widgets.Select(label="preset", options=list(hub.presets), width=160)
        self.new_id = pn.widgets.TextInput(label="new model id (optional)", width=220)
        self.samples = pn.widgets.TextInput(label="pool size (empty: all)", width=160)
        self.yaml = pn.widgets.FileInput(accept=".yaml,.yml")
        create = pn.widgets.Button(label="create from preset / YAML", color="primary")
        create.on_click(self._create_clicked)
        clone = pn.widgets.Button(label="clone this model (spec, pool, labels)")
        clone.on_click(self._clone_clicked)
        self.form_status = pn.pane.HTML("")
        self.creation = ModelCreation(hub, self.form_status, [create, clone], navigate, build_pages)
        form = pn.Column(
            "### create or clone a model",
            pn.Row(self.preset, self.new_id, self.samples),
            pn.Row(pn.pane.HTML("spec YAML (optional)"), self.yaml),
            pn.Row(create, clone),
            self.form_status,
        )
        self.view = pn.Column(self.body, form, name="Model")
        self.refresh()

    def refresh(self) -> None:
        try:
            overview = self.model.overview()
        except SsvaeError as error:
            self.body.objects = [pn.pane.HTML(html.escape(str(error)))]
            return
        self.body.objects = [
            pn.pane.HTML(f"<h2 style='margin:0'>model {html.escape(overview.model_id)}</h2>"),
            pn.pane.HTML(counters_html(dict(overview.counts))),
            pn.Row(
                pn.Column(
                    pn.pane.HTML(runs_html(overview)), tau_plot(overview), usage_plot(overview)
                ),
                pn.pane.HTML(spec_html(overview), width=640),
            ),
        ]

    def _say(self, error: str) -> None:
        self.form_status.object = creation_html([], "", 0, error)

    def _samples(self) -> int | None:
        text = text_of(self.samples).strip()
        if not text:
            return None
        if not text.isdigit():
            raise SsvaeError(
                f"pool size {text!r} is invalid: give a whole number or leave it empty"
            )
        return int(text)

    async def _create_clicked(self, _event: Any) -> None:
        await self.create()

    async def _clone_clicked(self, _event: Any) -> None:
        await self.clone()

    async def create(self) -> bool:
        """Create a model from the form (a preset, or the YAML given) and open it; False when
        the form or a step was refused, with the reason shown."""
        model_id = text_of(self.new_id).strip() or None
        try:
            samples = self._samples()
        except SsvaeError as error:
            self._say(str(error))
            return False
        preset = self.preset.value
        if self.yaml.value:
            text = bytes(self.yaml.value).decode("utf-8", errors="replace")
            name = self.yaml.filename or "spec.yaml"
            return await self.creation.run(
                lambda: self.hub.create_from_yaml(preset, text, name, model_id, samples)
            )
        return await self.creation.run(lambda: self.hub.create(preset, model_id, samples))

    async def clone(self) -> bool:
        """Clone this model (spec, pool, labels) and open the clone."""
        model_id = text_of(self.new_id).strip() or None
        return await self.creation.run(lambda: self.hub.clone(self.model, model_id))
