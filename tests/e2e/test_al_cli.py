"""The active-learning loop as a user runs it: real `ssvae` processes on a small MNIST subset."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssvae.domain.workspace import pool_rows

SSVAE = str(Path(sys.executable).parent / "ssvae")
# A small network: these tests check the commands, not the accuracy.
SMALL = ("--set", "hidden_sizes=[64]", "--set", "latent_dim=4")


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One persistent compilation cache for the module: later processes skip compiling."""
    return tmp_path_factory.mktemp("jax-cache")


def run(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "JAX_COMPILATION_CACHE_DIR": str(cache)}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


def test_simulate_writes_learning_curves_for_two_policies(tmp_path: Path, jax_cache: Path) -> None:
    result = run(
        tmp_path,
        jax_cache,
        "simulate",
        "--policies", "margin", "random",
        "--seeds", "0",
        "--initial-labels", "10",
        "--rounds", "2",
        "--k", "5",
        "--epochs-per-round", "1",
        "--initial-epochs", "1",
        "--num-samples", "300",
        "--num-test", "200",
        *SMALL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [directory] = (tmp_path / "artifacts" / "experiments").iterdir()
    assert f"report: artifacts/experiments/{directory.name}/REPORT.md" in result.stdout
    assert "margin: AULC" in result.stdout and "random: AULC" in result.stdout
    assert "round 2: 20 labels, test accuracy" in result.stderr
    with open(directory / "learning_curves.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["policy"], r["round"], r["labels"]) for r in rows] == [
        (policy, str(i), str(10 + 5 * i)) for policy in ("margin", "random") for i in range(3)
    ]
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    document = json.loads((directory / "learning_curves.json").read_text())
    assert [s["policy"] for s in document["summaries"]] == ["margin", "random"]
    assert all(0.0 <= s["aulc_mean"] <= 1.0 for s in document["summaries"])
    assert document["settings"]["command"].startswith("ssvae simulate --policies margin random")
    assert (directory / "learning_curves.png").stat().st_size > 1000
    assert "## Area under the learning curve" in (directory / "REPORT.md").read_text()


def test_init_label_train_query(tmp_path: Path, jax_cache: Path) -> None:
    created = run(
        tmp_path, jax_cache, "init", "--preset", "mixture_k10", "--dataset", "mnist",
        "--id", "demo", "--num-samples", "200", "--json", *SMALL,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    model = json.loads(created.stdout)["directory"]
    assert model == "artifacts/models/demo"

    # The pool is a seeded subset of the train split: the first serials of it get labels.
    serials = [str(s) for s in pool_rows(60000, 200, seed=0)[:5]]
    labelled = run(tmp_path, jax_cache, "label", "--model", model, "set", *serials,
                   "--class", "7")  # fmt: skip
    assert labelled.returncode == 0, labelled.stderr
    trained = run(tmp_path, jax_cache, "train", "--model", model, "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    assert "round 1: trained 1 epoch(s) on 5 labels" in trained.stdout

    answer = run(tmp_path, jax_cache, "query", "--model", "demo", "--policy", "margin",
                 "--k", "20", "--json")  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    assert document["trained"] is True and document["labels"] == 5 and document["rounds"] == 1
    rows = document["rows"]
    assert len(rows) == 20 and not set(serials) & {str(r["serial"]) for r in rows}
    assert all(r["predicted"] in [str(d) for d in range(10)] for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert document["stopping"]["stop"] is False
    workspace = tmp_path / model
    assert {"spec.yaml", "metadata.json", "labels.csv", "history.csv", "checkpoint"} <= {
        p.name for p in workspace.iterdir()
    }
