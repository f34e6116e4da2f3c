"""When a page's change reaches the browser: at once, on the next tick, or from another thread.

A Bokeh server document is changed on its event loop. Some changes must wait for the next
tick (a new figure must be in the page before it can ring points), and a slow write (an undo
of a large group) runs on a worker thread whose result is handed back to the loop; outside a
browser session (tests, scripts) every change happens at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import panel as pn

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard


def browser_document() -> Any | None:
    """The Bokeh document of the browser session this code serves; None outside one (tests)."""
    document = pn.state.curdoc
    return None if document is None or document.session_context is None else document


def later(callback: Callable[[], None]) -> None:
    """Run `callback` after the current event's changes went to the browser (at once when no
    browser session is running, e.g. in tests)."""
    document = browser_document()
    if document is not None:
        document.add_next_tick_callback(callback)
    else:
        callback()


def _raising(error: Exception) -> Callable[[], None]:
    def action() -> None:
        raise error

    return action


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
