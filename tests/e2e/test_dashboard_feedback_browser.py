"""What the dashboard says while it works, as a person sees it in Debian's chromium: creating a
model names each step with its button disabled, a stopped training run stays where it stopped,
the Model page keeps a run without a finished epoch apart, and a text model's tau heatmap
keeps 25 class names readable.

Two servers (MNIST from its start page; a small Loghub text workspace trained by the CLI) and
one page serve the module; the tests run in file order. Screenshots go to
artifacts/screenshots/. The module takes minutes on a small CPU (JAX compiles each model), so
it runs with the slow tests.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import (
    LOSS_POINTS_JS,
    SCREENSHOTS,
    SLOW,
    SSVAE,
    _tab,
    _wait_until,
    chromium_page,
    server,  # noqa: F401 - the MNIST server fixture, one for this module
    serving,
)
from test_dashboard_text import _pool_serials, messages  # noqa: F401 - the messages fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POOL_SIZE = 600
MODEL_ID = "feedback"
TEXT_ID = "feedback-text"
LABELS_PER_TEMPLATE = 3
# The tau heatmap's class axis: its labels' orientation, its factors and its width.
TAU_AXIS_JS = """() => {
  const view = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-tau');
  if (!view) return null;
  const fig = view.model;
  return {orientation: fig.below[0].major_label_orientation,
          factors: fig.x_range.factors.length, width: fig.width};
}"""
PROGRESS_JS = """() => {
  const find = (root) => {
    const bar = root.querySelector('progress');
    if (bar) return bar;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const found = find(el.shadowRoot); if (found) return found; }
    }
    return null;
  };
  const bar = find(document);
  return bar ? Number(bar.value) : null;
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chromium page with a fresh profile."""
    with chromium_page(tmp_path_factory.mktemp("chromium-profile-feedback")) as browser_page:
        yield browser_page


def _status(page: Any) -> tuple[str, str]:
    status = page.locator(".ssvae-train-status")
    return str(status.get_attribute("data-state")), str(status.inner_text())


def _epoch(status: str) -> int:
    """The epoch a running status names ("epoch k of n"), 0 when it names none."""
    found = re.search(r"epoch (\d+) of \d+", status)
    return int(found.group(1)) if found else 0


def test_a_bad_pool_size_is_one_line_and_leaves_the_button_enabled(
    server: tuple[str, Path],  # noqa: F811
    page: Any,
) -> None:
    url, _ = server
    page.goto(url)
    page.locator(".ssvae-no-models").wait_for()
    page.get_by_label("pool size (empty: the whole train split)").fill("6OO")
    page.get_by_role("button", name="create model").click()
    error = page.locator(".ssvae-create-error")
    error.wait_for()
    assert "pool size '6OO' is invalid" in error.inner_text()
    assert "\n" not in error.inner_text().strip()
    assert page.get_by_role("button", name="create model").is_enabled()


def test_creating_a_model_names_each_step_with_the_button_disabled_then_opens_it(
    server: tuple[str, Path],  # noqa: F811
    page: Any,
) -> None:
    page.get_by_label("model id (optional)").fill(MODEL_ID)
    page.get_by_label("pool size (empty: the whole train split)").fill(str(POOL_SIZE))
    button = page.get_by_role("button", name="create model")
    button.click()
    seen: dict[str, bool] = {}
    shot = False
    while "model=" not in page.url:
        try:
            step = page.locator(".ssvae-create-step").first.inner_text(timeout=1000)
            seen.setdefault(step.split("…")[0], button.is_disabled(timeout=1000))
        except Exception:  # the page is on its way to the model: nothing left to read
            continue
        if not shot and "building the model" in step:
            page.screenshot(path=str(SCREENSHOTS / "create-progress.png"))
            shot = True
    steps = list(seen)
    assert any(s.startswith("building the model") for s in steps), steps
    assert any(s.startswith("predicting the pool") for s in steps), steps
    assert len(steps) >= 3 and all(seen.values()), seen  # disabled at every step
    page.wait_for_selector("canvas", timeout=SLOW)
    page.locator(".ssvae-map-caption").get_by_text(str(POOL_SIZE)).wait_for()


def test_a_run_stopped_before_its_first_epoch_says_so_and_keeps_a_loss_point(
    server: tuple[str, Path],  # noqa: F811
    page: Any,
) -> None:
    _tab(page, "Train")
    epochs = page.get_by_label("epochs")
    epochs.fill("30")
    epochs.press("Enter")
    page.get_by_role("button", name="start training").click()
    page.locator(".ssvae-train-status[data-state='running']").wait_for(timeout=SLOW)
    page.get_by_role("button", name="stop").click()  # the first run compiles for seconds
    page.locator(".ssvae-train-status[data-state='stopped']").wait_for(timeout=SLOW)
    assert "stopped before the first epoch of 30" in _status(page)[1]
    assert page.evaluate(PROGRESS_JS) == 0  # no epoch ended, and the bar says so
    assert max(page.evaluate(LOSS_POINTS_JS)) >= 1  # the chart is not emptied


def test_a_stopped_run_keeps_its_bar_at_the_epoch_reached_and_its_loss_chart(
    server: tuple[str, Path],  # noqa: F811
    page: Any,
) -> None:
    page.get_by_role("button", name="start training").click()
    # The status may pass any one epoch between two polls on a fast machine: wait for any
    # epoch past the third, then stop long before the 30th.
    _wait_until(lambda: _epoch(_status(page)[1]) >= 4, SLOW / 1000, "three epochs")
    page.get_by_role("button", name="stop").click()
    page.locator(".ssvae-train-status[data-state='stopped']").wait_for(timeout=SLOW)
    text = _status(page)[1]
    assert "stopped at epoch" in text and "of 30" in text
    reached = int(text.split("stopped at epoch ")[1].split(" ")[0])
    assert reached >= 3
    bar = page.evaluate(PROGRESS_JS)
    assert abs(bar - 100 * reached / 30) <= 1  # the epochs the status names, not 100%
    assert min(page.evaluate(LOSS_POINTS_JS)) >= reached  # training and validation curves
    page.screenshot(path=str(SCREENSHOTS / "train-stopped.png"))
    _tab(page, "Model")
    runs = page.locator(".ssvae-runs")
    runs.wait_for()
    _wait_until(lambda: runs.locator("tr").count() == 3, 60, "both runs on the Model page")
    first, second = runs.locator("tr").nth(1), runs.locator("tr").nth(2)
    assert "stopped before the first epoch" in first.inner_text()
    assert "%" not in first.inner_text()
    cells = [second.locator("td").nth(k).inner_text() for k in range(5)]
    assert int(cells[2]) == reached
    assert float(cells[3]) > 0  # the validation loss the run recorded
    assert cells[4].endswith("%")
    page.screenshot(path=str(SCREENSHOTS / "model-mnist.png"), full_page=True)


@pytest.fixture(scope="module")
def text_server(
    tmp_path_factory: pytest.TempPathFactory,
    messages: tuple[Path, dict[int, dict[str, str]]],  # noqa: F811
) -> Iterator[str]:
    """A text workspace of 25 Loghub templates on the mixture preset, 3 labels a template,
    trained 3 epochs by the CLI; the dashboard opened on it."""
    root = tmp_path_factory.mktemp("feedback-text")
    artifacts = root / "artifacts"
    env = {**os.environ, "HOME": str(root)}
    data = ["--input", str(messages[0]), "--label-column", "event_id", "--embedder-dim", "32"]
    data += ["--cache-dir", str(root / "cache")]

    def run(*args: str) -> None:
        done = subprocess.run(
            [SSVAE, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr

    run("init", *data, "--preset", "text_mixture_k20", "--id", TEXT_ID, "--artifacts", "artifacts")
    model = artifacts / "models" / TEXT_ID
    in_pool = set(_pool_serials(model))
    chosen: dict[str, list[int]] = {}
    for serial, row in sorted(messages[1].items()):
        picked = chosen.setdefault(row["event_id"], [])
        if serial in in_pool and len(picked) < LABELS_PER_TEMPLATE:
            picked.append(serial)
    labels = root / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Serial", "label"])
        writer.writerows((s, name) for name, serials in chosen.items() for s in serials)
    run("label", "--model", str(model), "import", str(labels))
    run("train", "--model", str(model), "--epochs", "3")
    arguments = ["--model", str(model), *data]
    with serving(arguments, root, env, SLOW / 1000, "the text dashboard") as url:
        yield url


def test_the_text_models_tau_heatmap_gives_each_of_25_class_names_room(
    text_server: str, page: Any
) -> None:
    page.goto(text_server)
    page.wait_for_selector("canvas", timeout=SLOW)
    _tab(page, "Model")
    axis = _wait_until(lambda: page.evaluate(TAU_AXIS_JS), 60, "the tau heatmap")
    assert axis["factors"] == 25
    assert abs(axis["orientation"] - 1.5708) < 1e-3  # names run upwards, one column each
    assert axis["width"] >= 18 * 25
    page.screenshot(path=str(SCREENSHOTS / "model-text.png"), full_page=True)
