"""The dashboard as a person uses it: the real server in a subprocess, Debian's chromium driven
by Playwright, the real label file on disk.

One server and one browser page serve the whole module (each start costs seconds of JAX
compilation on a small CPU); the tests run in file order, each leaving the page on a known
tab. Screenshots of every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssvae.application.bootstrap import open_workspace
from ssvae.domain.maps import map_purity

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SSVAE = str(Path(sys.executable).parent / "ssvae")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MODEL_ID = "e2e"
POOL_SIZE = 2000
LABELS_PER_CLASS = 20
SLOW = 240_000  # ms: the first page of a model compiles the JAX model on a shared small CPU

# The screen position and serial of the k-th drawn pixel of the pool's raster (the server
# draws the pool as an image; an invisible image of serials lies under it for the hover).
PIXEL_JS = """([k]) => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const data = fig.model.renderers.find(
    r => r.data_source.name === 'ssvae-serial-source').data_source.data;
  const image = data['image'][0];
  const [height, width] = image.shape;
  let seen = -1;
  for (let i = 0; i < image.length; i++) {
    if (Number.isNaN(image[i])) continue;
    seen += 1;
    if (seen < k) continue;
    const col = i % width, row = Math.floor(i / width);
    const x = data['x'][0] + (col + 0.5) * data['dw'][0] / width;
    const y = data['y'][0] + (row + 0.5) * data['dh'][0] / height;
    const r = fig.canvas_view.el.getBoundingClientRect();
    return {x: r.left + fig.frame.x_scale.compute(x), y: r.top + fig.frame.y_scale.compute(y),
            serial: image[i], view: [data['x'][0], data['dw'][0]]};
  }
  return null;
}"""
# The label the map draws for `serial` (the labelled layer above the pool), -1 for none.
LABEL_JS = """([serial]) => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const layer = fig.model.renderers.find(r => r.data_source.name === 'ssvae-labelled-source');
  const at = Array.from(layer.data_source.data['serial']).indexOf(serial);
  return at < 0 ? -1 : layer.data_source.data['label'][at];
}"""
# Screen positions of map points given in data coordinates.
TO_SCREEN_JS = """([xs, ys]) => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const r = fig.canvas_view.el.getBoundingClientRect();
  return xs.map((x, i) => [r.left + fig.frame.x_scale.compute(x),
                           r.top + fig.frame.y_scale.compute(ys[i])]);
}"""
# The title of the map's colour bar while it is shown, else null.
COLOUR_BAR_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const bar = fig.model.right.find(r => r.name === 'ssvae-colour-bar');
  return bar && bar.visible ? bar.title : null;
}"""
LOSS_POINTS_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-loss-figure');
  return fig.model.renderers.map(r => r.data_source.data['x'].length);
}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def serving(
    arguments: list[str], folder: Path, env: dict[str, str], timeout: float, what: str
) -> Iterator[str]:
    """`ssvae dashboard ARGUMENTS` on a free loopback port, run in `folder` with its log in
    `folder/server.log`; yields its URL once it answers, and stops it after."""
    port = _free_port()
    log = folder / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [SSVAE, "dashboard", "--port", str(port), *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        _wait_until(up, timeout, what)
        yield url
    finally:
        stop_server(process)


def labels_on_disk(model: Path) -> dict[int, str]:
    """The labels as the workspace's label file on disk holds them."""
    path = model / "labels.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {int(row["Serial"]): row["label"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`ssvae dashboard` on a free loopback port with an empty artifacts folder."""
    artifacts = tmp_path_factory.mktemp("dashboard") / "artifacts"
    env = {**os.environ, "HOME": str(artifacts.parent)}
    arguments = ["--artifacts", str(artifacts)]
    with serving(arguments, artifacts.parent, env, 120, "the dashboard server") as url:
        yield url, artifacts


def stop_server(process: subprocess.Popen[str]) -> None:
    """Terminate the dashboard server, killing it if it does not stop in 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def chromium_page(profile: Path) -> Iterator[Any]:
    """A page of Debian's chromium with the fresh profile folder `profile`."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chromium page with a fresh profile."""
    with chromium_page(tmp_path_factory.mktemp("chromium-profile")) as browser_page:
        yield browser_page


def _labels(artifacts: Path) -> dict[int, str]:
    """The labels as the label file on disk holds them, read by the real store."""
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, LabelSettings

    path = artifacts / "models" / MODEL_ID / "labels.csv"
    app = bootstrap(AppSettings(labels=LabelSettings(path=path)))
    return dict(app.label_service().labels())


def _tab(page: Any, name: str) -> None:
    page.locator(".bk-tab", has_text=name).first.click()


def test_landing_page_creates_a_model_and_opens_its_map(
    server: tuple[str, Path], page: Any
) -> None:
    url, artifacts = server
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.locator(".ssvae-no-models").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "landing.png"))
    page.get_by_label("model id (optional)").fill(MODEL_ID)
    page.get_by_label("pool size (empty: the whole train split)").fill(str(POOL_SIZE))
    page.get_by_role("button", name="create model").click()
    page.wait_for_url(f"**?model={MODEL_ID}", timeout=SLOW)
    page.wait_for_selector("canvas", timeout=SLOW)
    page.locator(".ssvae-map-caption").get_by_text(str(POOL_SIZE)).wait_for()
    assert page.evaluate(PIXEL_JS, [0]) is not None
    assert (artifacts / "models" / MODEL_ID / "spec.yaml").is_file()
    outside = [
        u for u in requested if not u.startswith(("http://127.0.0.1", "ws://", "blob:", "data:"))
    ]
    assert outside == [], "the page must load without the internet"
    page.locator(".ssvae-layout-note").get_by_text("not trained yet").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-untrained.png"))


def test_click_a_point_and_press_a_key_saves_the_label_and_undo_removes_it(
    server: tuple[str, Path], page: Any
) -> None:
    _, artifacts = server
    point = page.evaluate(PIXEL_JS, [500])
    page.mouse.click(point["x"], point["y"])
    detail = page.locator(".ssvae-detail")
    detail.wait_for()
    serial = int(detail.get_attribute("data-serial"))
    page.keyboard.press("3")
    _wait_until(lambda: _labels(artifacts).get(serial) == "3", 30, "the label in the file")
    _wait_until(lambda: page.evaluate(LABEL_JS, [serial]) == 3, 10, "the redrawn point")
    page.locator(".ssvae-counters").get_by_text("3: 1").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-detail.png"))
    page.keyboard.press("Control+z")
    _wait_until(lambda: serial not in _labels(artifacts), 30, "the undone label")
    _wait_until(lambda: page.evaluate(LABEL_JS, [serial]) == -1, 10, "the undone point")


def test_lasso_labels_a_group_after_confirmation_and_one_undo_reverts_it(
    server: tuple[str, Path], page: Any
) -> None:
    _, artifacts = server
    page.get_by_title("Lasso Select").first.click()
    centre = page.evaluate(PIXEL_JS, [1000])
    radius = 45
    page.mouse.move(centre["x"] + radius, centre["y"])
    page.mouse.down()
    for step in range(1, 25):
        angle = 2 * math.pi * step / 24
        page.mouse.move(
            centre["x"] + radius * math.cos(angle), centre["y"] + radius * math.sin(angle)
        )
    page.mouse.up()
    count = int(page.locator(".ssvae-group-count").inner_text())
    assert count >= 1
    page.get_by_label("class for the group").select_option("7")
    page.get_by_role("button", name="label group…").click()
    page.locator(".ssvae-confirm-text").get_by_text(f"label {count} points as '7'").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-group.png"))
    page.get_by_role("button", name="confirm").click()
    labels = _wait_until(
        lambda: (found := _labels(artifacts)) and len(found) == count and found,
        30,
        "the group's labels in the file",
    )
    assert set(labels.values()) == {"7"}
    page.get_by_title("Pan").first.click()
    page.keyboard.press("Control+z")
    _wait_until(lambda: _labels(artifacts) == {}, 30, "the whole group undone")


def test_queue_labels_the_highlighted_sample_and_moves_on(
    server: tuple[str, Path], page: Any
) -> None:
    _, artifacts = server
    _tab(page, "Queue")
    page.get_by_role("button", name="refresh queue").click()
    first = page.locator(".ssvae-queue-item.ssvae-highlighted")
    first.wait_for()
    serial = int(first.get_attribute("data-serial"))
    page.keyboard.press("4")
    _wait_until(lambda: _labels(artifacts).get(serial) == "4", 30, "the queue's label in the file")
    highlighted = page.locator(".ssvae-queue-item.ssvae-highlighted")
    _wait_until(lambda: int(highlighted.get_attribute("data-serial")) != serial, 10, "the next")
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))


def test_invalid_hyperparameter_shows_the_spec_error_then_one_epoch_trains_and_refreshes(
    server: tuple[str, Path], page: Any
) -> None:
    _tab(page, "Train")
    rate = page.get_by_label("learning_rate")
    rate.fill("-1")
    rate.press("Enter")
    page.locator(".ssvae-field-error").get_by_text("learning_rate").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "train-invalid.png"))
    rate.fill("0.001")
    rate.press("Enter")
    _wait_until(lambda: page.locator(".ssvae-field-error").count() == 0, 10, "valid values")
    _tab(page, "Label")
    before = page.evaluate(PIXEL_JS, [0])["view"]
    _tab(page, "Train")
    page.get_by_role("button", name="start training").click()
    page.locator(".ssvae-train-status[data-state='finished']").wait_for(timeout=SLOW)
    assert all(n > 0 for n in page.evaluate(LOSS_POINTS_JS))
    page.screenshot(path=str(SCREENSHOTS / "train.png"))
    _tab(page, "Label")
    _wait_until(lambda: page.evaluate(PIXEL_JS, [0])["view"] != before, 60, "the refreshed map")
    page.screenshot(path=str(SCREENSHOTS / "label-trained.png"))


def test_model_page_shows_the_run_the_spec_and_the_counts(
    server: tuple[str, Path], page: Any
) -> None:
    _tab(page, "Model")
    page.locator(".ssvae-runs").wait_for()
    assert page.locator(".ssvae-runs tr").count() == 2  # header and the one run
    page.locator(".ssvae-spec").get_by_text("learning_rate").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)


def test_a_class_the_data_lacks_is_added_on_the_label_page_and_labels_the_point(
    server: tuple[str, Path], page: Any
) -> None:
    _, artifacts = server
    _tab(page, "Label")
    detail = page.locator(".ssvae-detail")
    before = detail.get_attribute("data-serial") if detail.count() else None
    point = page.evaluate(PIXEL_JS, [700])
    page.mouse.click(point["x"], point["y"])
    _wait_until(lambda: detail.count() and detail.get_attribute("data-serial") != before, 30,
                "the clicked point's detail")  # fmt: skip
    serial = int(detail.get_attribute("data-serial"))
    box = page.get_by_placeholder("a class the data lacks")
    box.fill("Glitch")
    page.get_by_role("button", name="add new class").click()
    _wait_until(lambda: _labels(artifacts).get(serial) == "Glitch", 30, "the label in the file")
    _wait_until(lambda: page.evaluate(LABEL_JS, [serial]) == 10, 30, "the point in class 10")
    page.locator(".ssvae-counters").get_by_text("Glitch: 1").wait_for()
    page.get_by_role("button", name="Glitch").wait_for()
    classes = artifacts / "models" / MODEL_ID / "labels.csv.classes.json"
    assert classes.read_text().count('"Glitch"') == 1
    page.screenshot(path=str(SCREENSHOTS / "label-new-class.png"))
    labels = (artifacts / "models" / MODEL_ID / "labels.csv").read_bytes()
    box.fill("7")  # a class already: refused, and nothing is written
    page.get_by_role("button", name="add new class").click()
    page.locator(".ssvae-error").get_by_text("already exists").wait_for()
    assert (artifacts / "models" / MODEL_ID / "labels.csv").read_bytes() == labels


def _pool_truth(artifacts: Path) -> tuple[Any, Any, Any]:
    """The class map as the workspace caches it (serials, positions) and each serial's true
    class, read by the real services."""
    opened = open_workspace(artifacts / "models" / MODEL_ID, artifacts)
    pool = opened.app.workspace_service().pool(opened.workspace)
    layout = opened.app.map_service().positions(opened.workspace)
    assert pool.y is not None
    truth = dict(zip(pool.serials.tolist(), pool.y.tolist(), strict=True))
    return layout.serials, layout.positions, np.array([truth[s] for s in layout.serials.tolist()])


def test_the_class_map_of_a_trained_model_lets_a_lasso_take_one_class(
    server: tuple[str, Path], page: Any
) -> None:
    _, artifacts = server
    # A model worth mapping: 20 true labels a class (written as `ssvae label` would, beside
    # the server), then a few epochs from the Train page.
    serials, _, classes = _pool_truth(artifacts)
    opened = open_workspace(artifacts / "models" / MODEL_ID, artifacts)
    for digit in range(10):
        chosen = serials[classes == digit][:LABELS_PER_CLASS]
        opened.app.label_service().set(chosen.tolist(), str(digit), "test")
    total = len(_labels(artifacts))
    history = artifacts / "models" / MODEL_ID / "history.csv"
    runs = len(history.read_text().splitlines())
    _tab(page, "Train")
    epochs = page.get_by_label("epochs", exact=True)
    epochs.fill("5")
    epochs.press("Enter")
    page.get_by_role("button", name="start training").click()
    _wait_until(lambda: len(history.read_text().splitlines()) > runs, SLOW / 1000, "the run")
    _tab(page, "Label")
    # The new round's board (its counters) drawn on the class map, with no note left.
    page.locator(".ssvae-counters").get_by_text(f"total: {total}").first.wait_for(timeout=SLOW)
    page.locator(".ssvae-map-caption").get_by_text("class map").wait_for(timeout=SLOW)
    assert page.get_by_label("map", exact=True).input_value() == "class map"
    assert page.locator(".ssvae-layout-note").inner_text().strip() == ""
    page.screenshot(path=str(SCREENSHOTS / "label-class-map.png"))
    serials, xy, classes = _pool_truth(artifacts)
    assert map_purity(xy, classes) >= 0.8  # the map groups classes
    # A cluster's core: the point whose 60 nearest map neighbours share its class most, and
    # those neighbours, which the lasso goes round (a circle of at least 20 pixels).
    distances = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    nearest = np.argsort(distances, axis=1)[:, :60]
    agreement = (classes[nearest] == classes[:, None]).mean(axis=1)
    core = int(np.argmax(agreement))
    members = xy[nearest[core]]
    screen = np.array(page.evaluate(TO_SCREEN_JS, [members[:, 0].tolist(), members[:, 1].tolist()]))
    centre = screen.mean(axis=0)
    radius = max(20.0, float(np.linalg.norm(screen - centre, axis=1).max()) + 3.0)
    page.get_by_title("Lasso Select").first.click()
    page.mouse.move(centre[0] + radius, centre[1])
    page.mouse.down()
    for step in range(1, 33):
        angle = 2 * math.pi * step / 32
        page.mouse.move(centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
    page.mouse.up()
    group_count = page.locator(".ssvae-group-count")
    group_count.wait_for()  # shown for this lasso (the last group's was hidden)
    count = int(group_count.inner_text())
    assert count >= 10
    target = str(int(classes[core]))
    page.get_by_label("class for the group").select_option(target)
    page.get_by_role("button", name="label group…").click()
    page.locator(".ssvae-confirm-text").get_by_text(
        f"label {count} points as '{target}'"
    ).wait_for()
    page.screenshot(path=str(SCREENSHOTS / "label-class-map-group.png"))
    before = _labels(artifacts)
    page.get_by_role("button", name="confirm").click()
    labelled = _wait_until(
        lambda: [
            s for s, c in _labels(artifacts).items() if c == target and before.get(s) != target
        ],
        30,
        "the group's labels in the file",
    )
    truth = dict(zip(serials.tolist(), classes.tolist(), strict=True))
    same = np.mean([truth[s] == int(target) for s in labelled])
    assert same >= 0.8, f"{same:.2f} of the lasso's {len(labelled)} points are class {target}"
    page.get_by_title("Pan").first.click()
    page.keyboard.press("Control+z")
    _wait_until(lambda: _labels(artifacts) == before, 30, "the group undone")
    # A continuous colour mode says which colour means what: a colour bar beside the map.
    page.get_by_label("colour by").select_option("certainty")
    _wait_until(lambda: page.evaluate(COLOUR_BAR_JS) == "certainty", 30, "the colour bar")
    page.screenshot(path=str(SCREENSHOTS / "label-certainty.png"))
    page.get_by_label("colour by").select_option("user label")
    _wait_until(lambda: page.evaluate(COLOUR_BAR_JS) is None, 30, "no colour bar")
