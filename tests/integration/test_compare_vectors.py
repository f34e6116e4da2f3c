"""`ssvae compare` on a user's data: vectors (classes from the file's label column), and a
--data-dir that lacks some files.

In-process: the real container, vector source, experiment reader and report writer run; only
the model repository and generator are fakes swapped in through the container. The same
command with real models runs as a subprocess in tests/e2e/test_data_inputs_cli.py (slow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fakes import FakeModelGenerator, FakeModelRepository

import ssvae.application.bootstrap as bootstrap_module
from ssvae.adapters.data.mnist import embedded_data_dir
from ssvae.application.compare import HELD_OUT_FRACTION
from ssvae.entrypoints.cli.main import main

CLASSES = ("error", "ok", "warn")


def write_vectors(path: Path, count: int, width: int = 6, seed: int = 0) -> np.ndarray:
    """A Parquet vectors file (id, vector, label); some rows have no label. Returns labels."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(CLASSES), count)
    vectors = rng.normal(size=(count, width)).astype(np.float32) + classes[:, None]
    labels = [CLASSES[c] if i % 10 else None for i, c in enumerate(classes)]
    table = pa.table(
        {
            "id": pa.array(np.arange(count) * 3, pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), width),
            "label": pa.array(labels, pa.string()),
        }
    )
    pq.write_table(table, path)
    return np.array([label is not None for label in labels])


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> list[FakeModelRepository]:
    repositories: list[FakeModelRepository] = []
    original = bootstrap_module.bootstrap

    def bootstrap(settings: Any = None) -> Any:
        container = original(settings)
        repository = FakeModelRepository([container.training_relay()])
        repositories.append(repository)
        container.model_repository.override(repository)
        container.model_generator.override(FakeModelGenerator())
        return container

    monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)
    return repositories


def compare(tmp_path: Path, *args: str) -> Any:
    small = ["--models", "text_standard", "--epochs", "1", "--num-samples", "40"]
    return CliRunner().invoke(
        main, ["compare", "--out", str(tmp_path / "out"), *small, "--num-labeled", "6", *args]
    )


def summary(tmp_path: Path) -> dict[str, Any]:
    (folder,) = (tmp_path / "out").iterdir()
    return dict(json.loads((folder / "summary.json").read_text()))


def test_compare_reads_vectors_and_holds_out_test_samples(
    tmp_path: Path, fake_models: list[FakeModelRepository]
) -> None:
    labelled = write_vectors(tmp_path / "v.parquet", 120)
    result = compare(tmp_path, "--vectors", str(tmp_path / "v.parquet"))
    assert result.exit_code == 0, result.output
    assert "held out" in result.stderr and "--test-vectors" in result.stderr
    (model,) = [m for r in fake_models for m in r.created]
    assert tuple(model.spec.network.input_shape) == (6,) and model.spec.network.num_classes == len(
        CLASSES
    )
    data = summary(tmp_path)["data"]
    assert data["test_samples"] == round(HELD_OUT_FRACTION * labelled.sum())
    assert data["train_samples"] == 40 and data["labelled_samples"] == 6
    assert data["classes"] == list(CLASSES) and data["dataset"] == "v"


def test_compare_tests_on_the_given_test_vectors(
    tmp_path: Path, fake_models: list[FakeModelRepository]
) -> None:
    write_vectors(tmp_path / "v.parquet", 120)
    write_vectors(tmp_path / "t.parquet", 30, seed=1)
    args = ["--vectors", str(tmp_path / "v.parquet"), "--test-vectors", str(tmp_path / "t.parquet")]
    result = compare(tmp_path, *args)
    assert result.exit_code == 0, result.output
    assert "held out" not in result.stderr
    assert summary(tmp_path)["data"]["test_samples"] == 30  # every row of the test file


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--vectors", "absent.parquet"], "absent.parquet: file not found"),
        (["--test-vectors", "t.parquet"], "--test-vectors goes with --vectors"),
        (["--vectors", "v.parquet", "--test-vectors", "nope.parquet"], "nope.parquet"),
    ],
)
def test_bad_vector_arguments_are_one_line(
    tmp_path: Path,
    fake_models: list[FakeModelRepository],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_vectors(tmp_path / "v.parquet", 60)
    write_vectors(tmp_path / "t.parquet", 20)
    result = compare(tmp_path, *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert not (tmp_path / "out").exists()


def test_compare_says_where_each_file_came_from_when_a_data_dir_lacks_some(
    tmp_path: Path, fake_models: list[FakeModelRepository]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(embedded_data_dir() / f"{stem}.gz", mine)
    result = compare(tmp_path, "--data-dir", str(mine), "--num-test", "30")
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith("data: ")]
    assert said == [
        f"data: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz from {embedded_data_dir()}",
        f"data: t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from {mine}",
    ]
    quiet = compare(tmp_path / "again", "--num-test", "30")  # one source: nothing to say
    assert quiet.exit_code == 0 and "data: " not in quiet.stderr
