"""`ssvae compare` as a user runs it: a real process, the real model, the embedded MNIST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

SSVAE = str(Path(sys.executable).parent / "ssvae")
SMALL = ["--num-samples", "300", "--num-labeled", "20", "--num-test", "200"]


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SSVAE, "compare", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(cwd),
        timeout=300,
    )


def test_a_small_comparison_writes_every_artifact(tmp_path: Path) -> None:
    result = run("--models", "standard", "mixture_k10", "--epochs", "1", *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "artifacts" / "comparisons").iterdir()
    assert f"report: {Path('artifacts/comparisons') / folder.name / 'REPORT.md'}" in result.stdout
    for name in ("REPORT.md", "REPORT.html", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    figures = {p.name for p in (folder / "figures").glob("*.png")}
    assert figures == {
        "loss_curves.png",
        "latent_space.png",
        "reconstructions.png",
        "generated_standard.png",
        "generated_mixture_k10.png",
        "confusion_matrices.png",
        "component_usage.png",
    }
    for png in (folder / "figures").glob("*.png"):
        with Image.open(png) as image:
            image.load()
            assert image.width > 300 and image.height > 150
    for model in ("standard", "mixture_k10"):
        models = folder / "models" / model
        assert (models / "history.csv").read_text().startswith("epoch,")
        assert "max_epochs: 1" in (models / "spec.yaml").read_text()
        assert any((models / "checkpoint").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert [m["name"] for m in summary["models"]] == ["standard", "mixture_k10"]
    for model in summary["models"]:
        assert model["status"] == "finished" and model["epochs_run"] == 1
        classifier = model["test_accuracy"]["classifier"]
        assert 0.0 <= classifier <= 1.0
        assert all(0.0 <= v <= 1.0 for v in model["per_class_accuracy"].values())
        assert model["spec"]["max_epochs"] == 1
    mixture = summary["models"][1]
    assert 0.0 <= mixture["test_accuracy"]["component_map"] <= 1.0
    assert len(mixture["mixing_weights"]) == 10
    assert sum(mixture["component_usage"]) == pytest.approx(1.0, abs=1e-3)
    assert summary["data"]["train_samples"] == 300
    assert summary["data"]["labelled_samples"] == 20
    html = (folder / "REPORT.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)


# About 40 s of compiling and training: with the benchmarks (`make bench`). The same path runs
# in the default suite in-process with fakes (tests/integration/test_compare_cli_flags.py).
@pytest.mark.slow
def test_ctrl_c_keeps_the_report_and_marks_the_interrupted_model(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [SSVAE, "compare", "--models", "standard", "mixture_k10", "--epochs", "50", *SMALL],
        cwd=tmp_path,
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 240
    seen = []
    # Off a terminal the bar prints one line per epoch: interrupt once an epoch is done.
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if "standard (1/2) epoch 1/50" in line or not line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert "interrupted: partial report written to" in stderr
    (folder,) = (tmp_path / "artifacts" / "comparisons").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert [m["status"] for m in summary["models"]] == ["interrupted", "not_run"]
    assert summary["models"][0]["epochs_run"] >= 1
    assert "Interrupted (Ctrl-C)" in (folder / "REPORT.md").read_text()
    assert (folder / "figures" / "loss_curves.png").exists()


def test_bad_input_says_what_to_fix(tmp_path: Path) -> None:
    unknown = run("--models", "standard", "mixture_k11", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "unknown model 'mixture_k11'" in unknown.stderr
    assert "available presets: standard, mixture_k5, mixture_k10" in unknown.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  - standard\n  - preset: mixture_k10\n    latent_dims: 3\n")
    bad_yaml = run("--config", str(config), cwd=tmp_path)
    assert bad_yaml.returncode == 1
    assert f"{config}:4: unknown model spec key(s) 'latent_dims'" in bad_yaml.stderr
    missing = run("--dataset", "fashion_mnist", cwd=tmp_path)
    assert missing.returncode == 1
    assert "not found in" in missing.stderr and "--download" in missing.stderr
    assert str(tmp_path / ".cache" / "ssvae" / "fashion_mnist") in missing.stderr
    for result in (unknown, bad_yaml, missing):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "artifacts").exists()
