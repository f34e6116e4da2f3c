"""Checkpoint save and load: orbax (format 2, what a save writes) against npz + JSON (format 1,
still read), on the default models, times and sizes on disk.

Each model is built untrained (training does not change the arrays' sizes); each format is
saved and restored `--repeats` times and the median is reported. Format 1 is written as it
was (`save_npz_v1`); both are restored through `JaxSsvaeModel.restore`. Usage:

    .venv/bin/python benchmarks/checkpoint_speed.py [--presets mixture_k10 text_standard]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from benchmarks_common import cpu_model

from ssvae.adapters.model import checkpoint
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.spec import preset


def save_npz_v1(model: JaxSsvaeModel, directory: Path) -> None:
    """The model as format 1 saved it: an uncompressed npz of every leaf and meta.json, each
    flushed to disk in a staging directory that is then renamed into place."""
    tree = (model.state.params, model.state.opt_state)
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(tree))]
    arrays = {f"leaf_{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays["prng_key"] = np.asarray(jax.device_get(model.state.key))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    meta = {
        "format_version": 1,
        "spec": checkpoint.spec_to_json(model.spec),
        "step": 0,
        "epoch": 0,
        "num_leaves": len(leaves),
    }
    staging = Path(tempfile.mkdtemp(dir=directory.parent))
    for name, data in (
        (checkpoint.ARRAYS, buffer.getvalue()),
        (checkpoint.META, json.dumps(meta, indent=1).encode()),
    ):
        with open(staging / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(staging, directory)


def folder_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(model: JaxSsvaeModel, root: Path, repeats: int) -> dict[str, Any]:
    parameters = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(model.state.params))
    out: dict[str, Any] = {"parameters": parameters}
    writers = {"npz_v1": save_npz_v1, "orbax_v2": lambda m, d: m.save(d)}
    for name, write in writers.items():
        saves, loads = [], []
        for i in range(repeats):
            directory = root / f"{name}-{i}"
            directory.parent.mkdir(parents=True, exist_ok=True)
            saves.append(timed(lambda: write(model, directory)))  # noqa: B023
            loads.append(timed(lambda: JaxSsvaeModel.restore(directory)))  # noqa: B023
        out[name] = {
            "save_s": round(statistics.median(saves), 3),
            "load_s": round(statistics.median(loads), 3),
            "bytes": folder_bytes(root / f"{name}-0"),
            "files": sum(1 for p in (root / f"{name}-0").rglob("*") if p.is_file()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mixture_k10", "text_standard"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    root = Path(tempfile.mkdtemp())
    try:
        for name in args.presets:
            spec = preset(name)
            if name.startswith("text"):
                spec = spec.evolve(input_shape=(384,))
            JaxSsvaeModel(spec).save(root / "warm-up")  # imports and first compilations
            JaxSsvaeModel.restore(root / "warm-up")
            shutil.rmtree(root / "warm-up")
            report[name] = measure(JaxSsvaeModel(spec), root / name, args.repeats)
            print(json.dumps({name: report[name]}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
