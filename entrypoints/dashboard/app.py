# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""One browser session: the landing page, or a model's four pages with one key listener."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import panel as pn

from ssvae.domain.comparison import GeneratedSamples
from ssvae.domain.errors import SsvaeError
from ssvae.domain.text_examples import TextExamples
from ssvae.entrypoints.dashboard.label_page import LabelPage
from ssvae.entrypoints.dashboard.model_page import ModelCreation, ModelPage, creation_html
from ssvae.entrypoints.dashboard.queue_page import QueuePage
from ssvae.entrypoints.dashboard.train_page import POLL_MS, TrainPage
from ssvae.entrypoints.dashboard.viewmodels.hub import GENERATED_PER_CLASS, DashboardHub, OpenModel
from ssvae.entrypoints.dashboard.viewmodels.label import LabelUpdate
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard
from ssvae.entrypoints.dashboard.widgets import KeyCatcher, text_of

TITLE = "ssvae: label, query, train"


def _header(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(
        f"<h1 style='margin:4px 0'><a href='/' style='text-decoration:none;color:inherit'>"
        f"ssvae</a> <small style='color:#666'>{text}</small></h1>"
    )


def go_to(model_id: str) -> None:
    """Open model `model_id` in this browser tab."""
    location = pn.state.location
    if location is not None:
        location.param.update(search=f"?model={model_id}", reload=True)


class Landing:
    """The start page: the models under artifacts/models, and a form to create one."""

    def __init__(self, hub: DashboardHub, problem: str = "") -> None:
        self.hub = hub
        self.preset = pn.widgets.Select(
            label="preset", options=list(hub.presets), value=hub.presets[0], width=180
        )
        self.model_id = pn.widgets.TextInput(label="model id (optional)", width=220)
        self.samples = pn.widgets.TextInput(
            label="pool size (empty: the whole train split)", value="", width=260
        )
        create = pn.widgets.Button(label="create model", color="primary")
        create.on_click(self._create_clicked)
        self.status = pn.pane.HTML(
            f"<div class='ssvae-landing-status' style='color:#c0392b'>{html.escape(problem)}</div>"
        )
        # The model's pages are built once off the page's thread too: the first build
        # compiles the map's drawing code, which the new tab then finds done.
        self.creation = ModelCreation(
            hub, self.status, [create], go_to, build_pages=lambda model: ModelApp(hub, model)
        )
        self.view = pn.Column(
            _header("models"),
            pn.pane.HTML(self._catalog_html()),
            pn.pane.HTML(
                f"<h3>create a model on {html.escape(hub.settings.data.name)}</h3>"
                "<p>a workspace holds a model's spec, checkpoint and labels; a pool of a few "
                "thousand samples trains in seconds</p>"
            ),
            pn.Row(self.preset, self.model_id, self.samples),
            create,
            self.status,
        )

    def _catalog_html(self) -> str:
        models = self.hub.catalog()
        if not models:
            folder = html.escape(str(self.hub.models_dir))
            return f"<p class='ssvae-no-models'>no model yet in {folder}: create one below</p>"
        rows = "".join(
            f"<tr><td><a class='ssvae-model-link' href='?model={html.escape(m.id)}'>"
            f"{html.escape(m.id)}</a></td><td>{html.escape(m.preset)}</td>"
            f"<td>{html.escape(m.dataset)}</td><td>{m.pool_size}</td><td>{m.rounds}</td>"
            f"<td>{html.escape(m.created)}</td></tr>"
            for m in models
        )
        return (
            "<table class='ssvae-models'><tr><th>model</th><th>preset</th><th>data</th>"
            f"<th>pool</th><th>runs</th><th>created</th></tr>{rows}</table>"
        )

    async def _create_clicked(self, _event: Any) -> None:
        await self.create()

    async def create(self) -> bool:
        """Create the model the form describes and open it, showing each step; False when
        the form or a step was refused, with the reason shown."""
        text = text_of(self.samples).strip()
        if text and not text.isdigit():
            self.status.object = creation_html(
                [], "", 0, f"pool size {text!r} is invalid: give a whole number or leave it empty"
            )
            return False
        preset, model_id = self.preset.value, text_of(self.model_id).strip() or None
        samples = int(text) if text else None
        return await self.creation.run(lambda: self.hub.create(preset, model_id, samples))


class ModelApp:
    """A model's pages; keys go to the page on show."""

    def __init__(self, hub: DashboardHub, model: OpenModel) -> None:
        self.hub = hub
        self.model = model
        self.keys = KeyCatcher()
        # One board for both pages: a press on either while the other's undo runs is refused.
        board = model.board()
        self.label = LabelPage(board, model.info.kind)
        self.label.show_layout_note(model.layout_note())
        trained = model.workspace.has_model  # before training the queue suggests cold_start
        self.queue = QueuePage(
            QueueBoard(board, trained=trained), model.info.kind, self._generated()
        )
        self.train = TrainPage(model, self.run_finished)
        self.model_page = ModelPage(
            hub, model, go_to, build_pages=lambda opened: ModelApp(hub, opened)
        )
        self.queue.on_update = self._queue_labelled
        self.label.on_classes_changed = lambda: self.queue.classes_changed(self.label.board)
        self.tabs = pn.Tabs(
            self.label.view, self.queue.view, self.train.view, self.model_page.view, dynamic=False
        )
        self.keys.param.watch(self._key, "pressed")
        self.view = pn.Column(
            _header(f"model {html.escape(model.id)}"), self.keys, self.tabs, name="ssvae"
        )

    def _key(self, event: Any) -> None:
        key, ctrl = str(event.new[0]), bool(event.new[1])
        page = (self.label, self.queue, None, None)[self.tabs.active]
        if page is not None:
            page.press(key, ctrl)

    def _queue_labelled(self, update: LabelUpdate) -> None:
        self.label.apply(update)

    def run_finished(self) -> None:
        """A training run ended: new predictions on every page."""
        board = self.model.board()
        self.label.replace_board(board)
        self.queue.new_predictions(board, self.model.workspace.has_model)
        self.model_page.refresh()
        self.queue.generated.object = ""
        generated = self._generated()
        if generated is not None:
            self.queue.show_generated(generated)

    def _generated(self) -> GeneratedSamples | TextExamples | None:
        """What the model thinks each class and component looks like: generated images, or
        for text data the pool messages each holds; None when it cannot say yet, as before
        the first training run (an untrained model's samples are noise)."""
        if not self.model.workspace.has_model:
            return None
        try:
            if self.model.is_text:
                return self.model.examples()
            return self.model.generated(per_class=GENERATED_PER_CLASS)
        except SsvaeError:
            return None

    def poll_layout(self) -> None:
        """Show why the class map is not drawn yet, and draw it once it is laid out."""
        self.label.show_layout_note(self.model.layout_note())
        if self.model.layout_ready() and self.label.board.pool_map.class_xy is None:
            board = self.model.board()
            self.label.replace_board(board)
            self.queue.board.board = board

    def start_polling(self) -> None:
        self.model.request_layout()  # a model opened before this server laid its map out
        pn.state.add_periodic_callback(self.train.poll, period=POLL_MS)
        pn.state.add_periodic_callback(self.poll_layout, period=POLL_MS)


def session(hub: DashboardHub, default_model: Path | None) -> Any:
    """The page for one browser session: `?model=<id>` or the server's --model, else the
    landing page."""
    pn.state.cache  # noqa: B018 - touch the session state so Panel sets it up
    requested = pn.state.session_args.get("model")
    try:
        if requested:
            model = hub.open(requested[0].decode("utf-8", errors="replace"))
        elif default_model is not None:
            model = hub.open_directory(default_model)
        else:
            return Landing(hub).view
        app = ModelApp(hub, model)
    except SsvaeError as error:
        return Landing(hub, str(error)).view
    pn.state.onload(app.start_polling)
    return app.view
