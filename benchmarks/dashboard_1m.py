"""The dashboard on a pool of a million vectors, measured in chromium as a person feels it.

Setup (kept in --work, so a rerun skips it): a seeded pool of Gaussian clusters
(benchmarks/synthetic_pool.py, 1,000,000 x 64 by default), `ssvae init --vectors`, 5 true
labels a cluster, one epoch of training, and `ssvae map`, which lays out and caches the class
map in the workspace (the dashboard draws it from that cache).

Figures:
1. Server start: `ssvae dashboard --model DIR` to its "ready" line (it predicts the pool, or
   reads the predictions cached for the round, and builds the pages once).
2. Page ready after the server is up: from the page's request to the Label page drawn with
   the class map of all 1,000,000 points.
3. Key press: a point is clicked, then class keys are pressed; each is timed in the page from
   the keydown to the frame after the point's new label arrived (the label file is written
   before the redraw is sent); the label file is checked after.
4. Lasso: a lasso round the 10,000 points nearest a cluster's centre, then the group's class;
   timed from the confirm click to the frame after the map drew them all as labelled, and the
   label file is checked.
5. The server's peak resident memory (VmHWM of its process).

Usage: .venv/bin/python benchmarks/dashboard_1m.py [--rows 1000000] [--work /tmp/ssvae-1m]
Needs Debian's chromium (make browser).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from benchmarks_common import cpu_model  # noqa: E402
from dashboard_speed import ARGS, CHROMIUM, PRESS_JS, SSVAE, _free_port  # noqa: E402
from synthetic_pool import PoolSpec, write_pool  # noqa: E402

MODEL_ID = "m1"
LASSO_POINTS = 10_000
# The map's figure, its pool size once drawn, and whether it shows the class map.
READY_JS = """() => {
  const fig = (window.Bokeh && Bokeh.index) ?
    Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map') : undefined;
  if (!fig) return [0, ''];
  const layer = fig.model.renderers.find(r => r.data_source.name === 'ssvae-serial-source');
  if (!layer || !layer.data_source.data['image']) return [0, ''];
  return [layer.data_source.tags[0], fig.model.below[0].axis_label];
}"""
# The screen position of the middle pixel among those that name a point.
PIXEL_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const data = fig.model.renderers.find(
    r => r.data_source.name === 'ssvae-serial-source').data_source.data;
  const image = data['image'][0];
  const [height, width] = image.shape;
  const named = [];
  for (let i = 0; i < image.length; i++) if (!Number.isNaN(image[i])) named.push(i);
  const i = named[named.length >> 1];
  const x = data['x'][0] + (i % width + 0.5) * data['dw'][0] / width;
  const y = data['y'][0] + (Math.floor(i / width) + 0.5) * data['dh'][0] / height;
  const r = fig.canvas_view.el.getBoundingClientRect();
  return {x: r.left + fig.frame.x_scale.compute(x), y: r.top + fig.frame.y_scale.compute(y)};
}"""
TO_SCREEN_JS = """([xs, ys]) => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const r = fig.canvas_view.el.getBoundingClientRect();
  return xs.map((x, i) => [r.left + fig.frame.x_scale.compute(x),
                           r.top + fig.frame.y_scale.compute(ys[i])]);
}"""
LABELLED_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const layer = fig.model.renderers.find(r => r.data_source.name === 'ssvae-labelled-source');
  return layer.data_source.data['serial'].length;
}"""


def _run(*args: str) -> float:
    begin = time.perf_counter()
    subprocess.run([SSVAE, *args], check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - begin, 1)


def setup(work: Path, rows: int, dim: int) -> dict[str, Any]:
    """The pool, the workspace, labels, one epoch and the cached map (skipped when done)."""
    artifacts = work / "artifacts"
    directory = artifacts / "models" / MODEL_ID
    figures: dict[str, Any] = {}
    if (directory / "map.npz").is_file():
        return figures
    work.mkdir(parents=True, exist_ok=True)
    vectors = work / "pool.npz"
    spec = PoolSpec(rows=rows, dim=dim, clusters=20, seed=0)
    begin = time.perf_counter()
    write_pool(vectors, spec)
    figures["setup_pool_s"] = round(time.perf_counter() - begin, 1)
    figures["setup_init_s"] = _run(
        "init", "--vectors", str(vectors), "--preset", "text_standard", "--id", MODEL_ID,
        "--artifacts", str(artifacts),
    )  # fmt: skip
    from ssvae.application.bootstrap import open_workspace

    opened = open_workspace(directory, artifacts)
    pool = opened.app.workspace_service().pool(opened.workspace)
    assert pool.y is not None
    labels = opened.app.label_service()
    for code, name in enumerate(labels.vocabulary().names):
        labels.set(pool.serials[pool.y == code][:5].tolist(), name, "bench")
    figures["setup_train_1_epoch_s"] = _run("train", "--model", str(directory), "--epochs", "1")
    figures["setup_map_s"] = _run(
        "map", "--model", str(directory), "--out", str(work / "map.parquet")
    )
    return figures


def _labels(directory: Path) -> dict[int, str]:
    """The label file as the workspace's own label store reads it (its 20 classes)."""
    from ssvae.application.bootstrap import open_workspace

    opened = open_workspace(directory, directory.parent.parent)
    return dict(opened.app.label_service().labels())


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _lasso_polygon(work: Path) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """A circle in map coordinates round the LASSO_POINTS points nearest the median of
    cluster 0's points, as 48 vertices, and the serials inside it."""
    import pandas as pd

    table = pd.read_parquet(work / "map.parquet")
    xy = table[["x", "y"]].to_numpy()
    with np.load(work / "pool.npz") as pool:
        ids, truth = pool["ids"], pool["y"]
    classes = truth[np.searchsorted(ids, table["serial"].to_numpy())]
    centre = np.median(xy[classes == 0], axis=0)
    distance = np.linalg.norm(xy - centre, axis=1)
    radius = float(np.sort(distance)[LASSO_POINTS - 1]) * 1.0005
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    inside = set(table["serial"].to_numpy()[distance <= radius].tolist())
    return centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles), inside


def measure(work: Path, presses: int, out: Path) -> dict[str, Any]:
    """Figures 1 to 5 on the workspace `setup` made."""
    from playwright.sync_api import sync_playwright

    artifacts = work / "artifacts"
    directory = artifacts / "models" / MODEL_ID
    xs, ys, lassoed = _lasso_polygon(work)
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [SSVAE, "dashboard", "--model", str(directory), "--port", str(port),
         "--artifacts", str(artifacts)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    result: dict[str, Any] = {}
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="ssvae-bench-chromium-"),
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(120_000)
            page = context.new_page()
            assert server.stdout is not None
            for line in server.stdout:
                if line.startswith("model "):
                    result["server_map_line"] = line.strip()
                if "dashboard ready" in line:
                    break
            result["server_start_s"] = round(time.perf_counter() - started, 2)
            result["server_rss_at_ready_mb"] = _peak_rss_mb(server.pid)
            begin = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            while not ((drawn := page.evaluate(READY_JS))[0] and drawn[1] == "map 1"):
                if time.perf_counter() - begin > 300:
                    raise RuntimeError(f"the page did not show the class map (got {drawn})")
                time.sleep(0.02)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(0)))")
            result["page_ready_after_server_up_s"] = round(time.perf_counter() - begin, 2)
            result["points_drawn"] = page.evaluate(READY_JS)[0]
            page.screenshot(path=str(out / "dashboard-1m.png"))
            point = page.evaluate(PIXEL_JS)
            page.mouse.click(point["x"], point["y"])
            page.locator(".ssvae-detail").wait_for()
            serial = int(page.locator(".ssvae-detail").get_attribute("data-serial"))
            latencies = [
                page.evaluate(PRESS_JS, [str(p % 10), serial, p % 10]) for p in range(presses)
            ]
            result.update(
                key_to_redraw_ms_median=round(statistics.median(latencies), 1),
                key_to_redraw_ms_p90=round(sorted(latencies)[int(0.9 * len(latencies))], 1),
                key_presses=len(latencies),
                label_file_holds_last_key=_labels(directory).get(serial) == str((presses - 1) % 10),
            )
            print(json.dumps(result), file=sys.stderr, flush=True)  # kept if the lasso fails
            result.update(_lasso(page, directory, xs, ys, lassoed, out))
            context.close()
        result["server_peak_rss_mb"] = _peak_rss_mb(server.pid)
        return result
    finally:
        server.terminate()
        server.wait(timeout=60)


def _lasso(
    page: Any, directory: Path, xs: np.ndarray, ys: np.ndarray, lassoed: set[int], out: Path
) -> dict[str, Any]:
    """Figure 4: the lasso drawn, its group labelled '19', timed to the redraw."""
    screen = page.evaluate(TO_SCREEN_JS, [xs.tolist(), ys.tolist()])
    page.get_by_title("Lasso Select").first.click()
    page.mouse.move(*screen[0])
    page.mouse.down()
    for x, y in screen[1:] + screen[:1]:
        page.mouse.move(x, y)
    begin = time.perf_counter()
    page.mouse.up()
    page.locator(".ssvae-group-count").wait_for()
    selected_s = time.perf_counter() - begin
    count = int(page.locator(".ssvae-group-count").inner_text())
    page.get_by_label("class for the group").select_option("19")
    page.get_by_role("button", name="label group…").click()
    confirm = page.get_by_role("button", name="confirm")
    confirm.wait_for()
    before = page.evaluate(LABELLED_JS)
    begin = time.perf_counter()
    confirm.click()
    page.wait_for_function(f"() => ({LABELLED_JS})() >= {before + count - 1}", polling="raf")
    labelled_s = time.perf_counter() - begin
    page.screenshot(path=str(out / "dashboard-1m-lasso.png"))
    saved = {s for s, c in _labels(directory).items() if c == "19"}
    return {
        "lasso_points": count,
        "lasso_points_expected": len(lassoed),
        "lasso_select_s": round(selected_s, 2),
        "lasso_confirm_to_redraw_s": round(labelled_s, 2),
        "lasso_labels_in_file": len(saved & lassoed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ssvae-1m"))
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "benchmarks")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count()}
    figures["load_before"] = os.getloadavg()[0]
    figures.update(setup(options.work, options.rows, options.dim))
    figures.update(measure(options.work, options.presses, options.out))
    figures["load_after"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))
    (options.out / "dashboard_1m.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
