"""The datashaded map in a real browser: it draws, the hover names the point a click then
selects, and a lasso round a cluster labels mostly that cluster's class.

The pool is a few well-separated Gaussian clusters of vectors (their true class is their
cluster), opened with `ssvae dashboard --model`, untrained: even the latent of an untrained
encoder keeps clusters this far apart apart, so the test needs no training run and stays
quick. The class map of a trained model is checked by test_dashboard_browser.py.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_dashboard_browser import (
    SCREENSHOTS,
    SSVAE,
    _free_port,
    _wait_until,
    chromium_page,
    stop_server,
)

# A server of its own costs a JAX start (30-70 s on 2 shared cores): outside the default run.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLUSTERS = 5
PER_CLUSTER = 300
DIM = 16
# Every pixel of the serial image that names a point: (screen x, screen y, serial).
NAMED_PIXELS_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const data = fig.model.renderers.find(
    r => r.data_source.name === 'ssvae-serial-source').data_source.data;
  const image = data['image'][0];
  const [height, width] = image.shape;
  const r = fig.canvas_view.el.getBoundingClientRect();
  const named = [];
  for (let i = 0; i < image.length; i++) {
    if (Number.isNaN(image[i])) continue;
    const x = data['x'][0] + (i % width + 0.5) * data['dw'][0] / width;
    const y = data['y'][0] + (Math.floor(i / width) + 0.5) * data['dh'][0] / height;
    named.push([r.left + fig.frame.x_scale.compute(x), r.top + fig.frame.y_scale.compute(y),
                image[i]]);
  }
  return named;
}"""
TOOLTIP = ".bk-tooltip-row-value"  # the values a Bokeh hover shows
# How many pixels of the pool's colour image are drawn (not transparent).
DRAWN_PIXELS_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const image = fig.model.renderers.find(
    r => r.data_source.name === 'ssvae-latent-source').data_source.data['image'][0];
  return Array.from(image).filter(v => v !== 0).length;
}"""


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, np.ndarray]]:
    """`ssvae dashboard --model` on an untrained workspace of clustered vectors; yields the
    page's address, the workspace and each serial's cluster (serial = row)."""
    folder = tmp_path_factory.mktemp("map-browser")
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(CLUSTERS, DIM)) * 4.0
    truth = np.repeat(np.arange(CLUSTERS), PER_CLUSTER)
    x = (centres[truth] + rng.normal(scale=0.3, size=(len(truth), DIM))).astype(np.float32)
    vectors = folder / "pool.npz"
    np.savez(vectors, x=x, ids=np.arange(len(truth)), y=truth)
    artifacts = folder / "artifacts"
    subprocess.run(
        [SSVAE, "init", "--vectors", str(vectors), "--preset", "text_standard", "--id", "map",
         "--artifacts", str(artifacts)],
        check=True, capture_output=True,
    )  # fmt: skip
    workspace = artifacts / "models" / "map"
    port = _free_port()
    log = folder / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [SSVAE, "dashboard", "--model", str(workspace), "--port", str(port),
             "--artifacts", str(artifacts)],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        _wait_until(lambda: "dashboard ready" in log.read_text(), 180, "the server")
        yield f"http://127.0.0.1:{port}/", workspace, truth
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_page(tmp_path_factory.mktemp("chromium-profile")) as browser_page:
        yield browser_page


def _labels(workspace: Path) -> dict[int, str]:
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, LabelSettings

    app = bootstrap(AppSettings(labels=LabelSettings(path=workspace / "labels.csv")))
    return dict(app.label_service().labels())


def test_the_datashaded_map_draws_the_whole_pool(clusters: Any, page: Any) -> None:
    url, _, truth = clusters
    page.goto(url)
    page.locator(".ssvae-map-caption").get_by_text(str(len(truth))).wait_for(timeout=120_000)
    _wait_until(lambda: page.evaluate(DRAWN_PIXELS_JS) > 0, 30, "the pool's image")
    named = page.evaluate(NAMED_PIXELS_JS)
    # Every point is named by some pixel, unless another point shares its pixel.
    assert len({int(s) for _, _, s in named}) >= 0.5 * len(truth)
    page.screenshot(path=str(SCREENSHOTS / "map-clusters.png"))


def test_the_hover_names_the_point_the_click_then_selects(clusters: Any, page: Any) -> None:
    named = page.evaluate(NAMED_PIXELS_JS)
    by_serial: dict[int, list[tuple[float, float]]] = {}
    for x, y, serial in named:
        by_serial.setdefault(int(serial), []).append((x, y))
    checked = 0
    for serial in sorted(by_serial, key=lambda s: -len(by_serial[s]))[:3]:
        # Two pixels from the point's own pixel (the middle of the pixels naming it): the
        # pointer need not sit exactly on the point.
        pixels = np.array(by_serial[serial])
        off = np.abs(np.linalg.norm(pixels - pixels.mean(axis=0), axis=1) - 2.0)
        x, y = pixels[np.argmin(off)]
        page.mouse.move(x - 20, y - 20)
        page.mouse.move(x, y, steps=4)
        _wait_until(lambda s=serial: str(s) in page.locator(TOOLTIP).all_inner_texts(), 10,
                    f"the hover naming {serial}")  # fmt: skip
        # Two clicks a few pixels and under 300 ms apart are a double tap, not two taps.
        page.wait_for_timeout(400)
        page.mouse.click(x, y)
        page.locator(f".ssvae-detail[data-serial='{serial}']").wait_for(timeout=30_000)
        checked += 1
    assert checked == 3


def test_a_lasso_round_a_cluster_labels_mostly_its_class(clusters: Any, page: Any) -> None:
    _, workspace, truth = clusters
    named = np.array(page.evaluate(NAMED_PIXELS_JS))
    classes = truth[named[:, 2].astype(np.int64)]
    # The tightest cluster on screen, and a circle holding its inner half.
    spreads = [np.median(np.linalg.norm(named[classes == c, :2] - np.median(
        named[classes == c, :2], axis=0), axis=1)) for c in range(CLUSTERS)]  # fmt: skip
    target = int(np.argmin(spreads))
    centre = np.median(named[classes == target, :2], axis=0)
    radius = max(12.0, float(spreads[target]))
    page.get_by_title("Lasso Select").first.click()
    page.mouse.move(centre[0] + radius, centre[1])
    page.mouse.down()
    for step in range(1, 33):
        angle = 2 * math.pi * step / 32
        page.mouse.move(centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
    page.mouse.up()
    count = int(page.locator(".ssvae-group-count").inner_text())
    assert count >= 10
    name = str(target)
    page.get_by_label("class for the group").select_option(name)
    page.get_by_role("button", name="label group…").click()
    page.get_by_role("button", name="confirm").click()
    labels = _wait_until(lambda: _labels(workspace), 30, "the group's labels in the file")
    assert len(labels) == count and set(labels.values()) == {name}
    same = np.mean([truth[s] == target for s in labels])
    assert same >= 0.9, f"{same:.2f} of the lasso's {count} points are in cluster {target}"
    page.screenshot(path=str(SCREENSHOTS / "map-clusters-lasso.png"))
