"""Dashboard figures on the full MNIST pool, measured as a person would feel them.

1. Page ready: `ssvae dashboard --model DIR` on a 60,000-sample workspace; from the server's
   "ready" line to the Label page drawn in chromium with all 60,000 points (page loads
   repeated; the first includes the browser's start).
2. Key press to label: a point is clicked, then class keys are pressed; each is timed in the
   page from the keydown to the frame after the point's new label arrived (the server saves
   the label file atomically before it sends the redraw). The label file is checked after.
3. Background epoch: one training epoch on a 10,000-sample workspace through the dashboard's
   training job, until the new map (predictions on the pool, projection) and the test
   accuracy are ready; a first run compiles, the second is the one that counts.

Usage: .venv/bin/python benchmarks/dashboard_speed.py [--presses 30] [--out DIR]
Needs Debian's chromium (make browser).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks_common import cpu_model  # noqa: E402

SSVAE = str(Path(sys.executable).parent / "ssvae")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_JS = """() => {
  const fig = (window.Bokeh && Bokeh.index) ?
    Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map') : undefined;
  if (!fig) return 0;
  const layer = fig.model.renderers.find(r => r.data_source.name === 'ssvae-serial-source');
  if (!layer || !layer.data_source.data['image']) return 0;
  return layer.data_source.tags[0];  // the pool's size, once its image is here
}"""
# The screen position of the first drawn pixel of the pool's image.
PIXEL_JS = """() => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const data = fig.model.renderers.find(
    r => r.data_source.name === 'ssvae-serial-source').data_source.data;
  const image = data['image'][0];
  const [height, width] = image.shape;
  const i = Array.from(image).findIndex(v => !Number.isNaN(v));
  const x = data['x'][0] + (i % width + 0.5) * data['dw'][0] / width;
  const y = data['y'][0] + (Math.floor(i / width) + 0.5) * data['dh'][0] / height;
  const r = fig.canvas_view.el.getBoundingClientRect();
  return {x: r.left + fig.frame.x_scale.compute(x), y: r.top + fig.frame.y_scale.compute(y)};
}"""
# Press `key` in the page and resolve with the milliseconds until the frame after the map's
# labelled layer drew `serial` with class `code`.
PRESS_JS = """([key, serial, code]) => new Promise((resolve) => {
  const fig = Bokeh.index.all_views().find(v => v.model.name === 'ssvae-latent-map');
  const layer = fig.model.renderers.find(r => r.data_source.name === 'ssvae-labelled-source');
  const start = performance.now();
  document.dispatchEvent(new KeyboardEvent('keydown', {key: key, bubbles: true}));
  const drawn = () => {
    const data = layer.data_source.data;
    const at = Array.from(data['serial']).indexOf(serial);
    return at >= 0 && data['label'][at] === code;
  };
  const check = () => {
    if (drawn()) {
      requestAnimationFrame(() => resolve(performance.now() - start));
    } else if (performance.now() - start > 10000) {
      resolve(-1);
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _create(artifacts: Path, model_id: str, samples: int | None) -> Path:
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, DataSettings

    app = bootstrap(AppSettings(artifacts_dir=artifacts))
    workspace = app.workspace_service().init(
        "standard", DataSettings(), model_id, num_samples=samples
    )
    return Path(workspace.directory)


def _labels(directory: Path) -> dict[int, str]:
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, LabelSettings

    app = bootstrap(AppSettings(labels=LabelSettings(path=directory / "labels.csv")))
    return dict(app.label_service().labels())


def page_and_keys(artifacts: Path, presses: int, loads: int, out: Path) -> dict[str, Any]:
    """Figures 1 and 2 on a 60,000-sample workspace."""
    from playwright.sync_api import sync_playwright

    directory = _create(artifacts, "bench-60k", None)
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            SSVAE,
            "dashboard",
            "--model",
            str(directory),
            "--port",
            str(port),
            "--artifacts",
            str(artifacts),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with sync_playwright() as playwright:
            # The browser starts while the server maps the pool: its start is not the page's.
            context = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="ssvae-bench-chromium-"),
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1000},
            )
            page = context.new_page()
            assert server.stdout is not None
            mapped = ""
            for line in server.stdout:
                if line.startswith("model "):
                    mapped = line.strip()
                if "dashboard ready" in line:
                    break
            result: dict[str, Any] = {
                "server_start_s": round(time.perf_counter() - started, 2),
                "server_map_line": mapped,
            }
            ready: list[float] = []
            for _ in range(loads):
                begin = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                while (drawn := page.evaluate(READY_JS)) != 60000:
                    if time.perf_counter() - begin > 300:
                        raise RuntimeError(f"the page did not show the pool (got {drawn})")
                    time.sleep(0.02)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(0)))")
                ready.append(time.perf_counter() - begin)
            result["page_ready_after_server_up_s"] = round(ready[0], 2)
            result["page_reload_ready_s"] = [round(t, 2) for t in ready[1:]]
            point = page.evaluate(PIXEL_JS)
            page.mouse.click(point["x"], point["y"])
            page.locator(".ssvae-detail").wait_for()
            serial = int(page.locator(".ssvae-detail").get_attribute("data-serial"))
            latencies = []
            for press in range(presses):
                code = press % 10
                latencies.append(page.evaluate(PRESS_JS, [str(code), serial, code]))
            page.screenshot(path=str(out / "dashboard-60k.png"))
            context.close()
        saved = _labels(directory).get(serial)
        result.update(
            key_to_redraw_ms_median=round(statistics.median(latencies), 1),
            key_to_redraw_ms_p90=round(sorted(latencies)[int(0.9 * len(latencies))], 1),
            key_presses=len(latencies),
            label_file_holds_last_key=saved == str((presses - 1) % 10),
        )
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def background_epoch(artifacts: Path) -> dict[str, Any]:
    """Figure 3: one epoch on 10,000 samples plus the refresh, through the training job."""
    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings
    from ssvae.entrypoints.dashboard.viewmodels.hub import DashboardHub

    _create(artifacts, "bench-10k", 10000)
    hub = DashboardHub(AppSettings(artifacts_dir=artifacts), bootstrap)
    model = hub.open("bench-10k")
    model.pool_map()
    model.board().assign([int(s) for s in model.pool().serials[:100]], "0")
    seconds = []
    for _ in range(2):
        begin = time.perf_counter()
        model.job.start(1)
        model.job.wait()
        seconds.append(time.perf_counter() - begin)
        progress = model.job.progress()
        assert progress.state == "finished", progress.message
    return {
        "epoch_plus_refresh_first_s": round(seconds[0], 2),
        "epoch_plus_refresh_s": round(seconds[1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "benchmarks")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ssvae-dashboard-bench-") as folder:
        artifacts = Path(folder) / "artifacts"
        figures: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count()}
        figures.update(page_and_keys(artifacts, options.presses, options.loads, options.out))
        figures.update(background_epoch(artifacts))
    print(json.dumps(figures, indent=2))
    (options.out / "dashboard_speed.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
