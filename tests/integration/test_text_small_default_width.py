"""A small file of messages on the default tfidf width: `init --input` and `compare --input`
narrow the width to what the messages allow and say so in one line, the workspace records the
width it used, and its later commands rebuild that same embedder.

In-process: the real container, text source, workspace files and report writer run; only
the model repository and generator are fakes swapped in through the container. The same
commands with real models (and a query) run as subprocesses in
tests/e2e/test_text_cli_workspace.py (slow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import FakeModelGenerator, InMemoryModelRepository

import ssvae.application.bootstrap as bootstrap_module
from ssvae.adapters.data.mnist import embedded_data_dir
from ssvae.adapters.text.tfidf import DEFAULT_DIM, TfidfEmbedder
from ssvae.application.settings import AppSettings
from ssvae.application.workspace import workspace_settings
from ssvae.entrypoints.cli.main import main

NOTE = "tfidf values, so the vectors have"


def write_messages(path: Path, count: int = 64) -> Path:
    rows = ["id,text,label"]
    for i in range(count):
        system = ("sshd", "kernel", "disk")[i % 3]
        rows.append(f"{i},{system} event {i % 7} on host {i % 5}: code {1000 + 31 * i},{system}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    original = bootstrap_module.bootstrap

    def bootstrap(settings: Any = None) -> Any:
        container = original(settings)
        container.model_repository.override(InMemoryModelRepository([container.training_relay()]))
        container.model_generator.override(FakeModelGenerator())
        return container

    monkeypatch.setattr(bootstrap_module, "bootstrap", bootstrap)


def ssvae(tmp_path: Path, *args: str) -> Any:
    """Run a command in `tmp_path`, which is also its home (the embedding cache goes there)."""
    return CliRunner(env={"HOME": str(tmp_path)}).invoke(main, list(args), catch_exceptions=False)


def notes(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("note: ")]


def test_init_on_a_small_file_narrows_records_and_reopens_the_same_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_models: None
) -> None:
    monkeypatch.chdir(tmp_path)
    write_messages(tmp_path / "m.csv")
    created = ssvae(tmp_path, "init", "--input", "m.csv", "--id", "w", "--cache-dir", "cache")
    assert created.exit_code == 0, created.output
    workspace = tmp_path / "artifacts" / "models" / "w"
    saved = TfidfEmbedder.load(workspace / "embedder" / "tfidf.npz")
    assert 2 <= saved.dimension < DEFAULT_DIM
    metadata = json.loads((workspace / "metadata.json").read_text())
    assert metadata["dataset"]["embedder_dim"] == saved.dimension
    (note,) = notes(created)
    assert NOTE in note and f"have {saved.dimension} instead of {DEFAULT_DIM}" in note

    # Later commands rebuild the embedder the workspace recorded, and stay quiet about it.
    app = bootstrap_module.bootstrap(
        workspace_settings(
            bootstrap_module.bootstrap(AppSettings()).workspace_service().open(workspace)
        )
    )
    info = app.dataset_service().describe()
    assert info.sample_shape == (saved.dimension,) and info.notes == ()
    assert app.data_source().embedder().fingerprint() == saved.fingerprint()
    labelled = ssvae(tmp_path, "label", "--model", "w", "set", "0", "1", "--class", "sshd")
    assert labelled.exit_code == 0, labelled.output
    trained = ssvae(tmp_path, "train", "--model", "w", "--epochs", "1")  # embeds the pool
    assert trained.exit_code == 0, trained.output
    assert not any(notes(r) for r in (labelled, trained))


def test_compare_on_a_small_file_narrows_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_models: None
) -> None:
    monkeypatch.chdir(tmp_path)
    write_messages(tmp_path / "m.csv")
    result = ssvae(
        tmp_path, "compare", "--input", "m.csv", "--models", "text_standard", "--epochs", "1",
        "--num-samples", "40", "--num-labeled", "6", "--out", "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    (width,) = json.loads((folder / "summary.json").read_text())["data"]["input_shape"]
    assert 2 <= width < DEFAULT_DIM
    (note,) = notes(result)
    assert f"have {width} instead of {DEFAULT_DIM}" in note


def test_a_width_the_user_chose_is_kept_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_messages(tmp_path / "m.csv")
    chosen = ssvae(tmp_path, "init", "--input", "m.csv", "--id", "a", "--embedder-dim", "8")
    assert chosen.exit_code == 0 and not notes(chosen), chosen.output
    metadata = json.loads((tmp_path / "artifacts" / "models" / "a" / "metadata.json").read_text())
    assert metadata["dataset"]["embedder_dim"] == 8
    wide = ssvae(tmp_path, "init", "--input", "m.csv", "--id", "b", "--embedder-dim", "256")
    assert wide.exit_code == 1
    (line,) = wide.stderr.splitlines()
    assert line.startswith("error: ") and "--embedder-dim" in line
    assert not (tmp_path / "artifacts" / "models" / "b").exists()


def test_a_large_pool_is_described_without_fitting(tmp_path: Path) -> None:
    from ssvae.adapters.data.text_source import TextDataSource, TextSourceSettings

    source = TextDataSource(
        TextSourceSettings(train_path=write_messages(tmp_path / "m.csv", DEFAULT_DIM + 70))
    )
    info = source.describe()
    assert info.sample_shape == (DEFAULT_DIM,) and info.notes == ()
    assert source._embedder is None  # describing read the file and fitted nothing
    assert np.isfinite(source.load("train").x).all()


# -- init and simulate say where each file came from when a --data-dir lacks some -------------


@pytest.mark.parametrize(
    "command",
    [
        ("init", "--id", "w", "--num-samples", "50"),
        (
            "simulate", "--policies", "random", "--rounds", "0", "--initial-labels", "10",
            "--num-samples", "50", "--num-test", "30", "--epochs-per-round", "1",
        ),
    ],
    ids=["init", "simulate"],
)  # fmt: skip
def test_init_and_simulate_say_where_each_file_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_models: None, command: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(embedded_data_dir() / f"{stem}.gz", mine)
    result = ssvae(tmp_path, *command, "--data-dir", str(mine))
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith("data: ")]
    assert said == [
        f"data: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz from {embedded_data_dir()}",
        f"data: t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from {mine}",
    ]
    quiet = ssvae(tmp_path / "again", *command) if command[0] == "simulate" else None
    if quiet is not None:  # one source: nothing to say
        assert quiet.exit_code == 0 and "data: " not in quiet.stderr


def test_compare_on_a_small_file_fits_the_default_num_samples_and_keeps_a_chosen_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_models: None
) -> None:
    monkeypatch.chdir(tmp_path)
    write_messages(tmp_path / "m.csv")
    common = ("compare", "--input", "m.csv", "--models", "text_standard", "--epochs", "1")
    result = ssvae(tmp_path, *common, "--num-labeled", "6", "--out", "out")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out").iterdir()
    used = json.loads((folder / "summary.json").read_text())["experiment"]["num_samples"]
    assert 6 <= used < 64  # all the labelled messages left after the held-out test part
    fitted = [n for n in notes(result) if "training samples" in n]
    assert fitted == [
        f"note: the data has {used} training samples with a known class, so the comparison "
        f"trains on {used} instead of 5000 (--num-samples chooses)"
    ]
    chosen = CliRunner(env={"HOME": str(tmp_path)}).invoke(
        main, [*common, "--num-samples", "5000", "--out", "out2"]
    )
    assert chosen.exit_code != 0 and not (tmp_path / "out2").exists()
    assert f"use at most {used}" in chosen.output and "Traceback" not in chosen.output


def test_data_describe_prints_the_narrowed_width_note(tmp_path: Path) -> None:
    write_messages(tmp_path / "m.csv")
    text = ssvae(tmp_path, "data", "describe", "--input", str(tmp_path / "m.csv"))
    assert text.exit_code == 0, text.output
    (line,) = [s for s in text.stdout.splitlines() if s.startswith("  note   ")]
    assert NOTE in line and f"instead of {DEFAULT_DIM}" in line
    machine = ssvae(tmp_path, "data", "describe", "--input", str(tmp_path / "m.csv"), "--json")
    assert machine.exit_code == 0, machine.output
    (note,) = json.loads(machine.stdout)["notes"]
    assert line == f"  note   {note}"
