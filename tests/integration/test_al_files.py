"""Workspace files and learning-curve reports on disk (no model involved)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest

from ssvae.adapters.reporting.learning_curves import CSV_COLUMNS, FileLearningCurveWriter
from ssvae.adapters.workspace_files import FileWorkspaceStore, read_history
from ssvae.domain.errors import SpecError
from ssvae.domain.simulation import (
    FINISHED,
    INTERRUPTED,
    RoundResult,
    RunResult,
    SimulationResult,
    SimulationSettings,
)
from ssvae.domain.spec import preset
from ssvae.domain.stopping import StoppingRule
from ssvae.domain.workspace import (
    HISTORY_COLUMNS,
    WorkspaceError,
    WorkspaceExistsError,
    WorkspaceMetadata,
    WorkspaceRound,
)

SPEC = preset("mixture_k10", latent_dim=4)


def _metadata(**changes: object) -> WorkspaceMetadata:
    values: dict[str, object] = dict(
        id="demo",
        preset="mixture_k10",
        dataset={"kind": "idx", "name": "mnist", "directory": None, "classes": None},
        created="2025-01-02T03:04:05",
        pool_size=300,
        pool_seed=1,
        pool_fingerprint="abc",
        subset=True,
    )
    values.update(changes)
    return WorkspaceMetadata(**values)  # type: ignore[arg-type]


def test_a_workspace_round_trips_through_its_files(tmp_path: Path) -> None:
    store = FileWorkspaceStore()
    directory = tmp_path / "models" / "demo"
    store.create(directory, SPEC, _metadata())
    assert sorted(p.name for p in directory.iterdir()) == ["metadata.json", "spec.yaml"]
    spec, metadata = store.read(directory)
    assert spec == SPEC and metadata == _metadata()

    round_ = WorkspaceRound(1, "t1", 12, 3, predictions=(0, 2, 1), tau=((0.25, 0.75),))
    store.record_round(directory, metadata.with_round(round_), {"round": 1, "loss": 1.5})
    store.record_round(
        directory, metadata.with_round(round_).with_round(round_), {"round": 2, "message": "a,b"}
    )
    _, reread = store.read(directory)
    assert reread.rounds == (round_, round_)
    rows = read_history(directory)
    assert [row["round"] for row in rows] == ["1", "2"]
    assert rows[0]["loss"] == "1.5" and rows[0]["kappa"] == "" and rows[1]["message"] == "a,b"
    header = (directory / "history.csv").read_text().splitlines()[0]
    assert header == ",".join(HISTORY_COLUMNS)


def test_a_torn_history_row_stays_apart_from_the_next(tmp_path: Path) -> None:
    store = FileWorkspaceStore()
    directory = tmp_path / "w"
    store.create(directory, SPEC, _metadata())
    store.record_round(directory, _metadata(), {"round": 1})
    with open(directory / "history.csv", "a", encoding="utf-8") as handle:
        handle.write("2,torn")  # a crash in the middle of an append
    store.record_round(directory, _metadata(), {"round": 3})
    assert [row["round"] for row in read_history(directory)] == ["1", "2", "3"]


def test_creating_over_an_existing_folder_is_refused(tmp_path: Path) -> None:
    store = FileWorkspaceStore()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(WorkspaceExistsError, match="already exists"):
        store.create(tmp_path / "taken", SPEC, _metadata())
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "metadata.json").unlink(), "metadata.json is missing"),
        (lambda d: (d / "spec.yaml").unlink(), "spec.yaml is missing"),
        (lambda d: (d / "metadata.json").write_text("{"), "cannot be read"),
        (lambda d: (d / "metadata.json").write_text("[]"), "JSON object"),
        (
            lambda d: (d / "metadata.json").write_text('{"format_version": 1, "id": "x"}'),
            "key 'preset' is missing",
        ),
        (
            lambda d: (d / "metadata.json").write_text('{"format_version": 7}'),
            "format version 7",
        ),
    ],
)
def test_damaged_workspaces_name_the_file(tmp_path: Path, damage: object, message: str) -> None:
    store = FileWorkspaceStore()
    directory = tmp_path / "w"
    store.create(directory, SPEC, _metadata())
    damage(directory)  # type: ignore[operator]
    with pytest.raises(WorkspaceError, match=message):
        store.read(directory)


def test_a_bad_spec_file_names_its_line(tmp_path: Path) -> None:
    store = FileWorkspaceStore()
    store.create(tmp_path / "w", SPEC, _metadata())
    path = tmp_path / "w" / "spec.yaml"
    path.write_text(path.read_text().replace("latent_dim: 4", "latent_dim: -4"))
    with pytest.raises(SpecError, match=r"spec.yaml:\d+"):
        store.read(tmp_path / "w")
    with pytest.raises(WorkspaceError, match="does not exist"):
        store.read(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------
# Learning-curve reports.


def _result() -> SimulationResult:
    settings = SimulationSettings(
        policies=("margin", "random"),
        seeds=(0, 1),
        initial_labels=10,
        rounds=2,
        k=10,
        stopping=StoppingRule(kappa_threshold=0.9),
        command="ssvae simulate --policies margin random",
    )

    def run(policy: str, seed: int, accuracies: list[float], status: str = FINISHED) -> RunResult:
        rounds = tuple(
            RoundResult(
                round=i,
                labels=10 + 10 * i,
                accuracy=a,
                kappa=None if i == 0 else 0.95,
                tau_change=None if i == 0 else math.inf,
                stop_reasons=("predictions stable: kappa",) if i == 2 else (),
                seconds=1.0,
                queried=() if i == 0 else (100 * i, 100 * i + 1),
            )
            for i, a in enumerate(accuracies)
        )
        return RunResult(policy, seed, rounds, status, "" if status == FINISHED else "stopped")

    return SimulationResult(
        settings=settings,
        dataset="mnist",
        class_names=tuple("0123456789"),
        pool_size=500,
        test_size=200,
        spec=SPEC,
        runs=(
            run("margin", 0, [0.5, 0.8, 0.96]),
            run("random", 0, [0.5, 0.6, 0.7]),
            run("margin", 1, [0.4, 0.7, 0.9]),
            run("random", 1, [0.4], INTERRUPTED),
        ),
        started="2025-01-02T03:04:05",
        seconds=12.0,
    )


def test_the_report_files_hold_every_round_and_the_summary(tmp_path: Path) -> None:
    writer = FileLearningCurveWriter(now=lambda: dt.datetime(2025, 1, 2, 3, 4, 5))
    directory = writer.create_run_directory(tmp_path / "experiments")
    assert directory.name == "20250102-030405"
    files = writer.write(_result(), directory)
    assert sorted(p.name for p in files) == sorted(
        ["learning_curves.png", "learning_curves.csv", "learning_curves.json", "REPORT.md"]
    )
    assert (directory / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(directory / "learning_curves.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3 + 3 + 3 + 1
    assert rows[1]["queried"] == "100 101" and rows[1]["kappa"] == "0.95"

    document = json.loads((directory / "learning_curves.json").read_text())
    summaries = {s["policy"]: s for s in document["summaries"]}
    assert summaries["margin"]["aulc"] == pytest.approx([0.765, 0.675])
    assert summaries["random"]["seeds"] == [0]  # the interrupted seed is left out
    assert summaries["margin"]["first_stops"] == {"predictions stable": 30.0}
    assert document["runs"][0]["rounds"][1]["tau_change"] is None  # inf is not JSON
    assert document["settings"]["stopping"]["kappa_threshold"] == 0.9
    assert document["spec"]["latent_dim"] == 4

    report = (directory / "REPORT.md").read_text()
    assert "    ssvae simulate --policies margin random" in report
    assert "| margin | 2 | 0.7200 |" in report
    assert "random, seed 1: interrupted: stopped" in report
    assert "![learning curves](learning_curves.png)" in report
    assert "margin: predictions stable at 30 labels" in report


def test_runs_started_in_the_same_second_get_their_own_folder(tmp_path: Path) -> None:
    writer = FileLearningCurveWriter(now=lambda: dt.datetime(2025, 1, 2, 3, 4, 5))
    names = [writer.create_run_directory(tmp_path).name for _ in range(3)]
    assert names == ["20250102-030405", "20250102-030405-2", "20250102-030405-3"]


HOLDER = """
import sys
from pathlib import Path
from ssvae.adapters.workspace_files import FileTrainingLock
with FileTrainingLock().hold(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_second_process_cannot_train_a_workspace_being_trained(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ssvae.adapters.workspace_files import FileTrainingLock
    from ssvae.domain.errors import ConcurrentWriteError

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    trained: list[str] = []

    def train_round() -> None:
        with FileTrainingLock().hold(tmp_path):
            trained.append("round")

    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConcurrentWriteError, match="another process is training"):
            train_round()
        assert trained == []  # refused before the round could start
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    train_round()  # free again once the other process is done
    assert trained == ["round"] and (tmp_path / ".training.lock").exists()
