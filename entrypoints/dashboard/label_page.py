# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Label page: the latent map, the clicked sample, keys and buttons that set its class."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt
import panel as pn
import param
from panel.custom import JSComponent

from ssvae.domain.errors import SsvaeError
from ssvae.domain.policies import MAP_POLICIES
from ssvae.entrypoints.dashboard.latent_map import LatentMapView, category_palette
from ssvae.entrypoints.dashboard.viewmodels.label import (
    CHOOSE_CLASS,
    REMOVE,
    GroupReview,
    LabelBoard,
    LabelUpdate,
    SampleDetail,
    group_target,
)
from ssvae.entrypoints.dashboard.viewmodels.map import (
    ACQUISITION,
    CLASS_VIEW,
    COLOUR_MODES,
    MAP_VIEWS,
    USER_LABEL,
    colour_column,
    in_view,
)
from ssvae.entrypoints.dashboard.viewmodels.text import shortened
from ssvae.entrypoints.dashboard.widgets import message_html, sample_html

IntArray = npt.NDArray[np.int64]
MAX_BUTTONS = 20  # more classes than this: the searchable class picker alone
SHOWN_PROBABILITIES = 10  # more classes than this: the most probable ones
SHOWN_MATCHES = 200  # search matches listed (all of them are selected as a group)
MATCH_CHARACTERS = 90
REVIEW_CHARACTERS = 120  # a message in the group's review grid
REVIEW_SCALE = 2  # a 28-pixel digit drawn 56 pixels wide in the review grid
ENTER_RETURNS_FOCUS = "ssvae-enter-returns-focus"  # the class of fields Enter leaves
CHOOSE_MATCH = "(choose a match)"


def counters_html(counts: dict[str, int]) -> str:
    """One coloured chip per class with its count, and the total; with more than
    MAX_BUTTONS classes only the classes that have labels get a chip."""
    palette = category_palette(len(counts))
    many = len(counts) > MAX_BUTTONS
    chips = "".join(
        f'<span class="ssvae-chip" data-class="{html.escape(name)}" '
        f'style="border-left:6px solid {colour};padding:2px 6px;margin:2px;'
        f'background:#f4f4f4;display:inline-block">{html.escape(name)}: '
        f'<b class="ssvae-count">{count}</b></span>'
        for (name, count), colour in zip(counts.items(), palette, strict=True)
        if count or not many
    )
    total = sum(counts.values())
    if not many:
        return f'<div class="ssvae-counters">{chips} <span>total: <b>{total}</b></span></div>'
    # Many classes: one line, the chips of the labelled classes folded under it.
    labelled = sum(1 for n in counts.values() if n)
    return (
        f'<details class="ssvae-counters"><summary>{labelled} of {len(counts)} classes '
        f"labelled · total: <b>{total}</b> (open for the count of each)</summary>{chips}"
        "</details>"
    )


def probability_bars(
    names: tuple[str, ...], probs: Any, title: str, limit: int = SHOWN_PROBABILITIES
) -> str:
    """A small HTML bar chart of class probabilities: every class, or with more than `limit`
    classes the `limit` most probable, most probable first."""
    values = np.asarray(probs, np.float64)
    order = np.arange(len(names))
    note = ""
    if len(names) > limit:
        order = np.lexsort((order, -values))[:limit]
        note = f"<br><small>top {limit} of {len(names)}</small>"
    rows = "".join(
        f'<tr><td style="padding-right:6px">{html.escape(names[i])}</td><td style="width:160px">'
        f'<div style="background:#4a7ab5;height:10px;width:{max(values[i], 0.0) * 100:.1f}%">'
        f'</div></td><td style="padding-left:6px">{values[i]:.2f}</td></tr>'
        for i in order.tolist()
    )
    return f"<b>{html.escape(title)}{note}</b><table style='font-size:12px'>{rows}</table>"


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


class EnterReturnsFocus(JSComponent):
    """After Enter in a field marked with the class ENTER_RETURNS_FOCUS (the message search,
    the class pickers), the field gives the focus back to the page: Enter has done the
    field's work, and the page's keys (class keys, Delete, Ctrl+Z) would otherwise type into
    the field instead of labelling. Listens on the whole document; draws nothing."""

    _esm = """
    export function render({ model, el }) {
      const handler = (event) => {
        if (event.key !== 'Enter') return;
        const path = event.composedPath ? event.composedPath() : [event.target];
        const marked = path.some((node) => node && node.classList &&
          node.classList.contains('ENTER_RETURNS_FOCUS'));
        const field = path.find((node) => node && node.tagName === 'INPUT');
        // After the field's own Enter handling (a picker chooses its match on keyup).
        if (marked && field) setTimeout(() => field.blur(), 0);
      };
      document.addEventListener('keyup', handler);
      model.on('remove', () => document.removeEventListener('keyup', handler));
      el.style.display = 'none';
    }
    """.replace("ENTER_RETURNS_FOCUS", ENTER_RETURNS_FOCUS)


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


def detail_html(detail: SampleDetail, kind: str) -> str:
    """The clicked sample: input (the message for text data), reconstruction, labels, both
    classifiers, neighbours."""
    parts = [
        f'<div class="ssvae-detail" data-serial="{detail.serial}">',
        f"<h3 style='margin:0'>serial {detail.serial}</h3>",
    ]
    if detail.text is not None:
        parts.append(message_html(detail.text, detail.extras))
    else:
        parts += [
            "<div style='display:flex;gap:12px'>",
            f"<div>sample<br>{sample_html(detail.x, kind)}</div>",
        ]
        if detail.reconstruction is not None:
            parts.append(f"<div>reconstruction<br>{sample_html(detail.reconstruction, kind)}</div>")
        parts.append("</div>")
    user = detail.user_label if detail.user_label is not None else "-"
    truth = detail.true_label if detail.true_label is not None else "unknown"
    parts.append(
        f"<p>label: <b class='ssvae-user-label'>{html.escape(user)}</b> · true: "
        f"{html.escape(truth)} · predicted: {html.escape(detail.predicted)} "
        f"({detail.certainty:.2f})</p>"
    )
    parts.append("<div style='display:flex;gap:16px'>")
    parts.append(probability_bars(detail.class_names, detail.class_probs, "q(y|x)"))
    if detail.tau_probs is not None:
        parts.append(probability_bars(detail.class_names, detail.tau_probs, "tau classifier"))
    parts.append("</div>")
    if detail.neighbours:
        items = "".join(
            f"<li>serial {n.serial}: {html.escape(n.class_name)} (distance {n.distance:.2f})</li>"
            for n in detail.neighbours
        )
        parts.append(f"<b>nearest labelled</b><ul style='margin:0'>{items}</ul>")
    else:
        parts.append("<i>no labelled neighbour yet</i>")
    parts.append("</div>")
    return "".join(parts)


def later(callback: Callable[[], None]) -> None:
    """Run `callback` after the current event's changes went to the browser (at once when no
    browser session is running, e.g. in tests)."""
    document = pn.state.curdoc
    if document is not None and document.session_context is not None:
        document.add_next_tick_callback(callback)
    else:
        callback()


def _raising(error: Exception) -> Callable[[], None]:
    def action() -> None:
        raise error

    return action


def browser_document() -> Any | None:
    """The Bokeh document of the browser session this code serves; None outside one (tests)."""
    document = pn.state.curdoc
    return None if document is None or document.session_context is None else document


def undo_off_the_event_loop(
    board: LabelBoard, run: Callable[[Callable[[], Any]], Any], say: Callable[[str], None]
) -> None:
    """Undo `board`'s latest batch for a page. In a browser session the undo runs off the
    event loop, so that presses coming meanwhile reach the board and are refused with a
    message instead of waiting in a queue to undo changes their author never saw.

    `run(action)` runs an action on the event loop and shows what it did, or its error;
    `say(text)` shows that the undo is under way.
    """
    try:
        undo = board.reserve_undo()
    except SsvaeError as error:
        run(_raising(error))
        return
    document = browser_document()
    if document is None:
        run(undo)  # no browser session (tests): at once
        return
    say("undoing…")

    def work() -> None:
        try:
            update = undo()
        except SsvaeError as error:
            action: Callable[[], Any] = _raising(error)
        else:
            action = lambda: update  # noqa: E731

        # Bokeh documents may be changed from another thread only through a callback.
        document.add_next_tick_callback(lambda: run(action))

    threading.Thread(target=work, name="ssvae-undo", daemon=True).start()


class LabelPage:
    """The Label tab: map, detail, class keys, group labelling with a confirmation."""

    def __init__(self, board: LabelBoard, kind: str, *, policy: str = "margin") -> None:
        self.board = board
        self.kind = kind
        self.selected: int | None = None  # the clicked serial
        self._detail: SampleDetail | None = None
        self.review: GroupReview | None = None  # a lasso, box or search waiting for a class
        names = board.class_names
        self.map_view = pn.widgets.Select(
            label="map", options=list(MAP_VIEWS), value=board.pool_map.view, width=150
        )
        self.map_view.param.watch(lambda _: self._view_chosen(), "value")
        # Why the class map is not drawn (untrained, still laid out, failed); empty once it is.
        self.layout_note = pn.pane.HTML("", css_classes=["ssvae-layout-note"])
        self.mode = pn.widgets.Select(
            label="colour by", options=list(COLOUR_MODES), value=USER_LABEL
        )
        self.policy = pn.widgets.Select(
            label="policy", options=list(MAP_POLICIES), value=policy, visible=False
        )
        self.status = pn.pane.HTML(
            "click a point, then press its class key", css_classes=["ssvae-status"]
        )
        self.note = pn.pane.HTML("")
        self.caption = pn.pane.HTML(self._caption())
        self.counters = pn.pane.HTML(counters_html(board.counts()))
        self.map = self._new_map()
        self.map_holder = pn.Column(self.map.pane)
        self.detail = pn.pane.HTML("<i>no point selected</i>", width=420)
        self.on_classes_changed: Callable[[], None] | None = None  # set by the app
        self._names = names  # the classes the buttons, picker and map show
        self.picker = pn.widgets.AutocompleteInput(
            label="find a class (Enter labels the point)",
            options=list(names),
            case_sensitive=False,
            search_strategy="includes",
            restrict=True,
            min_characters=1,
            width=300,
            placeholder=f"type part of one of {len(names)} class names",
            css_classes=[ENTER_RETURNS_FOCUS],
        )
        # Choosing a class labels the clicked point at once (keys cannot name 99 classes).
        self.picker.param.watch(lambda _: self._assign_picked(), "value")
        # A class the data lacks (a new system): added to the labels' vocabulary, given to the
        # clicked point; the model learns it at its next run.
        self.new_class = pn.widgets.TextInput(
            placeholder="a class the data lacks", width=200, css_classes=["ssvae-new-class"]
        )
        add_class = pn.widgets.Button(label="add new class", width=130)
        add_class.on_click(lambda _: self.add_class())
        delete = pn.widgets.Button(label="remove label (Del)", width=150)
        delete.on_click(lambda _: self._remove_selected())
        undo = pn.widgets.Button(label="undo (Ctrl+Z)", width=120)
        undo.on_click(lambda _: self.undo())
        # A drawn or searched group is reviewed before it is labelled: its members in a grid
        # (a click drops one), a class chosen on purpose, then a confirmation.
        self.group_target = pn.widgets.Select(
            label="class for the group", options=[CHOOSE_CLASS, *names, REMOVE], value=CHOOSE_CLASS
        )
        self.group_target.param.watch(lambda _: self._group_class_changed(), "value")
        self.group_info = pn.pane.HTML("")
        self.review_grid = ReviewGrid()
        self.review_grid.param.watch(lambda event: self._dropped(int(event.new[0])), "dropped")
        self.group_prompt = pn.pane.HTML("", css_classes=["ssvae-group-prompt"])
        group_button = pn.widgets.Button(label="label group…", color="warning")
        group_button.on_click(lambda _: self._ask_group())
        self.confirm_text = pn.pane.HTML("", css_classes=["ssvae-confirm-text"])
        confirm = pn.widgets.Button(label="confirm", color="danger")
        confirm.on_click(lambda _: self._confirm_group())
        cancel = pn.widgets.Button(label="cancel")
        cancel.on_click(lambda _: self._cancel_group(say=True))
        cancel_review = pn.widgets.Button(label="cancel group")
        cancel_review.on_click(lambda _: self._cancel_group(say=True))
        self.confirm_box = pn.Column(self.confirm_text, pn.Row(confirm, cancel), visible=False)
        self.group_box = pn.Column(
            "### group",
            self.group_info,
            self.review_grid,
            self.group_target,
            self.group_prompt,
            pn.Row(group_button, cancel_review),
            self.confirm_box,
            visible=False,
        )
        self.search = pn.widgets.TextInput(
            label="search messages",
            placeholder="part of a message, any case; Enter selects every match",
            width=380,
            css_classes=[ENTER_RETURNS_FOCUS],
        )
        self.search.param.watch(lambda event: self.find(str(event.new or "")), "value")
        self.matches = pn.widgets.Select(
            label="matches (choose one to see it)",
            options={},
            size=8,
            width=440,
            visible=False,
            css_classes=["ssvae-matches"],
        )
        self.matches.param.watch(lambda event: self._match_chosen(event.new), "value")
        self.mode.param.watch(lambda _: self._recolour(), "value")
        self.policy.param.watch(lambda _: self._recolour(), "value")
        self.search.visible = board.texts is not None
        self.class_buttons = self._class_buttons(names)
        self.button_box = pn.FlexBox(*self.class_buttons, max_width=440)
        side = pn.Column(
            self.matches,
            self.group_box,
            self.button_box,
            self.picker,
            pn.Row(self.new_class, add_class),
            pn.Row(delete, undo),
            self.detail,
            width=460,
        )
        self.view = pn.Column(
            EnterReturnsFocus(),
            pn.Row(self.map_view, self.mode, self.policy, self.search),
            self.counters,
            self.status,
            pn.Row(pn.Column(self.map_holder, self.layout_note, self.caption, self.note), side),
            name="Label",
        )

    def _class_buttons(self, names: tuple[str, ...]) -> list[Any]:
        """One button per class, with its key; none for more than MAX_BUTTONS classes (message
        templates, say, make a wall of buttons: the picker is enough)."""
        buttons = []
        for index, name in enumerate(names if len(names) <= MAX_BUTTONS else ()):
            key = self.board.class_for_key(name) == name and len(name) == 1
            hint = "" if key or index >= 10 or len(names) > 10 else f"[{index}] "
            button = pn.widgets.Button(label=f"{hint}{name}", width=60 if len(name) < 4 else 120)
            button.on_click(self._assigner(name))
            buttons.append(button)
        return buttons

    def _class_widgets_changed(self) -> None:
        """The labels gained a class: new buttons, picker and group choice."""
        names = self._names = self.board.class_names
        self.class_buttons = self._class_buttons(names)
        self.button_box.objects = self.class_buttons
        self.picker.param.update(
            options=list(names), placeholder=f"type part of one of {len(names)} class names"
        )
        chosen = self.group_target.value
        self.group_target.param.update(
            options=[CHOOSE_CLASS, *names, REMOVE],
            value=chosen if chosen in (*names, REMOVE) else CHOOSE_CLASS,
        )
        if self.on_classes_changed is not None:
            self.on_classes_changed()

    def _classes_changed(self) -> None:
        """The labels gained a class: new class widgets, and a map whose palette and legend
        have a colour for it."""
        self._class_widgets_changed()
        self.map = self._new_map()
        self.mode.value = USER_LABEL
        self.map_holder.objects = [self.map.pane]
        if self.selected is not None:
            rows = self.board.pool_map.rows_of([self.selected])
            later(lambda: self.map.highlight(rows))  # once the new figure is in the page

    def _new_map(self) -> LatentMapView:
        board = self.board
        return LatentMapView(
            board.pool_map,
            colour_column(board.pool_map, USER_LABEL, board.labels()),
            board.codes(),
            self._point_clicked,
            self._group_drawn,
            texts=None if board.texts is None else board.texts.texts,
        )

    def _caption(self) -> str:
        pool_map = self.board.pool_map
        dims = pool_map.latent.shape[1]
        how = "the 2-D latent" if dims <= 2 else f"PCA of the {dims}-D latent"
        if pool_map.view == CLASS_VIEW:
            how = "class map: t-SNE of the model's class probabilities and encodings"
        return (
            f"<small class='ssvae-map-caption'><b>{len(pool_map)}</b> points ({how}); "
            "scroll to zoom, drag to pan, lasso or box to label a group</small>"
        )

    def show_layout_note(self, text: str) -> None:
        """Say why the class map is not drawn ('' once it is)."""
        shown = f"<small><i>{html.escape(text)}</i></small>" if text else ""
        if self.layout_note.object != shown:
            self.layout_note.object = shown

    def _view_chosen(self) -> None:
        """The map selector changed: draw the pool at the chosen view's positions."""
        board = self.board
        if self.map_view.value == board.pool_map.view:
            return
        try:
            board.pool_map = in_view(board.pool_map, self.map_view.value)
        except SsvaeError as error:
            self.note.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            self.map_view.value = board.pool_map.view
            return
        self._cancel_group()
        self.map = self._new_map()
        self.map_holder.objects = [self.map.pane]
        self.caption.object = self._caption()
        self._recolour()
        if self.selected is not None:
            rows = board.pool_map.rows_of([self.selected])
            later(lambda: self.map.highlight(rows))  # once the new figure is in the page

    def replace_board(self, board: LabelBoard) -> None:
        """New predictions (after a training run) or the class map laid out: a new map, the
        same labels."""
        self.board = board
        if board.class_names != self._names:
            self._class_widgets_changed()
        self._cancel_group()
        self.map = self._new_map()
        self.map_view.value = board.pool_map.view  # its watcher sees the board's view: no-op
        self.mode.value = USER_LABEL
        self.map_holder.objects = [self.map.pane]
        self.caption.object = self._caption()
        self.counters.object = counters_html(board.counts())
        if self.selected is not None:
            self.map.highlight(board.pool_map.rows_of([self.selected]))
            self._show_detail()

    # Events from the map.

    def _point_clicked(self, row: int) -> None:
        self.selected = int(self.board.pool_map.serials[row])
        self._cancel_group()
        self._show_detail()

    def _group_drawn(self, rows: IntArray, how: str = "inside the drawn area") -> None:
        """A lasso, box or search selected `rows`: show them for review; nothing is labelled
        until a class is chosen and confirmed."""
        self.confirm_box.visible = False
        self.group_prompt.object = ""
        if rows.size == 0:
            self.review = None
            self.group_box.visible = False
            self.status.object = f"no point {html.escape(how)}"
            return
        self.review = GroupReview.of(rows, how)
        self.group_target.value = CHOOSE_CLASS  # chosen on purpose for every group
        self._show_review()
        self.group_box.visible = True
        self.status.object = (
            f"{len(self.review)} points selected: check them, click any that do not belong, "
            "then choose the group's class"
        )

    def _show_review(self) -> None:
        review = self.review
        if review is None:
            return
        rest = html.escape(review.summary().split(" ", 1)[1])
        self.group_info.object = (
            f"<b class='ssvae-group-count'>{len(review)}</b> <span class='ssvae-group-summary'>"
            f"{rest}</span><br><small>click a point that does not belong to drop it</small>"
        )
        self.review_grid.cards = review_cards(self.board, review, self.kind)

    def _dropped(self, row: int) -> None:
        """A card clicked in the review grid: that point leaves the group, and its ring."""
        if self.review is None or row < 0:
            return
        try:
            self.review = self.review.without(row)
        except SsvaeError as error:
            self.status.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            return
        self.confirm_box.visible = False  # its count is stale
        if not len(self.review):
            self._cancel_group()
            self.status.object = "every point was dropped from the group; nothing was labelled"
            return
        self._show_review()
        rows = self.review.rows
        later(lambda: self.map.highlight(rows))
        self.status.object = f"{len(self.review)} points left in the group"

    def _group_class_changed(self) -> None:
        """A new choice of class: the confirmation shown for the last one is stale."""
        self.confirm_box.visible = False
        self.group_prompt.object = ""

    # Search over the messages.

    def find(self, query: str) -> None:
        """Select every point whose message contains `query` (any case) as a group, ring them
        on the map and list them."""
        if not query.strip():
            self.matches.visible = False
            return
        try:
            rows = self.board.search(query)
        except SsvaeError as error:
            self.status.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            return
        # A text box's change arrives outside the document's lock: the figure changes on the
        # next tick, which holds it (a direct change fails in Bokeh's server session).
        later(lambda: self.map.highlight(rows))
        self._group_drawn(rows, f"with a message containing {query.strip()!r}")
        texts = self.board.texts
        assert texts is not None
        serials = self.board.pool_map.serials
        listed = rows[:SHOWN_MATCHES]
        options: dict[str, int | None] = {CHOOSE_MATCH: None}
        options.update(
            (f"{int(serials[r])}: {shortened(t, MATCH_CHARACTERS)}", int(serials[r]))
            for r, t in zip(listed.tolist(), texts.texts_of(listed), strict=True)
        )
        listed_note = f", first {SHOWN_MATCHES} listed" if rows.size > listed.size else ""
        self.matches.param.update(
            options=options, value=None, name=f"{rows.size} matches{listed_note}"
        )
        self.matches.visible = bool(rows.size)
        if rows.size:
            self.status.object = (
                f"{rows.size} messages contain {html.escape(repr(query.strip()))}: they are "
                "selected as a group; choose one in the list to see it"
            )

    def _match_chosen(self, serial: Any) -> None:
        """A match chosen in the list: its detail, as a click shows it; the group stays."""
        if serial is None:
            return
        self.selected = int(serial)
        rows = self.board.pool_map.rows_of([self.selected])
        later(lambda: self.map.highlight(rows))  # outside the document's lock, as in find
        self._show_detail()

    def _show_detail(self) -> None:
        if self.selected is None:
            return
        try:
            self._detail = self.board.detail(self.selected)
        except SsvaeError as error:
            self._detail = None
            self.detail.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            return
        self.detail.object = detail_html(self._detail, self.kind)

    def _show_label(self, code: int) -> None:
        """The clicked sample's new label in its detail (the rest of the detail is kept)."""
        detail = self._detail
        if detail is None or detail.serial != self.selected:
            self._show_detail()
            return
        label = None if code < 0 else self.board.class_names[code]
        self._detail = attrs.evolve(detail, user_label=label)
        self.detail.object = detail_html(self._detail, self.kind)

    # Labelling.

    def press(self, key: str, ctrl: bool) -> None:
        """A key pressed while this page is shown."""
        if ctrl and key.lower() == "z":
            self.undo()
            return
        self._run(lambda: self.board.press(self.selected, key, ctrl))

    def undo(self) -> None:
        """Undo the latest batch, off the event loop (`undo_off_the_event_loop`)."""
        undo_off_the_event_loop(self.board, self._run, self._say_progress)

    def _say_progress(self, text: str) -> None:
        self.status.object = html.escape(text)

    def _assign_selected(self, class_name: str) -> None:
        if self.selected is None:
            self.status.object = "click a point first"
            return
        self._run(lambda: self.board.assign([self.selected or 0], class_name))

    def _assigner(self, class_name: str) -> Callable[[Any], None]:
        def assign(_: Any) -> None:
            self._assign_selected(class_name)

        return assign

    def _assign_picked(self) -> None:
        """The class chosen in the picker labels the clicked point; the picker empties for
        the next one."""
        chosen = str(self.picker.value or "")
        if chosen:
            self._assign_selected(chosen)
            self.picker.value = ""

    def add_class(self) -> None:
        """Add the class typed in the new-class box; the clicked point, if any, gets it."""
        name = str(self.new_class.value_input or self.new_class.value or "").strip()
        serials = [] if self.selected is None else [self.selected]
        if self._run(lambda: self.board.add_class(name, serials)):
            self.new_class.param.update(value="", value_input="")

    def _remove_selected(self) -> None:
        if self.selected is not None:
            self._run(lambda: self.board.remove([self.selected or 0]))

    def _refuse_group(self, error: SsvaeError) -> None:
        message = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
        self.group_prompt.object = message
        self.status.object = message

    def _ask_group(self) -> None:
        review = self.review
        if review is None:
            return
        try:
            target = group_target(self.group_target.value)
            preview = self.board.preview(self.board.pool_map.serials[review.rows], target)
        except SsvaeError as error:
            self._refuse_group(error)
            return
        self.group_prompt.object = ""
        self.confirm_text.object = html.escape(preview.summary())
        self.confirm_box.visible = True

    def _confirm_group(self) -> None:
        """Label the points left in the group with the chosen class, as one undo step."""
        review = self.review
        if review is None:
            return
        try:
            group_target(self.group_target.value)
        except SsvaeError as error:
            self._refuse_group(error)
            return
        if self._run(lambda: self.board.label_group(review, self.group_target.value)):
            self._cancel_group()

    def _cancel_group(self, say: bool = False) -> None:
        """Forget the group; nothing is labelled."""
        had = self.review is not None
        self.review = None
        self.confirm_box.visible = False
        self.group_box.visible = False
        self.group_prompt.object = ""
        if say and had:
            self.map.clear_selection()
            self.status.object = "group cancelled; nothing was labelled"

    def _run(self, action: Any) -> bool:
        """Run a labelling action and show what it did; False when it failed."""
        try:
            update = action()
        except SsvaeError as error:
            self.status.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            return False
        if self.board.class_names != self._names:  # added here, or elsewhere and seen now
            self._classes_changed()
            if update is not None:  # the new map draws the labels; the rest once it is shown
                later(lambda: self.apply(update))
            return True
        if update is not None:
            self.apply(update)
        return True

    def apply(self, update: LabelUpdate) -> None:
        """Redraw what an action changed: the points, the counters, the detail; the rings go,
        so that the labelled points show their new colours."""
        self.map.patch_labels(update.rows, update.codes)
        self.map.clear_selection()
        self.counters.object = counters_html(update.counts)
        self.status.object = html.escape(update.message)
        changed = self.board.pool_map.serials[update.rows]
        if self.selected is not None and np.isin(self.selected, changed):
            code = int(update.codes[int(np.flatnonzero(changed == self.selected)[0])])
            # The detail follows on the next tick: the map's redraw goes out first.
            later(lambda: self._show_label(code))

    def refresh_labels(self) -> None:
        """Redraw every point's label (after a change made elsewhere, e.g. the Queue page)."""
        self.map.set_labels(self.board.codes())
        self.counters.object = counters_html(self.board.counts())

    def _recolour(self) -> None:
        self.policy.visible = self.mode.value == ACQUISITION
        try:
            column = colour_column(
                self.board.pool_map, self.mode.value, self.board.labels(), self.policy.value
            )
        except SsvaeError as error:
            self.note.object = f"<span class='ssvae-error'>{html.escape(str(error))}</span>"
            return
        self.map.recolour(column)
        self.note.object = html.escape(column.note)
