# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Model page: spec, tau heatmap, component usage, label counts, accuracy per run, and a
form that creates or clones a model."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import holoviews as hv
import panel as pn

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.dashboard.label_page import counters_html
from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub, OpenModel
from ssvae.entrypoints.dashboard.viewmodels.model import ModelOverview
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

    rows = "".join(
        f"<tr><td>{r.round}</td><td>{r.labels}</td><td>{r.epochs}</td>"
        f"<td>{pct(r.val_accuracy)}</td><td>{pct(r.test_accuracy)}</td></tr>"
        for r in overview.runs
    )
    return (
        "<b>accuracy per training run</b><table class='ssvae-runs' style='font-size:12px'>"
        "<tr><th>run</th><th>labels</th><th>epochs</th><th>validation</th>"
        f"<th>test split</th></tr>{rows}</table>"
    )


def tau_plot(overview: ModelOverview) -> Any:
    if overview.tau is None:
        return pn.pane.HTML("<i>tau appears after a run with labels on a mixture prior</i>")
    tau = overview.tau
    cells = [
        (overview.class_names[y], str(c), float(tau[c, y]))
        for c in range(tau.shape[0])
        for y in range(tau.shape[1])
    ]
    heatmap = hv.HeatMap(cells, kdims=["class", "component"], vdims=["tau"]).opts(
        cmap="Blues",
        colorbar=True,
        width=460,
        height=max(220, 22 * tau.shape[0]),
        title="tau: p(class | component)",
        tools=["hover"],
    )
    return pn.pane.HoloViews(heatmap, backend="bokeh")


def usage_plot(overview: ModelOverview) -> Any:
    if overview.usage is None:
        return pn.pane.HTML("<i>one prior component: no usage to show</i>")
    bars = hv.Bars(
        [(str(k), float(u)) for k, u in enumerate(overview.usage)],
        kdims=["component"],
        vdims=["mean responsibility"],
    ).opts(width=460, height=220, title="component usage over the pool")
    return pn.pane.HoloViews(bars, backend="bokeh")


class ModelPage:
    """The Model tab; `refresh()` after a run."""

    def __init__(
        self, hub: DashboardHub, model: OpenModel, navigate: Callable[[str], None]
    ) -> None:
        self.hub = hub
        self.model = model
        self.navigate = navigate
        self.body = pn.Column()
        self.preset = pn.widgets.Select(label="preset", options=list(hub.presets), width=160)
        self.new_id = pn.widgets.TextInput(label="new model id (optional)", width=220)
        self.samples = pn.widgets.TextInput(label="pool size (empty: all)", width=160)
        self.yaml = pn.widgets.FileInput(accept=".yaml,.yml")
        create = pn.widgets.Button(label="create from preset / YAML", color="primary")
        create.on_click(lambda _: self.create())
        clone = pn.widgets.Button(label="clone this model (spec, pool, labels)")
        clone.on_click(lambda _: self.clone())
        self.form_status = pn.pane.HTML("")
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

    def _say(self, text: str) -> None:
        self.form_status.object = f"<div class='ssvae-form-status'>{html.escape(text)}</div>"

    def _samples(self) -> int | None:
        text = text_of(self.samples).strip()
        if not text:
            return None
        if not text.isdigit():
            raise SsvaeError(
                f"pool size {text!r} is invalid: give a whole number or leave it empty"
            )
        return int(text)

    def create(self) -> None:
        model_id = text_of(self.new_id).strip() or None
        try:
            if self.yaml.value:
                text = bytes(self.yaml.value).decode("utf-8", errors="replace")
                workspace = self.hub.create_from_yaml(
                    self.preset.value,
                    text,
                    self.yaml.filename or "spec.yaml",
                    model_id,
                    self._samples(),
                )
            else:
                workspace = self.hub.create(self.preset.value, model_id, self._samples())
        except SsvaeError as error:
            self._say(str(error))
            return
        self._say(f"created {workspace.id}")
        self.navigate(workspace.id)

    def clone(self) -> None:
        try:
            workspace = self.hub.clone(self.model, text_of(self.new_id).strip() or None)
        except SsvaeError as error:
            self._say(str(error))
            return
        self._say(f"cloned into {workspace.id}")
        self.navigate(workspace.id)
