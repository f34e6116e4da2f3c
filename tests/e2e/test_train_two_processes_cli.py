"""Two `ssvae train` processes on one machine (jax.distributed over 127.0.0.1) train one
workspace's round: the same checkpoint and history as one process, written by process 0;
two `ssvae query` processes print (process 0) the query one process prints."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SSVAE = str(Path(sys.executable).parent / "ssvae")
SMALL = ["--set", "hidden_sizes=[16]", "--set", "batch_size=16", "--set", "labeled_batch_size=8"]


def ssvae(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(
        [SSVAE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def history(folder: Path) -> list[dict[str, str]]:
    with (folder / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # three processes start JAX and compile: about a minute on 2 idle cores
def test_two_train_processes_write_the_round_of_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = (rng.normal(size=(150, 6)) * 0.3).astype(np.float32)
    x[np.arange(150), y] += 2.0
    labels = np.where(np.arange(150) < 9, y, -1)  # 9 labels, in the file's label column
    np.savez(tmp_path / "pool.npz", x=x, y=y)
    one, two = tmp_path / "one", tmp_path / "two"
    finished(ssvae("init", "--vectors", str(tmp_path / "pool.npz"), "--id", "w",
                   "--artifacts", str(one), *SMALL))  # fmt: skip
    workspace = one / "models" / "w"
    chosen = [f"{i},{c}\n" for i, c in enumerate(labels) if c >= 0]
    (tmp_path / "chosen.csv").write_text("Serial,label\n" + "".join(chosen))
    finished(ssvae("label", "--model", str(workspace), "import", str(tmp_path / "chosen.csv")))
    shutil.copytree(one, two)
    finished(ssvae("train", "--model", str(workspace), "--epochs", "2", "--artifacts", str(one)))

    address = f"127.0.0.1:{free_port()}"
    both = [
        ssvae("train", "--model", str(two / "models" / "w"), "--epochs", "2",
              "--artifacts", str(two), "--coordinator", address, "--num-processes", "2",
              "--process-id", str(i))
        for i in (1, 0)
    ]  # fmt: skip
    second, first = (finished(process) for process in both)

    assert "round 1: trained 2 epoch(s) on 9 labels" in first
    assert "process 1 of 2: trained 2 epoch(s)" in second and "round 1" not in second
    alone, together = history(workspace), history(two / "models" / "w")
    assert len(alone) == len(together) == 1
    for name in ("labels", "epochs_run", "loss", "val_loss"):
        assert together[0][name] == alone[0][name], name
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel

    models = [
        JaxSsvaeModel.restore((f / "models" / "w" / "checkpoint").resolve()) for f in (one, two)
    ]
    import jax

    pairs = zip(*(jax.tree_util.tree_leaves(m.state.params) for m in models), strict=True)
    for got, want in pairs:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert models[0].fingerprint == models[1].fingerprint

    # The next query, scored by both processes (each its part, gathered), printed by process 0.
    query = ["query", "--policy", "margin", "--k", "10", "--json"]
    single = json.loads(finished(ssvae(*query, "--model", str(workspace))))
    address = f"127.0.0.1:{free_port()}"
    both = [
        ssvae(*query, "--model", str(two / "models" / "w"), "--coordinator", address,
              "--num-processes", "2", "--process-id", str(i))
        for i in (1, 0)
    ]  # fmt: skip
    quiet, printed = (finished(process) for process in both)
    assert "{" not in quiet
    shared = json.loads(printed[printed.index("{") :])
    assert [r["serial"] for r in shared["rows"]] == [r["serial"] for r in single["rows"]]
    np.testing.assert_allclose(
        [r["score"] for r in shared["rows"]], [r["score"] for r in single["rows"]], atol=1e-5
    )
