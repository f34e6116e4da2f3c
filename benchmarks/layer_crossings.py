"""How often one dashboard session crosses the package's layers, and how often it climbs.

A scripted session drives the dashboard's view models in-process, as the pages do, on a real
workspace (embedded MNIST, a pool of 300, a tiny `standard` network, the real CSV label store,
workspace files and JAX model): open the workspace, draw its map, label a group of 5, undo,
fill the queue (margin, 5), label its first item, train 1 epoch through the training job,
redraw the map. The model is created before the session; only the session is profiled.

Under `sys.setprofile` (and `threading.setprofile`, for the training thread) every Python call
into a module of the package is attributed to the nearest calling frame that is in the
package too (frames of numpy, JAX, attrs or the threading module in between are looked
through). Each module maps to its layer by name, ranked domain < adapters < application <
entrypoints. Then:

- a crossing is a distinct (calling function, called function) pair whose modules lie in
  different layers; a climbing one calls a layer ranked above the caller's (a callback);
- module pairs counts distinct (calling module, called module) pairs the same way;
- calls counts every such call as it happened (a loop over a pool counts each turn);
- crossings not into the domain leaves out calls of the domain's values and pure functions
  (a LabelSet's `get`, a Workspace's `has_model`), which every layer may use: what is left is
  services, adapters, and callbacks.

Usage:
  .venv/bin/python benchmarks/layer_crossings.py [--root TREE] [--json]

`--root` measures another checkout of the package (a git worktree of an older commit, say):
its domain/, application/, adapters/ and entrypoints/ folders are imported in place of this
one's. Both trees must be run with the same virtual environment.
"""

from __future__ import annotations

import argparse
import collections
import importlib.abc
import importlib.machinery
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

LAYERS = ("domain", "adapters", "application", "entrypoints")  # rank: index
POOL = 300
TINY = {"hidden_sizes": (8,), "latent_dim": 2, "batch_size": 32, "labeled_batch_size": 8}


class TreeFinder(importlib.abc.MetaPathFinder):
    """Imports ssvae.<layer> from `root`/<layer>, ahead of the editable install's mapping."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        parts = fullname.split(".")
        if parts[0] != "ssvae" or len(parts) < 2:
            return None
        if len(parts) == 2:
            if parts[1] not in LAYERS:
                return None
            return importlib.machinery.PathFinder.find_spec(fullname, [str(self.root)])
        return importlib.machinery.PathFinder.find_spec(fullname, path)


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "ssvae" or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


class CallCounter:
    """The profile function: counts calls between the package's functions by layer."""

    def __init__(self) -> None:
        self.edges: collections.Counter[tuple[str, str, str, str]] = collections.Counter()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if layer_of(callee) is None:
            return
        caller_frame = frame.f_back
        while caller_frame is not None:
            caller = caller_frame.f_globals.get("__name__", "")
            if layer_of(caller) is not None:
                key = (caller, caller_frame.f_code.co_qualname, callee, frame.f_code.co_qualname)
                self.edges[key] += 1
                return
            caller_frame = caller_frame.f_back

    def figures(self) -> dict[str, Any]:
        crossing = {
            edge: n for edge, n in self.edges.items() if layer_of(edge[0]) != layer_of(edge[2])
        }
        climbing = {
            edge: n
            for edge, n in crossing.items()
            if layer_of(edge[2]) > layer_of(edge[0])  # type: ignore[operator]
        }
        modules = {(edge[0], edge[2]) for edge in crossing}
        climbing_modules = {(edge[0], edge[2]) for edge in climbing}
        by_layers: collections.Counter[str] = collections.Counter()
        for caller, _, callee, _ in crossing:
            by_layers[f"{LAYERS[layer_of(caller)]} -> {LAYERS[layer_of(callee)]}"] += 1  # type: ignore[index]
        into_domain = sum(1 for edge in crossing if layer_of(edge[2]) == 0)
        return {
            "crossings": len(crossing),
            "crossings_not_into_domain": len(crossing) - into_domain,
            "climbing": len(climbing),
            "module_pairs": len(modules),
            "climbing_module_pairs": len(climbing_modules),
            "calls": sum(crossing.values()),
            "climbing_calls": sum(climbing.values()),
            "by_layers": dict(sorted(by_layers.items())),
            "climbing_edges": sorted(f"{e[0]}.{e[1]} -> {e[2]}.{e[3]}" for e in climbing),
            "edges": sorted(f"{e[0]}.{e[1]} -> {e[2]}.{e[3]} x{n}" for e, n in crossing.items()),
        }


def session(artifacts: Path) -> dict[str, Any]:
    """Create the workspace (not profiled), then run the scripted session under the profiler."""
    import holoviews as hv
    import numpy as np

    from ssvae.application.bootstrap import bootstrap
    from ssvae.application.settings import AppSettings, DataSettings
    from ssvae.entrypoints.dashboard import app as pages

    hv.extension("bokeh", logo=False)
    settings = AppSettings(artifacts_dir=artifacts)
    bootstrap(settings).workspace_service().init(
        "standard", DataSettings(), "session", num_samples=POOL, overrides=TINY
    )

    counter = CallCounter()
    started = time.perf_counter()
    threading.setprofile(counter)
    sys.setprofile(counter)
    try:
        hub = pages.DashboardHub(settings, bootstrap)  # wherever the tree keeps it
        model = hub.open("session")
        app = pages.ModelApp(hub, model)  # every page built: the map drawn
        label = app.label
        group = getattr(label, "group", None)  # the page's group box; older trees: the page
        if group is not None:  # a group drawn on the map, labelled 3, confirmed
            group.show(np.arange(5))
            group.target.value = "3"
            group.ask()
            group.confirm()
        else:
            label._group_drawn(np.arange(5))
            label.group_target.value = "3"
            label._ask_group()
            label._confirm_group()
        label.press("z", True)  # Ctrl+Z
        app.queue.refresh()  # the queue's default policy and size
        app.queue.press("1", False)  # its first item labelled 1
        app.train.epochs.value = "1"
        app.train.start()
        finished = model.job.wait(600)
        app.train.poll()  # the run ended: every page redrawn with the new predictions
        progress = model.job.progress()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    if not finished or progress.state != "finished":
        raise SystemExit(f"the training run did not finish: {progress.state} {progress.message}")
    if len(model.labels().labels()) != 1:  # the group undone, the queue's item kept
        raise SystemExit(f"the session left {model.labels().counts()}, not one label")
    figures = counter.figures()
    figures["session_s"] = round(time.perf_counter() - started, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="the checkout to measure (default: this one)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args()
    root = (args.root or Path(__file__).resolve().parent.parent).resolve()
    sys.meta_path.insert(0, TreeFinder(root))
    import ssvae.domain

    loaded = Path(ssvae.domain.__file__ or "").resolve()
    if root not in loaded.parents:
        raise SystemExit(f"ssvae.domain loaded from {loaded}, not from {root}")
    with tempfile.TemporaryDirectory() as folder:
        figures = session(Path(folder))
    figures["root"] = str(root)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"tree: {root}")
    print(
        f"crossings: {figures['crossings']} (climbing {figures['climbing']}; not into the "
        f"domain {figures['crossings_not_into_domain']}); module pairs: "
        f"{figures['module_pairs']} (climbing {figures['climbing_module_pairs']}); calls: "
        f"{figures['calls']} (climbing {figures['climbing_calls']}); "
        f"session {figures['session_s']} s"
    )
    for pair, count in figures["by_layers"].items():
        print(f"  {pair}: {count}")
    for edge in figures["climbing_edges"]:
        print(f"  climbs: {edge}")


if __name__ == "__main__":
    main()
