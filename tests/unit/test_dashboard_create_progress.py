"""Creating a model from the dashboard: each step named while it runs, the buttons disabled
meanwhile, the model opened at the end or a one-line error with the buttons back; through the
real container with fake data and models (as tests/unit/test_dashboard_hub.py)."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Any

import panel as pn
from test_dashboard_hub import _hub

from ssvae.domain.errors import SsvaeError
from ssvae.entrypoints.dashboard.model_page import CREATING, DRAWING, ModelCreation


def _creation(tmp_path: Path, pages: bool = True) -> tuple[Any, ModelCreation, list[str]]:
    hub = _hub(tmp_path)
    opened: list[str] = []
    status = pn.pane.HTML("")
    buttons = [pn.widgets.Button(label="create"), pn.widgets.Button(label="clone")]
    built: list[Any] = []
    creation = ModelCreation(
        hub, status, buttons, opened.append, (lambda model: built.append(model)) if pages else None
    )
    return hub, creation, opened


def test_each_step_is_named_while_it_runs_with_the_buttons_disabled(tmp_path: Path) -> None:
    hub, creation, opened = _creation(tmp_path)
    seen: list[tuple[str, bool]] = []
    original = creation.status.param.watch(
        lambda event: seen.append(
            (str(event.new), all(button.disabled for button in creation.buttons))
        ),
        "object",
    )
    assert asyncio.run(creation.run(lambda: hub.create("mixture_k5", "m")))
    creation.status.param.unwatch(original)
    steps = [what for what, _ in creation.seconds]
    assert steps[0] == CREATING and steps[-1] == DRAWING
    assert any("building the model" in what for what in steps)
    assert any("predicting the pool" in what for what in steps)
    running = [(text, disabled) for text, disabled in seen if "data-state='running'" in text]
    assert len(running) == len(steps)  # one status per step, shown before it runs
    assert all(disabled for _, disabled in running)
    for (what, _), (text, _) in zip(creation.seconds, running, strict=True):
        assert html.escape(what) in text
    assert opened == ["m"]
    # The model the new tab opens is the one prepared: its pool map is already computed.
    assert hub.open("m").pool_map() is hub.open("m").pool_map()


def test_a_refused_step_shows_one_line_and_gives_the_buttons_back(tmp_path: Path) -> None:
    _, creation, opened = _creation(tmp_path)

    def refuse() -> Any:
        raise SsvaeError("workspace id 'a b' is invalid: use letters, digits, _ and -\nmore")

    assert not asyncio.run(creation.run(refuse))
    text = str(creation.status.object)
    assert "ssvae-create-error" in text and "is invalid" in text and "more" not in text
    assert not any(button.disabled for button in creation.buttons)
    assert opened == []


def test_an_untrained_model_generates_no_samples_a_trained_one_does(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m")
    model = hub.open("m")
    untrained = [what for what, _ in model.warm_steps()]
    assert not any("generating" in what or "accuracy" in what for what in untrained)
    board = model.board()
    board.assign([0, 3], "0")
    board.press(1, "1")
    model.job.start(1)
    assert model.job.wait(20)
    trained = [what for what, _ in model.warm_steps()]
    assert any("generating" in what for what in trained)
    assert any("accuracy" in what for what in trained)


def test_the_model_pages_create_and_clone_go_through_the_same_steps(tmp_path: Path) -> None:
    import holoviews as hv

    from ssvae.entrypoints.dashboard.model_page import ModelPage

    hv.extension("bokeh", logo=False)  # the page's usage plot is a HoloViews element
    hub = _hub(tmp_path)
    hub.create("mixture_k5", "m")
    opened: list[str] = []
    page = ModelPage(hub, hub.open("m"), opened.append)
    page.samples.value = "12x"
    assert not asyncio.run(page.create())
    assert html.escape("pool size '12x' is invalid") in str(page.form_status.object)
    assert not any(button.disabled for button in page.creation.buttons)
    page.samples.value = ""
    page.new_id.value = "copy"
    assert asyncio.run(page.clone())
    assert opened == ["copy"]
    assert any("predicting the pool" in what for what, _ in page.creation.seconds)
    assert all(button.disabled for button in page.creation.buttons)  # the tab moves on
