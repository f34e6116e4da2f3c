"""`ssvae map` as a user runs it: real processes on a tiny MNIST workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ssvae.domain.workspace import pool_rows

SSVAE = str(Path(sys.executable).parent / "ssvae")
SMALL = ("--set", "hidden_sizes=[32]", "--set", "latent_dim=2")
POOL = 120


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "JAX_COMPILATION_CACHE_DIR": str(cwd / "jax-cache")}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny workspace `demo` beside nothing else; tests train it when they need."""
    cwd = tmp_path_factory.mktemp("map")
    created = run(cwd, "init", "--preset", "standard", "--dataset", "mnist", "--id", "demo",
                  "--num-samples", str(POOL), *SMALL)  # fmt: skip
    assert created.returncode == 0, created.stderr
    return cwd


def test_an_untrained_workspace_and_an_unwritable_out_give_one_line(workspace: Path) -> None:
    untrained = run(workspace, "map", "--model", "demo", "--out", "map.parquet")
    assert untrained.returncode != 0
    assert untrained.stderr.strip().count("\n") == 0 and "ssvae train" in untrained.stderr
    assert "Traceback" not in untrained.stderr and not (workspace / "map.parquet").exists()
    # The --out is checked before any work: a folder that is missing is named, none is made.
    bad = run(workspace, "map", "--model", "demo", "--out", "no/such/folder/map.csv")
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0
    assert "is not an existing folder" in bad.stderr and not (workspace / "no").exists()


# Training and a first layout start JAX and openTSNE in fresh processes: about 50 s on 2 shared
# cores (benchmarks/README.md), so this one runs with the slow tests.
@pytest.mark.slow
def test_map_writes_every_pool_sample_and_reads_its_cache_back(workspace: Path) -> None:
    serials = [str(s) for s in pool_rows(60000, POOL, seed=0)[:4]]
    labelled = run(workspace, "label", "--model", "demo", "set", *serials, "--class", "3")
    assert labelled.returncode == 0, labelled.stderr
    trained = run(workspace, "train", "--model", "demo", "--epochs", "1")
    assert trained.returncode == 0, trained.stderr

    written = run(workspace, "map", "--model", "demo", "--out", "map.parquet")
    assert written.returncode == 0, written.stderr
    table = pq.read_table(workspace / "map.parquet")
    assert table.column_names == ["serial", "x", "y"]
    assert sorted(table.column("serial").to_pylist()) == sorted(
        int(s) for s in pool_rows(60000, POOL, seed=0)
    )
    cache = workspace / "artifacts" / "models" / "demo" / "map.npz"
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns

    again = run(workspace, "map", "--model", "demo", "--out", "map.csv")
    assert again.returncode == 0, again.stderr
    assert cache.stat().st_mtime_ns == stamp  # served from the cache, not laid out again
    csv = np.loadtxt(workspace / "map.csv", delimiter=",", skiprows=1)
    assert np.array_equal(csv[:, 0], table.column("serial").to_numpy())
    assert np.array_equal(csv[:, 1], table.column("x").to_numpy())
