"""`ssvae train` as one of several processes: the flags and their environment variables, and a
coordinator nobody answers at, which stops the process within --init-timeout in one line."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import InMemoryDataSource

import ssvae.application.bootstrap as bootstrap_module
from ssvae.domain.labels import ClassVocabulary
from ssvae.entrypoints.cli.main import main

VOCAB = ClassVocabulary(("a", "b", "c"))


@pytest.fixture(autouse=True)
def small_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    original = bootstrap_module.bootstrap
    rng = np.random.default_rng(0)
    y = np.arange(60, dtype=np.int64) % 3
    x = rng.random((60, 4), dtype=np.float32)

    def bootstrap(settings: Any = None) -> Any:
        container = original(settings)
        container.data_source.override(InMemoryDataSource(VOCAB, x, y, x[:6], y[:6]))
        return container

    monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)


def workspace(tmp_path: Path) -> Path:
    created = CliRunner().invoke(
        main, ["init", "--id", "w", "--artifacts", str(tmp_path), "--json"]
    )
    assert created.exit_code == 0, created.output
    return Path(json.loads(created.output)["directory"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("by", ["flags", "environment"])
def test_an_unreachable_coordinator_stops_train_within_the_timeout(tmp_path: Path, by: str) -> None:
    directory = workspace(tmp_path)
    before = sorted(p.name for p in directory.iterdir())
    address = f"127.0.0.1:{free_port()}"
    given = {"coordinator": address, "num-processes": "2", "process-id": "1", "init-timeout": "1"}
    args = ["train", "--model", str(directory), "--epochs", "1", "--artifacts", str(tmp_path)]
    env = {}
    if by == "flags":
        args += [part for name, value in given.items() for part in (f"--{name}", value)]
    else:
        env = {f"SSVAE_{name.replace('-', '_').upper()}": value for name, value in given.items()}
    started = time.monotonic()
    result = CliRunner().invoke(main, args, env=env)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"error: cannot reach the coordinator at {address} within 1 s")
    assert sorted(p.name for p in directory.iterdir()) == before


def test_an_incomplete_hand_start_is_refused_before_anything_runs(tmp_path: Path) -> None:
    directory = workspace(tmp_path)
    result = CliRunner().invoke(
        main,
        ["train", "--model", str(directory), "--epochs", "1", "--artifacts", str(tmp_path),
         "--coordinator", "127.0.0.1:5000", "--num-processes", "2"],
    )  # fmt: skip
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert "without --process-id" in line
