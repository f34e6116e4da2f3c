"""`ssvae label set --new-class` as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssvae.domain.workspace import pool_rows

SSVAE = str(Path(sys.executable).parent / "ssvae")
DIGITS = [str(d) for d in range(10)]
SMALL = ("--set", "hidden_sizes=[32]", "--set", "latent_dim=2")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        [SSVAE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_new_class_labels_exports_and_imports(tmp_path: Path) -> None:
    store = tmp_path / "labels.csv"
    added = run(tmp_path, "label", "--labels", str(store), "set", "3", "5", "--class", "Glitch",
                "--new-class")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        "added class 'Glitch' (11 classes in all)",
        "labelled 2 sample(s) as 'Glitch'; 2 labels in all",
    ]
    classes = json.loads((tmp_path / "labels.csv.classes.json").read_text())["classes"]
    assert classes == [*DIGITS, "Glitch"]
    # Now an ordinary class: no flag needed, and it counts like the others.
    assert run(tmp_path, "label", "--labels", str(store), "set", "9", "--class", "Glitch",
               ).returncode == 0  # fmt: skip
    assert store.read_text().splitlines() == ["Serial,label", "3,Glitch", "5,Glitch", "9,Glitch"]
    shown = run(tmp_path, "label", "--labels", str(store), "show")
    assert "  Glitch: 3" in shown.stdout.splitlines() and shown.stdout.startswith("3 labels")

    exported = tmp_path / "out.parquet"
    assert run(tmp_path, "label", "--labels", str(store), "export", str(exported)).returncode == 0
    assert run(tmp_path, "label", "--labels", str(store), "unset", "3", "5", "9").returncode == 0
    imported = run(tmp_path, "label", "--labels", str(store), "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    assert store.read_text().splitlines() == ["Serial,label", "3,Glitch", "5,Glitch", "9,Glitch"]
    # A store without the class refuses the file, as it refuses any unknown class.
    other = run(tmp_path, "label", "--labels", str(tmp_path / "other.csv"), "import",
                str(exported))  # fmt: skip
    assert other.returncode == 1 and "'Glitch' is not in the vocabulary" in other.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("set", "4", "--class", "", "--new-class"), "a new class needs a name"),
        (("set", "4", "--class", "   ", "--new-class"), "a new class needs a name"),
        (("set", "4", "--class", "7", "--new-class"), "class '7' already exists"),
        (("set", "4", "--class", "Glitch", "--new-class"), "class 'Glitch' already exists"),
        (("set", "60000", "--class", "Other", "--new-class"), "serial 60000"),
        (("set", "4", "--class", "Glich"), "add --new-class to create it"),
    ],
    ids=["empty", "blank", "a-digit", "added-before", "bad-serial", "mistyped"],
)
def test_bad_new_classes_are_one_line_and_leave_the_files(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    store = tmp_path / "labels.csv"
    first = run(tmp_path, "label", "--labels", str(store), "set", "1", "--class", "Glitch",
                "--new-class")  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = _files(tmp_path)
    result = run(tmp_path, "label", "--labels", str(store), *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert _files(tmp_path) == before


# Five real processes, each importing JAX: 45 s. The same growth of a trained model is
# covered in-process by tests/integration/test_train_new_classes.py in the default suite.
@pytest.mark.slow
def test_a_workspace_learns_a_new_class_at_the_next_train(tmp_path: Path) -> None:
    created = run(tmp_path, "init", "--preset", "standard", "--dataset", "mnist", "--id", "grow",
                  "--num-samples", "200", "--json", *SMALL)  # fmt: skip
    assert created.returncode == 0, created.stderr
    model = json.loads(created.stdout)["directory"]
    serials = [str(s) for s in pool_rows(60000, 200, seed=0)[:6]]
    assert run(tmp_path, "label", "--model", model, "set", *serials[:4], "--class", "7",
               ).returncode == 0  # fmt: skip
    assert run(tmp_path, "train", "--model", model, "--epochs", "1").returncode == 0

    added = run(tmp_path, "label", "--model", model, "set", *serials[4:], "--class", "Zed",
                "--new-class")  # fmt: skip
    assert added.returncode == 0, added.stderr
    before = run(tmp_path, "query", "--model", model, "--policy", "margin", "--k", "5", "--json")
    assert before.returncode == 0, before.stderr  # the model knows 10 classes, the labels 11
    assert json.loads(before.stdout)["labels"] == 6

    trained = run(tmp_path, "train", "--model", model, "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    assert "the labels have 11 classes, the saved model 10: a new model" in trained.stdout
    assert "round 2: trained 1 epoch(s) on 6 labels" in trained.stdout
    meta = json.loads((tmp_path / model / "checkpoint" / "meta.json").read_text())
    assert meta["spec"]["num_classes"] == 11
    answer = run(tmp_path, "query", "--model", model, "--policy", "margin", "--k", "50", "--json")
    assert answer.returncode == 0, answer.stderr
    rows = json.loads(answer.stdout)["rows"]
    assert len(rows) == 50 and {r["predicted"] for r in rows} <= {*DIGITS, "Zed"}
