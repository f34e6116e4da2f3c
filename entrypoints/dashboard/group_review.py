# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""A drawn or searched group on the Label page, reviewed before it is labelled: its members
in a grid (a click drops one), a class chosen on purpose, then a confirmation naming what
the labels will overwrite. Nothing is labelled before the confirmation."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
import panel as pn
import param
from panel.custom import JSComponent

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.dashboard.event_loop import later
from ssvae.entrypoints.dashboard.latent_map import LatentMapView
from ssvae.entrypoints.dashboard.viewmodels.label import (
    CHOOSE_CLASS,
    REMOVE,
    GroupReview,
    LabelBoard,
    LabelUpdate,
    group_target,
)
from ssvae.entrypoints.dashboard.viewmodels.text import shortened
from ssvae.entrypoints.dashboard.widgets import error_html, sample_html

IntArray = npt.NDArray[np.int64]
REVIEW_CHARACTERS = 120  # a message in the group's review grid
REVIEW_SCALE = 2  # a 28-pixel digit drawn 56 pixels wide in the review grid


class ReviewGrid(JSComponent):
    """A group's members as cards, a thumbnail or a message each, before the group is
    labelled. A click on a card sends its map row to Python as `dropped`, [row, counter]
    (the counter makes a second click on a redrawn row a new event)."""

    cards = param.List(default=[])  # [{"row": int, "serial": int, "html": str}]
    dropped = param.List(default=[-1, 0])
    _debounce: ClassVar[int] = 0  # a click is one event: no burst to merge

    _esm = """
    export function render({ model }) {
      let counter = 0;
      const grid = document.createElement('div');
      grid.className = 'ssvae-review-grid';
      grid.style.cssText = 'display:flex;flex-wrap:wrap;gap:3px;max-height:330px;' +
        'overflow-y:auto;max-width:440px';
      const draw = () => {
        grid.replaceChildren();
        for (const card of model.cards) {
          const item = document.createElement('div');
          item.className = 'ssvae-review-item';
          item.dataset.row = card.row;
          item.dataset.serial = card.serial;
          item.title = 'serial ' + card.serial + ': click to drop it from the group';
          item.style.cssText = 'position:relative;border:1px solid #ccc;padding:2px;' +
            'cursor:pointer;font-size:11px;background:#fff';
          item.innerHTML = card.html;
          const cross = document.createElement('span');
          cross.textContent = '×';
          cross.style.cssText = 'position:absolute;top:0;right:2px;color:#c0392b;' +
            'font-weight:bold';
          item.appendChild(cross);
          item.addEventListener('click', () => {
            counter += 1;
            model.dropped = [card.row, counter];
          });
          grid.appendChild(item);
        }
      };
      draw();
      model.on('cards', draw);
      return grid;
    }
    """


def review_cards(board: LabelBoard, review: GroupReview, kind: str) -> list[dict[str, Any]]:
    """The review grid's cards for the rows `review` shows: a small thumbnail (image data),
    the message (text data) or the leading values (vectors), and the predicted class."""
    rows = review.shown
    serials = board.pool_map.serials[rows]
    names = board.class_names
    predicted = board.pool_map.predicted[rows]
    if board.texts is not None:
        shown = [
            f"<div class='ssvae-review-text' style='width:420px;font-family:monospace'>"
            f"{html.escape(shortened(text, REVIEW_CHARACTERS))}</div>"
            for text in board.texts.texts_of(rows)
        ]
    else:
        samples = board.load_samples(serials) if rows.size else np.zeros((0,), np.float32)
        shown = [sample_html(sample, kind, scale=REVIEW_SCALE) for sample in samples]
    return [
        {
            "row": int(row),
            "serial": int(serial),
            "html": f"{body}<br><small>pred. {html.escape(shortened(names[int(code)], 12))}"
            "</small>",
        }
        for row, serial, code, body in zip(
            rows.tolist(), serials.tolist(), predicted.tolist(), shown, strict=True
        )
    ]


class GroupHost(Protocol):
    """What the group box uses of its page: the board and the map of the moment, the status
    line, and the page's way to run a labelling action and show what it did."""

    board: LabelBoard
    kind: str
    status: Any  # an HTML pane
    map: LatentMapView

    def _run(self, action: Callable[[], LabelUpdate | None]) -> bool: ...


class GroupBox:
    """The group under review, its grid, its class choice and the confirmation."""

    def __init__(self, page: GroupHost, names: tuple[str, ...]) -> None:
        self.page = page
        self.review: GroupReview | None = None  # a lasso, box or search waiting for a class
        self.target = pn.widgets.Select(
            label="class for the group", options=[CHOOSE_CLASS, *names, REMOVE], value=CHOOSE_CLASS
        )
        self.target.param.watch(lambda _: self._class_changed(), "value")
        self.info = pn.pane.HTML("")
        self.grid = ReviewGrid()
        self.grid.param.watch(lambda event: self.drop(int(event.new[0])), "dropped")
        self.prompt = pn.pane.HTML("", css_classes=["ssvae-group-prompt"])
        ask = pn.widgets.Button(label="label group…", color="warning")
        ask.on_click(lambda _: self.ask())
        self.confirm_text = pn.pane.HTML("", css_classes=["ssvae-confirm-text"])
        confirm = pn.widgets.Button(label="confirm", color="danger")
        confirm.on_click(lambda _: self.confirm())
        cancel = pn.widgets.Button(label="cancel")
        cancel.on_click(lambda _: self.cancel(say=True))
        cancel_review = pn.widgets.Button(label="cancel group")
        cancel_review.on_click(lambda _: self.cancel(say=True))
        self.confirm_box = pn.Column(self.confirm_text, pn.Row(confirm, cancel), visible=False)
        self.view = pn.Column(
            "### group",
            self.info,
            self.grid,
            self.target,
            self.prompt,
            pn.Row(ask, cancel_review),
            self.confirm_box,
            visible=False,
        )

    def set_classes(self, names: tuple[str, ...]) -> None:
        """The labels gained a class: offer it, keeping a class already chosen."""
        chosen = self.target.value
        self.target.param.update(
            options=[CHOOSE_CLASS, *names, REMOVE],
            value=chosen if chosen in (*names, REMOVE) else CHOOSE_CLASS,
        )

    def show(self, rows: IntArray, how: str = "inside the drawn area") -> None:
        """A lasso, box or search selected `rows`: show them for review; nothing is labelled
        until a class is chosen and confirmed."""
        self.confirm_box.visible = False
        self.prompt.object = ""
        if rows.size == 0:
            self.review = None
            self.view.visible = False
            self.page.status.object = f"no point {html.escape(how)}"
            return
        self.review = GroupReview.of(rows, how)
        self.target.value = CHOOSE_CLASS  # chosen on purpose for every group
        self._show_review()
        self.view.visible = True
        self.page.status.object = (
            f"{len(self.review)} points selected: check them, click any that do not belong, "
            "then choose the group's class"
        )

    def _show_review(self) -> None:
        review = self.review
        if review is None:
            return
        rest = html.escape(review.summary().split(" ", 1)[1])
        self.info.object = (
            f"<b class='ssvae-group-count'>{len(review)}</b> <span class='ssvae-group-summary'>"
            f"{rest}</span><br><small>click a point that does not belong to drop it</small>"
        )
        self.grid.cards = review_cards(self.page.board, review, self.page.kind)

    def drop(self, row: int) -> None:
        """A card clicked in the review grid: that point leaves the group, and its ring."""
        if self.review is None or row < 0:
            return
        try:
            self.review = self.review.without(row)
        except SsvaeError as error:
            self.page.status.object = error_html(error)
            return
        self.confirm_box.visible = False  # its count is stale
        if not len(self.review):
            self.cancel()
            self.page.status.object = "every point was dropped from the group; nothing was labelled"
            return
        self._show_review()
        rows = self.review.rows
        later(lambda: self.page.map.highlight(rows))
        self.page.status.object = f"{len(self.review)} points left in the group"

    def _class_changed(self) -> None:
        """A new choice of class: the confirmation shown for the last one is stale."""
        self.confirm_box.visible = False
        self.prompt.object = ""

    def _refuse(self, error: SsvaeError) -> None:
        message = error_html(error)
        self.prompt.object = message
        self.page.status.object = message

    def ask(self) -> None:
        """Show what labelling the group with the chosen class would overwrite, and wait for
        the confirmation."""
        review = self.review
        if review is None:
            return
        board = self.page.board
        try:
            target = group_target(self.target.value)
            preview = board.preview(board.pool_map.serials[review.rows], target)
        except SsvaeError as error:
            self._refuse(error)
            return
        self.prompt.object = ""
        self.confirm_text.object = html.escape(preview.summary())
        self.confirm_box.visible = True

    def confirm(self) -> None:
        """Label the points left in the group with the chosen class, as one undo step."""
        review = self.review
        if review is None:
            return
        try:
            group_target(self.target.value)
        except SsvaeError as error:
            self._refuse(error)
            return
        if self.page._run(lambda: self.page.board.label_group(review, self.target.value)):
            self.cancel()

    def cancel(self, say: bool = False) -> None:
        """Forget the group; nothing is labelled."""
        had = self.review is not None
        self.review = None
        self.confirm_box.visible = False
        self.view.visible = False
        self.prompt.object = ""
        if say and had:
            self.page.map.clear_selection()
            self.page.status.object = "group cancelled; nothing was labelled"
