"""Dataset inputs as a user gives them to the CLI: folders, vectors, embedding outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
