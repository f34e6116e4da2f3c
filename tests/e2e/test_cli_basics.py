"""The `ssvae` CLI as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SSVAE = str(Path(sys.executable).parent / "ssvae")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd) if cwd else os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def _commands(group: str = "") -> list[str]:
    import click

    from ssvae.entrypoints.cli.main import main

    names: list[str] = []
    stack: list[tuple[str, click.Command]] = [("", main)]
    while stack:
        prefix, command = stack.pop()
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                stack.append((f"{prefix} {name}".strip(), sub))
        names.append(prefix)
    return sorted(names)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command: str) -> None:
    result = run(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_top_level_help_lists_every_command() -> None:
    from ssvae.entrypoints.cli.main import main

    result = run("--help")
    for name in main.commands:
        assert name in result.stdout


def test_data_describe_loads_the_embedded_mnist(tmp_path: Path) -> None:
    result = run("data", "describe", "--dataset", "mnist", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    splits = {s["split"]: s for s in summary["splits"]}
    assert splits["train"]["samples"] == 60000
    assert splits["test"]["samples"] == 10000
    assert sum(splits["train"]["class_counts"].values()) == 60000
    assert splits["train"]["class_counts"]["1"] == 6742  # the published MNIST class count
    assert 0.0 <= splits["train"]["min"] < splits["train"]["max"] <= 1.0


def test_labels_round_trip_through_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "labels.csv"
    assert run("label", "--labels", str(store), "set", "3", "5", "--class", "7").returncode == 0
    assert run("label", "--labels", str(store), "set", "9", "--class", "1").returncode == 0
    assert store.read_text().splitlines() == ["Serial,label", "3,7", "5,7", "9,1"]
    undo = run("label", "--labels", str(store), "undo")
    assert undo.returncode == 0, undo.stderr
    assert store.read_text().splitlines() == ["Serial,label", "3,7", "5,7"]
    assert undo.stdout.strip() == "undone: serial 9 is unlabelled again"
    assert run("label", "--labels", str(store), "set", "3", "--class", "2").returncode == 0
    undo = run("label", "--labels", str(store), "undo")
    assert undo.stdout.strip() == "undone: serial 3 is '7' again"
    # One `set` of several serials is one batch: undone at once.
    assert (
        run("label", "--labels", str(store), "set", "3", "5", "8", "--class", "4").returncode == 0
    )
    undo = run("label", "--labels", str(store), "undo")
    assert undo.stdout.strip() == "undone: 3 serials"
    assert store.read_text().splitlines() == ["Serial,label", "3,7", "5,7"]


def test_a_label_write_keeps_the_files_permissions(tmp_path: Path) -> None:
    # A label file shared with a group (664) stays shared after a write: the atomic write's
    # temporary file is created 600 and would otherwise replace it with its own mode.
    store = tmp_path / "labels.csv"
    assert run("label", "--labels", str(store), "set", "1", "--class", "2").returncode == 0
    store.chmod(0o664)
    assert run("label", "--labels", str(store), "set", "4", "--class", "3").returncode == 0
    assert store.stat().st_mode & 0o777 == 0o664
    assert store.read_text().splitlines() == ["Serial,label", "1,2", "4,3"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("set", "3", "--class", "eleven"), "eleven"),
        (("set", "60000", "--class", "1"), "60000"),
        (("set", "999999999999999999999999999999", "--class", "1"), "9999999999"),
        (("set", "9" * 5000, "--class", "1"), "5000 digits"),
        (("unset", "12x"), "'12x' is not a serial"),
    ],
)
def test_bad_label_input_is_one_line_and_leaves_the_file(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    store = tmp_path / "labels.csv"
    assert run("label", "--labels", str(store), "set", "1", "--class", "2").returncode == 0
    before = store.read_bytes()
    result = run("label", "--labels", str(store), *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert store.read_bytes() == before


def test_unknown_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = run("data", "describe", "--dataset", "cifar", cwd=tmp_path)
    assert result.returncode == 1
    assert "cifar" in result.stderr and "mnist" in result.stderr


def test_data_describe_reads_your_own_vectors(tmp_path: Path) -> None:
    import numpy as np

    vectors = np.random.default_rng(0).normal(size=(40, 1536)).astype(np.float32)
    np.save(tmp_path / "embeddings.npy", vectors)
    result = run(
        "data",
        "describe",
        "--vectors",
        str(tmp_path / "embeddings.npy"),
        "--classes",
        "ok,error",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sample_shape"] == [1536]
    assert summary["classes"] == ["ok", "error"]
    assert summary["splits"][0]["samples"] == 40


@pytest.mark.parametrize(
    "args",
    [("set", "1", "--class", "2"), ("unset", "1"), ("undo",), ("show",), ("import", "in.csv")],
)
def test_labels_under_a_file_instead_of_a_folder_is_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "in.csv").write_text("Serial,label\n1,2\n")
    result = run("label", "--labels", "afile/x.csv", *args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "afile is a file, not a folder" in lines[0]
    assert (tmp_path / "afile").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in.csv"]


def test_labels_export_and_import_across_formats(tmp_path: Path) -> None:
    store = tmp_path / "labels.csv"
    assert run("label", "--labels", str(store), "set", "4", "8", "--class", "2").returncode == 0
    exported = tmp_path / "out.parquet"
    assert run("label", "--labels", str(store), "export", str(exported)).returncode == 0
    other = tmp_path / "other.csv"
    result = run("label", "--labels", str(other), "import", str(exported))
    assert result.returncode == 0, result.stderr
    assert other.read_text().splitlines() == ["Serial,label", "4,2", "8,2"]


def test_importing_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "labels.csv"
    assert run("label", "--labels", str(store), "set", "1", "--class", "2").returncode == 0
    before = store.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("Serial,label\n5,3\n6,notaclass\n")
    result = run("label", "--labels", str(store), "import", str(bad))
    assert result.returncode == 1
    assert "notaclass" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert store.read_bytes() == before
    huge = tmp_path / "huge.csv"
    huge.write_text("Serial,label\n5,3\n" + "9" * 5000 + ",3\n")
    result = run("label", "--labels", str(store), "import", str(huge))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "line 3" in result.stderr and "5000 digits" in result.stderr
    assert len(result.stderr) < 300 and store.read_bytes() == before
    wrong_type = tmp_path / "labels.txt"
    wrong_type.write_text("x")
    result = run("label", "--labels", str(store), "import", str(wrong_type))
    assert result.returncode == 1 and ".csv" in result.stderr
