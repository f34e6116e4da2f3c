"""Dataset inputs as a user gives them to the CLI: folders, vectors, embedding outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssvae.adapters.data.mnist import embedded_data_dir

SSVAE = str(Path(sys.executable).parent / "ssvae")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_data_dir_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    line = _one_error_line(run("data", "describe", "--data-dir", "nowhere", cwd=tmp_path))
    assert "nowhere" in line and "does not exist" in line
    assert not (tmp_path / "nowhere").exists()


def test_data_describe_says_which_files_came_from_where(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(embedded_data_dir() / f"{stem}.gz", mine)
    result = run("data", "describe", "--data-dir", str(mine), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = [line.strip() for line in result.stdout.splitlines() if "files " in line]
    assert files == [
        f"files  train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz from {embedded_data_dir()}",
        f"files  t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from {mine}",
    ]
    as_json = run("data", "describe", "--data-dir", str(mine), "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["sources"] == [line.removeprefix("files  ") for line in files]


def _messages(path: Path, count: int) -> Path:
    rows = ["id,text,label"]
    for i in range(count):
        system = ("sshd", "kernel", "disk")[i % 3]
        rows.append(f"{i},{system} event {i % 7} on host {i % 5}: code {1000 + 31 * i},{system}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_embed_out_under_a_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    _messages(tmp_path / "m.csv", 64)
    (tmp_path / "afile").write_text("keep me")
    line = _one_error_line(
        run("embed", "--input", "m.csv", "--out", "afile/x.parquet", cwd=tmp_path)
    )
    assert "afile is a file, not a folder" in line
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "m.csv"]


# About 30 s of compiling and training: with the benchmarks (`make bench`). The same command
# runs in the default suite in-process with fake models (tests/integration/test_compare_vectors.py).
@pytest.mark.slow
def test_compare_trains_and_tests_on_a_small_vectors_file(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 150)
    x = rng.normal(size=(3, 8))[classes] * 4 + rng.normal(size=(150, 8))
    np.savez(
        tmp_path / "v.npz", x=x.astype(np.float32), y=np.array(["ok", "warn", "error"])[classes]
    )
    result = run(
        "compare", "--vectors", "v.npz", "--models", "text_standard", "--epochs", "1",
        "--num-samples", "100", "--num-labeled", "9", "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "held out" in result.stderr
    (folder,) = (tmp_path / "out").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["data"]["classes"] == ["error", "ok", "warn"]
    assert summary["data"]["test_samples"] == 30 and summary["data"]["input_shape"] == [8]
    (model,) = summary["models"]
    assert model["status"] == "finished" and 0.0 <= model["test_accuracy"]["classifier"] <= 1.0
