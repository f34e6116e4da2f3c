"""Scale figures: a synthetic pool of N x 384 vectors (benchmarks/synthetic_pool.py), and what
each `ssvae` command costs on it: wall time, CPU time and peak memory (RSS).

Each step runs `ssvae` as a child process, measured by `os.wait4` (the child's own peak RSS
and CPU seconds), so the figures are what a user sees from the shell. The machine's load
average is recorded before each step: on a shared machine the wall time grows with it, the
CPU time much less. One section per subcommand:

    query   `ssvae init --vectors`, then `ssvae query --policy P --k K` for each policy
    embed   `ssvae embed` of N Loghub messages with their numbers varied (tfidf), then the
            same run killed with SIGKILL once some chunks are committed, and resumed

Usage:

    .venv/bin/python benchmarks/scale.py query --size 1000000              # 1.5 GB NPZ
    .venv/bin/python benchmarks/scale.py query --size 10000000 --format parquet --policies margin
    .venv/bin/python benchmarks/scale.py embed --size 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks_common import cpu_model
from synthetic_pool import PoolSpec, write_pool

ROOT = Path(__file__).resolve().parents[1]
SSVAE = [sys.executable, "-c", "from ssvae.entrypoints.cli.main import main; main()"]


# -- measuring a command ---------------------------------------------------------------------


def measured(command: list[str], label: str) -> dict[str, Any]:
    """Run `command`; its wall and CPU seconds, peak RSS and exit status."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    figures = {
        "step": label,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1e6, 2),  # ru_maxrss is in KiB on Linux
        "load_before": round(load, 1),
        "exit": process.returncode,
    }
    if process.returncode != 0:
        figures["output_tail"] = output.decode(errors="replace")[-600:]
    print(json.dumps(figures), flush=True)
    return figures


def pool_file(folder: Path, size: int, fmt: str, seed: int) -> Path:
    """The synthetic pool of `size` rows in `fmt`, written once (generated chunk by chunk)."""
    path = folder / f"pool_{size}_s{seed}.{fmt}"
    if not path.exists():
        partial = path.with_suffix(f".partial.{fmt}")
        write_pool(partial, PoolSpec(rows=size, seed=seed))
        partial.rename(path)
    return path


# -- query -----------------------------------------------------------------------------------


def query_section(args: argparse.Namespace) -> dict[str, Any]:
    pool = args.pool or pool_file(args.folder, args.size, args.format, args.seed)
    artifacts = Path(tempfile.mkdtemp(prefix="scale-artifacts-", dir=args.folder))
    steps = [
        measured(
            [
                *SSVAE,
                "init",
                "--vectors",
                str(pool),
                "--preset",
                args.preset,
                "--artifacts",
                str(artifacts),
                "--id",
                "scale",
            ],
            "init",
        )
    ]
    workspace = artifacts / "models" / "scale"
    for policy in args.policies:
        command = [*SSVAE, "query", "--model", str(workspace), "--policy", policy]
        steps.append(measured([*command, "--k", str(args.k)], f"query {policy}"))
    return {
        "section": "query",
        "pool": str(pool),
        "rows": args.size,
        "dim": 384,
        "format": pool.suffix.lstrip("."),
        "file_gb": round(pool.stat().st_size / 1e9, 2),
        "preset": args.preset,
        "k": args.k,
        "steps": steps,
    }


# -- embed -----------------------------------------------------------------------------------


def messages_file(folder: Path, size: int, seed: int) -> Path:
    """`size` Loghub messages drawn with `seed`, every number in them shifted by a random
    amount, so that few texts repeat (the embedders encode a repeated text once): a CSV of
    id, text and system, written once and kept."""
    import csv
    import re

    import numpy as np

    path = folder / f"messages_{size}_s{seed}.csv"
    if path.exists():
        return path
    with (ROOT / "data" / "loghub" / "messages.csv").open(newline="", encoding="utf-8") as f:
        source = [(row["text"], row["system"]) for row in csv.DictReader(f)]
    rng = np.random.default_rng(seed)
    digits = re.compile(r"\d+")
    partial = path.with_suffix(".partial.csv")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "system"])
        for start in range(0, size, 100_000):
            count = min(100_000, size - start)
            picks, shifts = rng.integers(0, len(source), count), rng.integers(0, 10**5, count)
            for i in range(count):
                text, system = source[picks[i]]
                shift = int(shifts[i])
                text = digits.sub(lambda m, k=shift: str((int(m[0]) + k) % 10 ** len(m[0])), text)
                writer.writerow([start + i, text, system])
    partial.rename(path)
    return path


def embed_section(args: argparse.Namespace) -> dict[str, Any]:
    import hashlib
    import signal

    messages = messages_file(args.folder, args.size, args.seed)
    work = Path(tempfile.mkdtemp(prefix="scale-embed-", dir=args.folder))

    def command(out: str, cache: str) -> list[str]:
        return [
            *SSVAE, "embed", "--input", str(messages), "--out", str(work / out),
            "--label-column", "system", "--cache-dir", str(work / cache), "--quiet",
            "--chunk-rows", str(args.chunk_rows),
        ]  # fmt: skip

    whole = measured(command("whole.parquet", "cache-whole"), "embed")
    # The wall time on a shared machine grows with the load; the CPU time much less.
    whole["load_after"] = round(os.getloadavg()[0], 1)
    whole["messages_per_s"] = round(args.size / whole["wall_s"])
    whole["messages_per_cpu_s"] = round(args.size / whole["cpu_s"])
    # The same run killed once `--kill-after` chunks are committed, then run again.
    parts = work / ".killed.parquet.parts"
    killed = subprocess.Popen(command("killed.parquet", "cache-killed"), stderr=subprocess.PIPE)
    started = time.perf_counter()
    while len(list(parts.glob("part-*"))) < args.kill_after and killed.poll() is None:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed_after = time.perf_counter() - started
    committed = len(list(parts.glob("part-*")))
    resumed = measured(command("killed.parquet", "cache-killed"), "embed resumed")
    resumed["load_after"] = round(os.getloadavg()[0], 1)

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    same = digest(work / "whole.parquet") == digest(work / "killed.parquet")
    return {
        "section": "embed",
        "messages": str(messages),
        "rows": args.size,
        "distinct_texts_note": "numbers varied: nearly every text distinct",
        "chunk_rows": args.chunk_rows,
        "steps": [whole, resumed],
        "killed_after_s": round(killed_after, 1),
        "chunks_committed_at_kill": committed,
        "resumed_output_identical": same,
    }


# -- the command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sections = parser.add_subparsers(dest="section", required=True)
    query = sections.add_parser("query", help="ssvae init --vectors, then ssvae query")
    query.add_argument("--size", type=int, default=1_000_000, help="pool rows")
    query.add_argument("--format", choices=("npz", "npy", "parquet"), default="npz")
    query.add_argument("--policies", nargs="+", default=["cold_start", "margin"])
    query.add_argument("--k", type=int, default=100)
    query.add_argument("--preset", default="text_standard")
    query.add_argument("--seed", type=int, default=0)
    query.add_argument(
        "--pool", type=Path, help="an existing pool file of --size rows (default: generate one)"
    )
    query.add_argument(
        "--folder",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ssvae-scale",
        help="where the pool and the workspace go (the pool is kept for the next run)",
    )
    embed = sections.add_parser("embed", help="ssvae embed of Loghub messages, killed, resumed")
    embed.add_argument("--size", type=int, default=1_000_000, help="messages")
    embed.add_argument("--seed", type=int, default=0)
    embed.add_argument("--chunk-rows", type=int, default=65_536)
    embed.add_argument("--kill-after", type=int, default=3, help="chunks committed, then kill")
    embed.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "ssvae-scale")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    sections_run = {"query": query_section, "embed": embed_section}
    result = sections_run[args.section](args)
    result["cpu"] = cpu_model()
    result["cores"] = os.cpu_count()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
