"""The report writer: unique folders, every file, images that open, JSON and both documents."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssvae.adapters.reporting.documents import Bullets, Heading, Paragraph, Table, to_markdown
from ssvae.adapters.reporting.figures import loss_terms, mosaic
from ssvae.adapters.reporting.projection import pca, to_2d
from ssvae.adapters.reporting.writer import FileReportWriter
from ssvae.domain.comparison import (
    FINISHED,
    INTERRUPTED,
    NOT_RUN,
    ComparisonResult,
    Evaluation,
    Experiment,
    GeneratedSamples,
    ModelOutcome,
    ModelPlan,
)
from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import EpochRecord
from ssvae.domain.spec import preset

CLASSES = ("zero", "one", "two")
SHAPE = (8, 8, 1)


def evaluation(latent_dim: int, k: int, seed: int) -> Evaluation:
    rng = np.random.default_rng(seed)
    classes = np.arange(60) % 3
    confusion = np.array([[18, 1, 1], [2, 16, 2], [0, 3, 17]], np.int64)
    originals = rng.random((5, *SHAPE), dtype=np.float32)
    return Evaluation(
        accuracy=51 / 60,
        tau_accuracy=0.8 if k > 1 else None,
        confusion=confusion,
        component_usage=np.full(k, 1 / k, np.float32),
        latent=(rng.normal(size=(60, latent_dim)) + classes[:, None]).astype(np.float32),
        latent_classes=classes.astype(np.int64),
        originals=originals,
        reconstructions=np.clip(originals + 0.1, 0, 1),
        generated=GeneratedSamples(
            per_class=rng.random((3, 4, *SHAPE), dtype=np.float32),
            per_component=rng.random((k, 3, *SHAPE), dtype=np.float32),
            mixing_weights=np.full(k, 1 / k, np.float32),
        ),
        test_size=60,
    )


def history(epochs: int) -> tuple[EpochRecord, ...]:
    return tuple(
        EpochRecord(
            e,
            {
                "loss": 100 / e,
                "reconstruction": 80 / e,
                "kl": 5 + e,
                "consistency": 0.0,  # switched off: not plotted
                "train_accuracy": 1 - 1 / (e + 1),
                "val_loss": 110 / e,
                "val_elbo": -110 / e,
                "val_accuracy": 0.5,
                "seconds": 1.0,
            },
        )
        for e in range(1, epochs + 1)
    )


def result(interrupted: bool = False) -> ComparisonResult:
    standard = ModelPlan("standard", preset("standard", input_shape=SHAPE, num_classes=3))
    mixture = ModelPlan(
        "mixture_z2", preset("mixture_k5", input_shape=SHAPE, num_classes=3, latent_dim=2)
    )
    vamp = ModelPlan("vamp_k10", preset("vamp_k10", input_shape=SHAPE, num_classes=3))
    outcomes = [
        ModelOutcome(
            standard,
            FINISHED,
            history=history(3),
            stop_reason="max_epochs",
            best_epoch=3,
            seconds=12.0,
            evaluation=evaluation(16, 1, 0),
        ),
        ModelOutcome(
            mixture,
            INTERRUPTED if interrupted else FINISHED,
            message="interrupted (Ctrl-C) after 2 epoch(s)" if interrupted else "",
            history=history(2),
            stop_reason="interrupted" if interrupted else "early_stopping",
            best_epoch=2,
            seconds=8.0,
            evaluation=None if interrupted else evaluation(2, 5, 1),
        ),
    ]
    if interrupted:
        outcomes.append(ModelOutcome(vamp, NOT_RUN))
    return ComparisonResult(
        experiment=Experiment(models=tuple(o.plan for o in outcomes), num_samples=100),
        dataset="toy",
        class_names=CLASSES,
        input_shape=SHAPE,
        train_size=100,
        labelled_per_class=(17, 17, 16),
        test_size=60,
        outcomes=tuple(outcomes),
        seconds=21.5,
        started="2025-03-04T05:06:07",
    )


def fixed_clock() -> dt.datetime:
    return dt.datetime(2025, 3, 4, 5, 6, 7)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One finished comparison, written once for the tests that read it."""
    writer = FileReportWriter(now=fixed_clock)
    directory = writer.create_run_directory(tmp_path_factory.mktemp("report"))
    return directory, list(writer.write(result(), directory))


def test_run_folders_are_unique_within_one_second(tmp_path: Path) -> None:
    writer = FileReportWriter(now=fixed_clock)
    folders = [writer.create_run_directory(tmp_path / "runs") for _ in range(3)]
    assert [f.name for f in folders] == [
        "20250304-050607",
        "20250304-050607-2",
        "20250304-050607-3",
    ]
    assert all(f.is_dir() for f in folders)


def test_an_unwritable_output_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SsvaeError, match=r"cannot create the report folder.*--out"):
        FileReportWriter().create_run_directory(blocker / "runs")


def test_every_report_file_is_written_and_readable(report: tuple[Path, list[Path]]) -> None:
    directory, written = report
    expected = {
        "REPORT.md",
        "REPORT.html",
        "summary.json",
        "figures/loss_curves.png",
        "figures/latent_space.png",
        "figures/reconstructions.png",
        "figures/generated_standard.png",
        "figures/generated_mixture_z2.png",
        "figures/confusion_matrices.png",
        "figures/component_usage.png",
        "models/standard/history.csv",
        "models/standard/spec.yaml",
        "models/mixture_z2/history.csv",
        "models/mixture_z2/spec.yaml",
    }
    assert {p.relative_to(directory).as_posix() for p in written} == expected
    for png in directory.glob("figures/*.png"):
        with Image.open(png) as image:
            image.verify()
            assert image.size[0] > 300 and image.size[1] > 150
    history_lines = (directory / "models/standard/history.csv").read_text().splitlines()
    assert history_lines[0].startswith("epoch,loss,") and len(history_lines) == 4
    assert "latent_dim: 2" in (directory / "models/mixture_z2/spec.yaml").read_text()


def test_summary_holds_every_number(report: tuple[Path, list[Path]]) -> None:
    directory, _ = report
    summary = json.loads((directory / "summary.json").read_text())
    standard, mixture = summary["models"]
    assert standard["spec"]["prior"] == "standard" and mixture["spec"]["latent_dim"] == 2
    assert standard["test_accuracy"] == {"classifier": pytest.approx(0.85), "component_map": None}
    assert mixture["test_accuracy"]["component_map"] == pytest.approx(0.8)
    assert standard["per_class_accuracy"] == {"zero": 0.9, "one": 0.8, "two": 0.85}
    assert standard["elbo"] == {"validation": pytest.approx(-110 / 3), "epoch": 3}
    assert mixture["component_usage"] == pytest.approx([0.2] * 5)
    assert mixture["usage_entropy"] == pytest.approx(math.log(5), rel=1e-5)
    assert mixture["effective_components"] == pytest.approx(5.0, rel=1e-5)
    assert mixture["mixing_weights"] == pytest.approx([0.2] * 5)
    assert standard["training_seconds"] == 12.0
    assert (standard["epochs_run"], mixture["epochs_run"]) == (3, 2)
    assert mixture["stop_reason"] == "early_stopping"
    assert standard["confusion_matrix"][1] == [2, 16, 2]
    assert standard["history"] == "models/standard/history.csv"
    assert summary["data"]["labelled_per_class"] == {"zero": 17, "one": 17, "two": 16}
    assert summary["interrupted"] is False
    assert any("highest test accuracy" in line for line in summary["conclusion"])


def test_documents_embed_the_figures_the_table_and_the_conclusion(
    report: tuple[Path, list[Path]],
) -> None:
    directory, _ = report
    markdown = (directory / "REPORT.md").read_text()
    page = (directory / "REPORT.html").read_text()
    assert "| measure | standard | mixture_z2 |" in markdown
    assert "| test accuracy, q(y\\|x) | 85.0% | 85.0% |" in markdown
    assert "| latent_dim | 16 | 2 |" in markdown  # spec fields that differ are listed
    assert "![" in markdown and "(figures/latent_space.png)" in markdown
    assert "## Conclusion" in markdown
    assert page.count('src="data:image/png;base64,') == len(list(directory.glob("figures/*")))
    assert "<th>mixture_z2</th>" in page and "Conclusion" in page


def test_an_interrupted_comparison_is_marked_and_still_reported(tmp_path: Path) -> None:
    writer = FileReportWriter(now=fixed_clock)
    directory = writer.create_run_directory(tmp_path)
    written = writer.write(result(interrupted=True), directory)
    names = {p.relative_to(directory).as_posix() for p in written}
    assert "models/mixture_z2/history.csv" in names  # the epochs it did finish
    assert not any(n.startswith("models/vamp_k10") for n in names)
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert [m["status"] for m in summary["models"]] == ["finished", "interrupted", "not_run"]
    assert summary["models"][1]["test_accuracy"] is None
    markdown = (directory / "REPORT.md").read_text()
    assert "**Interrupted (Ctrl-C)" in markdown and "mixture_z2, vamp_k10" in markdown
    assert "| status | finished | interrupted | not run |" in markdown


def test_loss_terms_pair_training_with_validation_and_drop_switched_off_terms() -> None:
    outcome = result().outcomes[0]
    panels = loss_terms([outcome])
    assert ("loss", "loss", "val_loss") in panels
    assert ("accuracy", "train_accuracy", "val_accuracy") in panels
    assert ("elbo", None, "val_elbo") in panels
    assert ("kl", "kl", None) in panels
    assert all(p[0] not in ("consistency", "seconds") for p in panels)


def test_pca_matches_closed_forms() -> None:
    rng = np.random.default_rng(0)
    # Points on a line in 3-D: all variance on the first axis, the line's direction.
    t = rng.normal(size=200)
    direction = np.array([2.0, -1.0, 2.0]) / 3.0
    projected, ratios = pca(t[:, None] * direction + 5.0)
    np.testing.assert_allclose(ratios, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(t - t.mean()), atol=1e-9)
    # Independent axes with variances 9, 4, 1: the ratios are 9/14 and 4/14 (up to sampling).
    x = rng.normal(size=(20000, 3)) * [3.0, 2.0, 1.0]
    _, ratios = pca(x)
    np.testing.assert_allclose(ratios, [9 / 14, 4 / 14], atol=0.01)


def test_two_dimensional_latents_are_shown_as_they_are() -> None:
    z = np.array([[1.0, 2.0], [3.0, 4.0]])
    view = to_2d(z)
    np.testing.assert_array_equal(view.points, z)
    assert view.axis_names == ("z1", "z2") and view.explained is None
    assert to_2d(np.ones((3, 5))).axis_names == ("PC 1", "PC 2")


def test_mosaic_tiles_images_with_gaps() -> None:
    images = np.zeros((2, 3, 4, 4, 1), np.float32)
    images[1, 2] = 1.0
    picture = mosaic(images, gap=2)
    assert picture.shape == (2 * 4 + 2, 3 * 4 + 2 * 2)
    assert picture[6:10, 12:16].min() == 1.0 and picture[0:4, 0:4].max() == 0.0
    assert picture[4:6, :].min() == 1.0  # white gap between rows


def test_markdown_escapes_table_pipes() -> None:
    text = to_markdown(
        [Heading("T", 1), Paragraph("p"), Bullets(("a",)), Table(("x", "y|z"), (("1", "2"),))]
    )
    assert "| x | y\\|z |" in text and text.startswith("# T\n\np\n\n- a\n\n")
