# mypy: disable-error-code="no-untyped-call"
# (Panel and Bokeh widgets are param classes whose constructors carry no annotations.)
"""Queue page: the next k samples of a policy as a strip, labelled with the keyboard."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import panel as pn

from ssvae.domain.comparison import GeneratedSamples
from ssvae.domain.errors import SsvaeError
from ssvae.domain.text_examples import TextExamples
from ssvae.entrypoints.dashboard.event_loop import browser_document, undo_off_the_event_loop
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard
from ssvae.entrypoints.dashboard.viewmodels.queue import QueueBoard, key_legend
from ssvae.entrypoints.dashboard.viewmodels.text import shortened
from ssvae.entrypoints.dashboard.widgets import (
    class_picker,
    message_html,
    picker_classes,
    png_data_url,
    sample_html,
)


def strip_html(board: QueueBoard, kind: str) -> str:
    """The queue as a row of large samples; the highlighted one framed."""
    items = board.items()
    if not items:
        if board.asked:
            return (
                "<i class='ssvae-queue-empty'>no unlabelled sample is left in the pool: "
                "nothing to propose</i>"
            )
        return "<i class='ssvae-queue-empty'>the queue is empty: press 'refresh queue'</i>"
    cards = []
    for position, item in enumerate(items):
        row = item.row
        framed = position == board.position
        border = "4px solid #d62728" if framed else "1px solid #ccc"
        label = item.label if item.label is not None else "-"
        runner_up = ""
        if item.runner_up is not None:
            runner_up = (
                f"<br><span class='ssvae-runner-up'>runner-up {html.escape(item.runner_up)} "
                f"({item.runner_up_probability:.2f})</span>"
            )
        if row.text is not None:  # text data: the message, in a wider card
            shown = message_html(row.text, size=12)
            shape = "width:300px;text-align:left"
        else:
            shown = sample_html(board.board.load_sample(row.serial), kind, scale=4)
            shape = "text-align:center"
        cards.append(
            f'<div class="ssvae-queue-item{" ssvae-highlighted" if framed else ""}" '
            f'data-serial="{row.serial}" style="border:{border};padding:4px;margin:3px;'
            f'{shape};font-size:12px">'
            f"{shown}<br>"
            f"serial {row.serial}<br>score {row.score:.3f}<br>predicted "
            f"{html.escape(row.predicted)} ({row.certainty:.2f}){runner_up}<br>label "
            f"<b class='ssvae-queue-label'>{html.escape(label)}</b></div>"
        )
    return f"<div style='display:flex;flex-wrap:wrap'>{''.join(cards)}</div>"


def legend_html(board: QueueBoard) -> str:
    """Which key labels which class: named classes take digit keys by position; more than
    ten classes take the picker."""
    names = board.board.class_names
    pairs = key_legend(board.board)
    if pairs:
        keys = " · ".join(f"<b>{html.escape(key)}</b> {html.escape(name)}" for key, name in pairs)
        return f"<div class='ssvae-key-legend'><small>class keys: {keys}</small></div>"
    if len(names) > 10:
        return (
            f"<div class='ssvae-key-legend'><small>{len(names)} classes: label with the class "
            "picker (type part of a name, Enter)</small></div>"
        )
    return ""


def queue_status_html(board: QueueBoard) -> str:
    """What the strip holds: what the score measures, a warning before training, the
    near-duplicates left out, and a prompt once every sample is labelled."""
    lines = [f"<span class='ssvae-score-meaning'>{html.escape(board.meaning())}</span>"]
    warning = board.untrained_warning()
    if warning:
        lines.append(
            f"<span class='ssvae-untrained' style='color:#c0392b'>{html.escape(warning)}</span>"
        )
    if board.left_out:
        noun = "near-duplicate" if board.left_out == 1 else "near-duplicates"
        lines.append(
            f"<span class='ssvae-left-out'>{board.left_out} {noun} of the samples shown left "
            "out</span>"
        )
    items = board.items()
    if items and board.finished:
        lines.append(
            f"<b class='ssvae-queue-end'>all {len(items)} proposed samples are labelled: press "
            "'refresh queue' for the next batch, or train first so that the policy ranks with "
            "what these labels taught the model</b>"
        )
    elif board.asked and not items:
        lines.append(
            "<b class='ssvae-queue-end'>every pool sample is labelled: train, or open a larger "
            "pool</b>"
        )
    return f"<div class='ssvae-queue-info' style='font-size:13px'>{'<br>'.join(lines)}</div>"


def examples_html(examples: TextExamples) -> str:
    """Per mixture component (per class for a single-component prior): the messages the
    model is surest of, with their share of the pool and their main true class."""
    groups, what = examples.per_component, "mixture component"
    if not groups:
        groups, what = examples.per_class, "class (as predicted)"
    lines = [
        f"<div class='ssvae-examples' style='max-width:520px;font-size:12px'><b>what each "
        f"{what} holds</b>: the {examples.per_group} messages of {html.escape(examples.source)} "
        "it is surest of"
    ]
    for group in groups:
        if not group.members:
            continue
        purity = ""
        if group.majority is not None and group.purity is not None:
            purity = f", {100 * group.purity:.0f}% {html.escape(group.majority)}"
        items = "".join(
            f"<li>{html.escape(shortened(example.text, 120))}</li>" for example in group.examples
        )
        lines.append(
            f"<div class='ssvae-example-group'><b>{html.escape(group.name)}</b> "
            f"({100 * group.share:.1f}% of the pool{purity})"
            f"<ul style='margin:0;padding-left:16px'>{items}</ul></div>"
        )
    lines.append("</div>")
    return "".join(lines)


def generated_html(
    generated: GeneratedSamples | TextExamples, class_names: tuple[str, ...], kind: str
) -> str:
    """Per class: a few prior samples; per component: its mean decoded with every class.
    For text data (`generated` holds message examples): what each component holds."""
    if isinstance(generated, TextExamples):
        return examples_html(generated)
    if kind != "image":
        return "<i>generated samples are shown for image data</i>"
    per_class = np.asarray(generated.per_class)
    lines = ["<b>what the model thinks each class looks like</b><table>"]
    # A class added since the model was trained has no samples until the next run.
    for c, name in enumerate(class_names[: len(per_class)]):
        images = "".join(
            f'<img src="{png_data_url(image, 2)}" style="margin:1px">' for image in per_class[c]
        )
        lines.append(f"<tr><td>{html.escape(name)}</td><td>{images}</td></tr>")
    lines.append("</table>")
    per_component = np.asarray(generated.per_component)
    if per_component.shape[0] > 1:
        weights = np.asarray(generated.mixing_weights)
        lines.append("<b>each mixture component, written in every class</b><table>")
        for k in range(per_component.shape[0]):
            images = "".join(f'<img src="{png_data_url(image, 1)}">' for image in per_component[k])
            lines.append(f"<tr><td>{k} ({weights[k]:.2f})</td><td>{images}</td></tr>")
        lines.append("</table>")
    return "".join(lines)


class QueuePage:
    """The Queue tab."""

    def __init__(
        self,
        board: QueueBoard,
        kind: str,
        generated: GeneratedSamples | TextExamples | None = None,
    ) -> None:
        self.board = board
        self.kind = kind
        self.policy = pn.widgets.Select(
            label="policy",
            options=list(board.policies),
            value=board.policy,
            width=200,
            css_classes=["ssvae-queue-policy"],
        )
        self.k = pn.widgets.IntInput(label="k", value=board.k, start=1, end=200, width=90)
        # A new policy or k asks the policy at once: no refresh press between.
        self.policy.param.watch(lambda _: self.refresh(), "value")
        self.k.param.watch(lambda _: self.refresh(), "value")
        refresh = pn.widgets.Button(label="refresh queue", color="primary")
        refresh.on_click(lambda _: self.refresh())
        names = board.board.class_names
        # Keys name at most ten classes; larger vocabularies label through this picker.
        self.picker = class_picker(
            "class for the framed sample (Enter labels it)", names, visible=len(names) > 10
        )
        self.picker.param.watch(lambda _: self._picked(), "value")
        self.status = pn.pane.HTML("<div class='ssvae-queue-status'>asking the policy…</div>")
        self.info = pn.pane.HTML("")
        self.legend = pn.pane.HTML(legend_html(board))
        self.strip = pn.pane.HTML("", sizing_mode="stretch_width")
        self.generated = pn.pane.HTML(
            "" if generated is None else generated_html(generated, board.board.class_names, kind)
        )
        self.on_update: Any = None  # set by the app: other pages redraw changed labels
        self.view = pn.Column(
            pn.Row(self.policy, self.k, refresh, self.picker),
            self.status,
            self.info,
            pn.pane.HTML(
                "<small>keys: a class key labels the framed sample and moves on; arrows move; "
                "Delete removes; Ctrl+Z undoes</small>"
            ),
            self.legend,
            pn.Row(self.strip, self.generated),
            name="Queue",
        )
        # The strip fills itself: once the page is in the browser (a selection over a large
        # pool takes a moment the first draw need not wait for), at once outside one (tests).
        if browser_document() is None:
            self.refresh()
        else:
            pn.state.onload(self.refresh)

    def new_predictions(self, board: LabelBoard, trained: bool = True) -> None:
        """A training run ended: the policy is asked again on the new predictions (a cold
        start gives way to margin once the model is trained)."""
        self.board.new_predictions(board, trained)
        if self.policy.value != self.board.policy:
            self.policy.value = self.board.policy  # its watcher refreshes
        else:
            self.refresh()

    def classes_changed(self, board: LabelBoard) -> None:
        """The labels gained a class (on the Label page): label with `board`, pick from its
        classes."""
        self.board.board = board
        names = board.class_names
        self.picker.param.update(**picker_classes(names), visible=len(names) > 10)
        self.legend.object = legend_html(self.board)

    def show_generated(self, generated: GeneratedSamples | TextExamples) -> None:
        """Generated samples of the current model."""
        self.generated.object = generated_html(generated, self.board.board.class_names, self.kind)

    def _say(self, text: str) -> None:
        self.status.object = f"<div class='ssvae-queue-status'>{html.escape(text)}</div>"

    def refresh(self) -> None:
        try:
            items = self.board.refresh(self.policy.value, int(self.k.value or 0))
        except SsvaeError as error:
            self._say(str(error))
            return
        self._say(f"{len(items)} samples proposed by {self.board.policy}")
        self._redraw()

    def _redraw(self) -> None:
        self.strip.object = strip_html(self.board, self.kind)
        self.info.object = queue_status_html(self.board)

    def _picked(self) -> None:
        chosen = str(self.picker.value or "")
        if not chosen:
            return
        self.picker.value = ""
        self._act(lambda: self.board.assign(chosen))

    def press(self, key: str, ctrl: bool) -> None:
        """A key pressed while this page is shown."""
        if ctrl and key.lower() == "z":
            self.undo()
            return
        self._act(lambda: self.board.press(key, ctrl))

    def undo(self) -> None:
        """Undo the latest batch as the Label page does: off the event loop, presses coming
        meanwhile refused with a message rather than queued."""
        undo_off_the_event_loop(self.board.board, self._act, self._say)

    def _act(self, action: Any) -> None:
        """Run a labelling action; tell the other pages and redraw the strip."""
        try:
            update = action()
        except SsvaeError as error:
            self._say(str(error))
            return
        if update is not None:
            self._say(update.message)
            if self.on_update is not None:
                self.on_update(update)
        self._redraw()
