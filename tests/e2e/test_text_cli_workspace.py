"""Text data as a user runs it: real `ssvae` processes on 400 Loghub messages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference_data import LOGHUB_MESSAGES

from ssvae.adapters.data.text_source import TextDataSource, TextSourceSettings
from ssvae.adapters.data.vectors import VectorDataSource

SSVAE = str(Path(sys.executable).parent / "ssvae")
# Small vectors and a small network: these tests check the commands, not the accuracy.
TEXT = ("--label-column", "system", "--embedder-dim", "16", "--cache-dir", "cache")
SMALL = ("--set", "hidden_sizes=[32]", "--set", "latent_dim=4")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd), "JAX_COMPILATION_CACHE_DIR": str(cwd / "jax-cache")}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    """Every 50th Loghub message: 400, 40 from each system, with the event id as an extra."""
    with LOGHUB_MESSAGES.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::50]
    path = tmp_path / "messages.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "system", "event_id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_init_label_train_and_query_a_text_workspace(tmp_path: Path, messages: Path) -> None:
    created = run(
        tmp_path, "init", "--input", messages.name, *TEXT, "--preset", "text_standard",
        "--id", "logs", *SMALL, "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["pool_size"] == 320  # 80 of 400 held out for the test
    workspace = tmp_path / "artifacts" / "models" / "logs"
    assert (workspace / "embedder" / "tfidf.npz").is_file()
    metadata = json.loads((workspace / "metadata.json").read_text())
    assert metadata["dataset"]["kind"] == "text" and metadata["dataset"]["embedder_dim"] == 16

    settings = TextSourceSettings(train_path=messages, label_column="system")
    pool = TextDataSource(settings).serials("train")  # reads, no vectors
    serials = [str(s) for s in pool[:2]]
    labelled = run(tmp_path, "label", "--model", "logs", "set", *serials, "--class", "HDFS")
    assert labelled.returncode == 0, labelled.stderr

    trained = run(tmp_path, "train", "--model", "logs", "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    assert "round 1: trained 1 epoch(s) on 2 labels" in trained.stdout

    queried = run(tmp_path, "query", "--model", "logs", "--k", "3", "--json")
    assert queried.returncode == 0, queried.stderr
    document = json.loads(queried.stdout)
    assert document["trained"] and document["labels"] == 2 and len(document["rows"]) == 3
    assert {row["predicted"] for row in document["rows"]} <= {
        "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "OpenSSH", "Proxifier",
        "Zookeeper",
    }  # fmt: skip
    with messages.open(newline="", encoding="utf-8") as handle:
        by_id = {int(r["id"]): r["text"] for r in csv.DictReader(handle)}
    assert all(row["text"] == by_id[row["serial"]] for row in document["rows"])
    table = run(tmp_path, "query", "--model", "logs", "--k", "3")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["serial", "score", "predicted", "text"]
    for row, line in zip(document["rows"], lines[1:4], strict=True):
        flat = " ".join(by_id[row["serial"]].split())
        assert line.split()[0] == str(row["serial"]) and flat[:40] in line


def test_embed_writes_vectors_that_read_back_and_come_from_the_cache(
    tmp_path: Path, messages: Path
) -> None:
    first = run(tmp_path, "embed", "--input", messages.name, "--out", "v.parquet", *TEXT)
    assert first.returncode == 0, first.stderr
    assert "wrote 400 vectors of 16 values, 400 labelled to v.parquet" in first.stdout
    assert "embedding" in first.stderr  # the stage lines and the progress bar's label
    vectors = VectorDataSource(tmp_path / "v.parquet")
    info = vectors.describe()
    assert info.sample_shape == (16,) and len(info.vocabulary) == 10
    x = vectors.load("train").x
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1
    again = run(tmp_path, "embed", "--input", messages.name, "--out", "w.parquet", *TEXT)
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(VectorDataSource(tmp_path / "w.parquet").load("train").x, x)
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 1


def test_loghub_event_workspace_and_one_line_errors(tmp_path: Path) -> None:
    created = run(
        tmp_path, "init", "--dataset", "loghub", "--task", "event", "--embedder-dim", "8",
        "--cache-dir", "cache", "--num-samples", "200", "--id", "events", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["preset"] == "text_mixture_k20"
    spec = (tmp_path / "artifacts" / "models" / "events" / "spec.yaml").read_text()
    assert "num_classes: 99 " in spec and "input_shape: [8] " in spec

    (tmp_path / "bad.csv").write_text("id,text\n1,disk full\n1,disk fine\n")
    for args, message in [
        (("init", "--dataset", "text"), "--dataset text needs --input FILE"),
        (("init", "--dataset", "loghub"), "needs a task: --task system or --task event"),
        (("init", "--input", "bad.csv"), "bad.csv: line 3: id 1 repeats line 2"),
        (("embed", "--input", "bad.csv", "--out", "x.parquet"), "line 3: id 1 repeats line 2"),
        (
            ("embed", "--input", "bad.csv", "--out", "x.parquet", "--embedder", "minilm"),
            "--embedder-folder PATH",
        ),
    ]:
        failed = run(tmp_path, *args)
        assert failed.returncode == 1, (args, failed.stdout)
        [line] = failed.stderr.strip().splitlines()
        assert line.startswith("error: ") and message in line, (args, line)
    assert not (tmp_path / "x.parquet").exists()
