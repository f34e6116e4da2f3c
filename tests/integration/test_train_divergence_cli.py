"""`ssvae train` and `ssvae compare` in-process with the real JAX model: a run that blows up
exits non-zero with one line and saves nothing. Only the data source is a fake (small
images, so the model compiles and trains in seconds)."""

from __future__ import annotations

import json
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
SMALL = ("--set", "hidden_sizes=[8]", "--set", "latent_dim=2", "--set", "enumerate_top_k=2")
BLOW_UP = ("--set", "learning_rate=1.0", "--set", "grad_clip_norm=0")


@pytest.fixture(autouse=True)
def small_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every container the commands build reads 120 4x4 images of three bright rows."""
    original = bootstrap_module.bootstrap
    rng = np.random.default_rng(0)
    y = np.arange(120, dtype=np.int64) % 3
    x = rng.random((120, 4, 4, 1), dtype=np.float32) * 0.3
    x[np.arange(120), y, :, 0] += 0.7

    def bootstrap(settings: Any = None) -> Any:
        container = original(settings)
        container.data_source.override(InMemoryDataSource(VOCAB, x[:90], y[:90], x[90:], y[90:]))
        return container

    monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def error_lines(result: Any) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_train_that_diverges_exits_non_zero_in_one_line_and_saves_nothing(tmp_path: Path) -> None:
    created = run(
        "init", "--preset", "mixture_k5", "--id", "w", "--num-samples", "60",
        "--artifacts", str(tmp_path), "--json", *SMALL, *BLOW_UP,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    directory = Path(json.loads(created.output)["directory"])
    trained = run("train", "--model", str(directory), "--epochs", "3", "--artifacts", str(tmp_path))
    assert trained.exit_code == 1, trained.output
    [line] = error_lines(trained)
    assert line.startswith("error: training diverged in epoch ")
    assert "grad_clip_norm" in line and "nothing was saved" in line
    assert "Traceback" not in trained.output and "round 1" not in trained.output
    assert not (directory / "checkpoint").exists()
    assert json.loads((directory / "metadata.json").read_text())["rounds"] == []


def test_compare_reports_a_diverged_model_as_failed_and_exits_non_zero(tmp_path: Path) -> None:
    result = run(
        "compare", "--models", "standard", "--num-samples", "60", "--num-labeled", "9",
        "--epochs", "3", "--out", str(tmp_path), *SMALL, *BLOW_UP,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert line.startswith("error: standard failed: training diverged in epoch ")
    [report] = tmp_path.glob("*/REPORT.md")
    assert "standard failed: training diverged" in report.read_text()
    assert not list(tmp_path.glob("*/models/standard/checkpoint"))
