"""Training at scale: one epoch over a synthetic N x 384 pool (benchmarks/synthetic_pool.py)
held in memory or read on the fly from Parquet, and one epoch by 2 local processes on
jax.distributed against 1 process.

Each run is a child process measured by `os.wait4` (its own peak RSS and CPU seconds); the
load average before it is recorded, since the machine may be shared. Sections:

    train        one epoch, pool in memory, then the same epoch from Parquet row groups:
                 samples/s, wall, peak RSS, and whether the parameters are identical
    distributed  one epoch of a smaller pool by 1 process, then by 2 processes on 127.0.0.1
                 (gloo): wall of each and the largest parameter difference

Usage:

    .venv/bin/python benchmarks/scale_train.py train --size 1000000
    .venv/bin/python benchmarks/scale_train.py distributed --size 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks_common import cpu_model
from synthetic_pool import BLOCK, PoolSpec, block_labels, pool, write_pool

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
LABELS = 100


def child(args: list[str]) -> tuple[subprocess.Popen[bytes], float]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, str(HERE), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return process, os.getloadavg()[0]


def finished(process: subprocess.Popen[bytes], load: float, start: float) -> dict[str, Any]:
    assert process.stdout is not None and process.stderr is not None
    output, errors = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"child failed ({code}): {errors.decode(errors='replace')[-2000:]}")
    figures = json.loads(output.decode().strip().splitlines()[-1])
    figures.update(
        wall_s=round(time.perf_counter() - start, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
        peak_rss_gb=round(usage.ru_maxrss / 1e6, 2),  # KiB on Linux
        load_before=round(load, 1),
    )
    print(json.dumps(figures), file=sys.stderr, flush=True)
    return figures


def measured(args: list[str]) -> dict[str, Any]:
    start = time.perf_counter()
    process, load = child(args)
    return finished(process, load, start)


# -- the child: one epoch --------------------------------------------------------------------


def labels_of(spec: PoolSpec) -> Any:
    """The true classes of the first LABELS rows, as a LabelSet."""
    from ssvae.domain.labels import ClassVocabulary, LabelSet

    vocabulary = ClassVocabulary(tuple(str(c) for c in range(spec.clusters)))
    y = block_labels(spec, 0)[:LABELS]
    return LabelSet.from_pairs(vocabulary, [(i, str(int(c))) for i, c in enumerate(y)])


def one_epoch(args: argparse.Namespace) -> None:
    cluster = None
    if args.processes > 1:
        from ssvae.adapters.model.distributed import JaxDistributedRuntime
        from ssvae.domain.distributed import ClusterSettings

        cluster = ClusterSettings(
            args.coordinator, args.processes, args.process_id, init_timeout=120
        )
        JaxDistributedRuntime().start(cluster)
    import jax

    from ssvae.adapters.model.batches import ParquetRows
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
    from ssvae.domain.data import Samples
    from ssvae.domain.spec import preset

    spec = PoolSpec(rows=args.size, seed=args.seed)
    if args.source == "parquet":
        x: Any = ParquetRows(args.path)
        ys = np.concatenate([block_labels(spec, i) for i in range(-(-args.size // BLOCK))])
    else:
        whole = pool(spec)
        x, ys = whole.x, whole.y
    model_spec = preset(args.preset, input_shape=(spec.dim,), num_classes=spec.clusters)
    model = JaxSsvaeModel(model_spec)
    samples = Samples(np.arange(args.size, dtype=np.int64), x, ys)
    start = time.perf_counter()
    report = model.fit(samples, labels_of(spec), epochs=1)
    seconds = time.perf_counter() - start
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(model.state.params)]
    digest = hashlib.blake2b(b"".join(leaf.tobytes() for leaf in leaves), digest_size=8)
    if args.params_out:
        np.savez(args.params_out, *leaves)
    metrics = report.history[-1].metrics
    print(
        json.dumps(
            {
                "source": args.source,
                "processes": args.processes,
                "process_id": args.process_id,
                "samples_per_s": round(metrics["samples_per_second"]),
                "epoch_s": round(metrics["seconds"], 1),
                "fit_s": round(seconds, 1),
                "loss": metrics["loss"],
                "params_digest": digest.hexdigest(),
                "passes": getattr(x, "passes", None),
            }
        ),
        flush=True,
    )


def epoch_args(args: argparse.Namespace, source: str, path: Path | None = None) -> list[str]:
    out = ["_epoch", "--source", source, "--size", str(args.size), "--seed", str(args.seed)]
    out += ["--preset", args.preset]
    return out + (["--path", str(path)] if path else [])


# -- sections ----------------------------------------------------------------------------------


def train_section(args: argparse.Namespace) -> dict[str, Any]:
    path = args.folder / f"pool_{args.size}_s{args.seed}.parquet"
    if not path.exists():
        partial = path.with_suffix(".partial.parquet")
        write_pool(partial, PoolSpec(rows=args.size, seed=args.seed))
        partial.rename(path)
    memory = measured(epoch_args(args, "memory"))
    streamed = measured(epoch_args(args, "parquet", path))
    return {
        "section": "train",
        "rows": args.size,
        "file_gb": round(path.stat().st_size / 1e9, 2),
        "memory": memory,
        "parquet": streamed,
        "identical_parameters": memory["params_digest"] == streamed["params_digest"],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def distributed_section(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="scale-dist-", dir=args.folder))
    one = measured([*epoch_args(args, "memory"), "--params-out", str(folder / "one.npz")])
    coordinator = f"127.0.0.1:{free_port()}"
    start = time.perf_counter()
    launched = []
    for i in range(2):
        process = ["--processes", "2", "--process-id", str(i), "--coordinator", coordinator]
        out = ["--params-out", str(folder / f"two-{i}.npz")]
        launched.append(child([*epoch_args(args, "memory"), *process, *out]))
    twos = [finished(process, load, start) for process, load in launched]
    # The gradient's all-reduce sums in another order than one process does, and Adam turns
    # the last bits of a tiny gradient into a step-sized change, so over hundreds of steps the
    # parameters drift apart by more than one step's rounding: the figures say how far.
    reference = np.load(folder / "one.npz")
    first, second = (np.load(folder / f"two-{i}.npz") for i in range(2))
    keys = reference.files
    entries = sum(reference[k].size for k in keys)
    return {
        "section": "distributed",
        "rows": args.size,
        "one_process": one,
        "two_processes": twos,
        "two_processes_identical": all(np.array_equal(first[k], second[k]) for k in keys),
        "max_abs_parameter_difference": max(
            float(np.abs(first[k] - reference[k]).max()) for k in keys
        ),
        "max_difference_relative_to_leaf_max": max(
            float(np.abs(first[k] - reference[k]).max() / (np.abs(reference[k]).max() + 1e-12))
            for k in keys
        ),
        "fraction_within_rtol_1e-3_atol_1e-4": sum(
            int(np.isclose(first[k], reference[k], rtol=1e-3, atol=1e-4).sum()) for k in keys
        )
        / entries,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sections = parser.add_subparsers(dest="section", required=True)
    for name, default in (("train", 1_000_000), ("distributed", 20_000)):
        section = sections.add_parser(name)
        section.add_argument("--size", type=int, default=default, help="pool rows")
        section.add_argument("--seed", type=int, default=0)
        section.add_argument("--preset", default="text_standard")
        section.add_argument(
            "--folder", type=Path, default=Path(tempfile.gettempdir()) / "ssvae-scale"
        )
    epoch = sections.add_parser("_epoch")  # the child
    epoch.add_argument("--source", choices=("memory", "parquet"), required=True)
    epoch.add_argument("--path", type=Path)
    epoch.add_argument("--size", type=int, required=True)
    epoch.add_argument("--seed", type=int, default=0)
    epoch.add_argument("--preset", default="text_standard")
    epoch.add_argument("--processes", type=int, default=1)
    epoch.add_argument("--process-id", type=int, default=0)
    epoch.add_argument("--coordinator")
    epoch.add_argument("--params-out", type=Path)
    args = parser.parse_args(argv)
    if args.section == "_epoch":
        one_epoch(args)
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    run = {"train": train_section, "distributed": distributed_section}[args.section]
    result = run(args)
    result.update(cpu=cpu_model(), cores=os.cpu_count(), command=" ".join(sys.argv))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
