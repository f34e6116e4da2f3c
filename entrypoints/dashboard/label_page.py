# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Label page: the latent map, the clicked sample, keys and buttons that set its class.

A group drawn or searched on the map is reviewed in `group_review.GroupBox`; the clicked
sample is drawn by `sample_detail`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import panel as pn

from ssvae.domain.errors import SsvaeError
from ssvae.domain.policies import MAP_POLICIES
from ssvae.entrypoints.dashboard.event_loop import later, undo_off_the_event_loop
from ssvae.entrypoints.dashboard.group_review import GroupBox
from ssvae.entrypoints.dashboard.latent_map import LatentMapView, category_palette
from ssvae.entrypoints.dashboard.sample_detail import detail_html
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard, LabelUpdate, SampleDetail
from ssvae.entrypoints.dashboard.viewmodels.map import (
    ACQUISITION,
    COLOUR_MODES,
    MAP_VIEWS,
    USER_LABEL,
    colour_column,
    in_view,
)
from ssvae.entrypoints.dashboard.viewmodels.queue import key_legend
from ssvae.entrypoints.dashboard.widgets import (
    ENTER_RETURNS_FOCUS,
    EnterReturnsFocus,
    class_picker,
    error_html,
    picker_classes,
)

IntArray = npt.NDArray[np.int64]
MAX_BUTTONS = 20  # more classes than this: the searchable class picker alone
SHOWN_MATCHES = 200  # search matches listed (all of them are selected as a group)
MATCH_CHARACTERS = 90
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


class LabelPage:
    """The Label tab: map, detail, class keys, group labelling with a confirmation."""

    def __init__(self, board: LabelBoard, kind: str, *, policy: str = "margin") -> None:
        self.board = board
        self.kind = kind
        self.selected: int | None = None  # the clicked serial
        self._detail: SampleDetail | None = None
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
        # A group drawn on the map or searched is reviewed before it is labelled.
        self.group = GroupBox(self, names)
        self.map = self._new_map()
        self.map_holder = pn.Column(self.map.pane)
        self.detail = pn.pane.HTML("<i>no point selected</i>", width=420)
        self.on_classes_changed: Callable[[], None] | None = None  # set by the app
        self._names = names  # the classes the buttons, picker and map show
        self.picker = class_picker("find a class (Enter labels the point)", names)
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
            self.group.view,
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
        keys = {name: key for key, name in key_legend(self.board)}
        buttons = []
        for name in names if len(names) <= MAX_BUTTONS else ():
            hint = f"[{keys[name]}] " if name in keys else ""
            button = pn.widgets.Button(label=f"{hint}{name}", width=60 if len(name) < 4 else 120)
            button.on_click(self._assigner(name))
            buttons.append(button)
        return buttons

    def _class_widgets_changed(self) -> None:
        """The labels gained a class: new buttons, picker and group choice."""
        names = self._names = self.board.class_names
        self.class_buttons = self._class_buttons(names)
        self.button_box.objects = self.class_buttons
        self.picker.param.update(**picker_classes(names))
        self.group.set_classes(names)
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
            self.group.show,
            texts=None if board.texts is None else board.texts.texts,
        )

    def _caption(self) -> str:
        pool_map = self.board.pool_map
        return (
            f"<small class='ssvae-map-caption'><b>{len(pool_map)}</b> points "
            f"({pool_map.projection}); "
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
            self.note.object = error_html(error)
            self.map_view.value = board.pool_map.view
            return
        self.group.cancel()
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
        self.group.cancel()
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
        self.group.cancel()
        self._show_detail()

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
            self.status.object = error_html(error)
            return
        # A text box's change arrives outside the document's lock: the figure changes on the
        # next tick, which holds it (a direct change fails in Bokeh's server session).
        later(lambda: self.map.highlight(rows))
        self.group.show(rows, f"with a message containing {query.strip()!r}")
        texts = self.board.texts
        assert texts is not None
        options: dict[str, int | None] = {CHOOSE_MATCH: None}
        options.update(texts.listed(rows[:SHOWN_MATCHES], MATCH_CHARACTERS))
        listed_note = f", first {SHOWN_MATCHES} listed" if rows.size > SHOWN_MATCHES else ""
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
            self.detail.object = error_html(error)
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

    def _run(self, action: Any) -> bool:
        """Run a labelling action and show what it did; False when it failed."""
        try:
            update = action()
        except SsvaeError as error:
            self.status.object = error_html(error)
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
        code = None if self.selected is None else self.board.code_in(update, self.selected)
        if code is not None:
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
            self.note.object = error_html(error)
            return
        self.map.recolour(column)
        self.note.object = html.escape(column.note)
