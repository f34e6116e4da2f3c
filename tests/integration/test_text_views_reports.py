"""`ssvae compare` and `ssvae simulate` reports on a text dataset: message examples per class
and per component in place of image grids (fake models, real report files)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
from fakes import FakeModelGenerator, FakeModelRepository, InMemoryModelRepository
from text_fakes import system_source

from ssvae.adapters.reporting.documents import Table, md_literal, to_html, to_markdown
from ssvae.adapters.reporting.examples import NO_IMAGE_GRIDS
from ssvae.adapters.reporting.learning_curves import FileLearningCurveWriter
from ssvae.adapters.reporting.writer import FileReportWriter
from ssvae.application.compare import CompareService
from ssvae.application.simulate import SimulateService
from ssvae.domain.comparison import Experiment, ModelPlan, TrainingRelay
from ssvae.domain.simulation import SimulationSettings
from ssvae.domain.spec import preset

NOW = dt.datetime(2025, 1, 2, 3, 4, 5)
DISK_MD = r"EXT4-fs error (device sda1002): \<bad block\> at sector 1002"


def test_compare_on_text_lists_messages_per_class_and_component_instead_of_images(
    tmp_path: Path,
) -> None:
    relay = TrainingRelay()
    service = CompareService(
        source=system_source(train=60, test=30),
        repository=FakeModelRepository([relay]),
        generator=FakeModelGenerator(),
        writer=FileReportWriter(now=lambda: NOW),
        relay=relay,
    )
    plans = tuple(ModelPlan(n, preset(n, max_epochs=1, seed=5)) for n in ("standard", "mixture_k5"))
    run = service.run(
        Experiment(models=plans, num_samples=45, num_labeled=6, out=str(tmp_path), dataset="x")
    )
    assert run.result.data_kind == "text"
    evaluation = run.result.outcomes[1].evaluation
    assert evaluation is not None and evaluation.examples is not None
    disk = evaluation.examples.per_class[2]
    assert disk.majority == "disk" and disk.purity == 1.0 and len(disk.examples) == 5
    assert all("EXT4-fs error" in e.text for e in disk.examples)
    assert len(evaluation.examples.per_component) == 5
    names = {path.name for path in (run.directory / "figures").iterdir()}
    assert not any(n.startswith(("reconstructions", "generated")) for n in names)
    markdown = (run.directory / "REPORT.md").read_text()
    assert NO_IMAGE_GRIDS in markdown
    assert "## Message examples of standard" in markdown
    assert "## Message examples of mixture_k5" in markdown
    assert "### Per mixture component" in markdown
    assert markdown.count("### Per mixture component") == 1  # standard has one component
    assert "| disk: 10 (33.3%), 100.0% disk |" in markdown
    assert DISK_MD in markdown  # markup in messages is escaped
    page = (run.directory / "REPORT.html").read_text()
    assert '<td class="literal">EXT4-fs error (device sda1002): &lt;bad block&gt;' in page
    summary = json.loads((run.directory / "summary.json").read_text())
    examples = summary["models"][1]["message_examples"]
    assert examples["per_class"]["disk"]["members"] == 10
    assert [e["text"] for e in examples["per_class"]["disk"]["examples"]] == [
        e.text for e in disk.examples
    ]
    assert set(examples["per_component"]) == {f"component {k}" for k in range(5)}


def test_simulate_on_text_shows_the_messages_of_the_best_run(tmp_path: Path) -> None:
    service = SimulateService(
        system_source(train=60, test=30),
        InMemoryModelRepository(),
        FileLearningCurveWriter(now=lambda: NOW),
        now=lambda: NOW,
    )
    settings = SimulationSettings(
        policies=("margin", "random"),
        seeds=(0,),
        initial_labels=3,
        rounds=2,
        k=3,
        epochs_per_round=1,
        initial_epochs=1,
        num_samples=45,
        num_test=30,
        preset="mixture_k5",
        out=str(tmp_path / "experiments"),
    )
    run = service.run(settings)
    examples = run.result.text_examples
    assert examples is not None
    best = max(run.result.runs, key=lambda r: r.rounds[-1].accuracy)
    assert f"final model of {best.policy} seed 0 (9 labels" in examples.source
    markdown = (run.directory / "REPORT.md").read_text()
    assert "## Message examples of the best run" in markdown
    assert "### Per class" in markdown and "### Per mixture component" in markdown
    curves = json.loads((run.directory / "learning_curves.json").read_text())
    assert curves["message_examples"]["source"] == examples.source


def test_image_data_gets_no_message_section(tmp_path: Path) -> None:
    from fakes import InMemoryDataSource

    from ssvae.domain.labels import ClassVocabulary

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.random((60, 4, 4, 1), dtype=np.float32)
    relay = TrainingRelay()
    service = CompareService(
        source=InMemoryDataSource(ClassVocabulary(("a", "b", "c")), x, y, x[:30], y[:30]),
        repository=FakeModelRepository([relay]),
        generator=FakeModelGenerator(),
        writer=FileReportWriter(now=lambda: NOW),
        relay=relay,
    )
    plan = ModelPlan("standard", preset("standard", max_epochs=1))
    run = service.run(Experiment(models=(plan,), num_samples=30, num_labeled=6, out=str(tmp_path)))
    markdown = (run.directory / "REPORT.md").read_text()
    assert "Message examples" not in markdown and NO_IMAGE_GRIDS not in markdown
    assert "figures/reconstructions.png" in markdown


def test_literal_cells_keep_messages_as_they_are_in_both_documents(tmp_path: Path) -> None:
    message = "user *admin* [root] <init> a_b `x` | y & z\nnext"
    assert md_literal(message) == (r"user \*admin\* \[root\] \<init\> a\_b \`x\` \| y \& z next")
    table = Table(("group", "message"), (("g", message),), literal=(1,))
    markdown = to_markdown([table])
    assert "|---|---|" in markdown  # the message column is left-aligned
    page = to_html([table], "t", tmp_path)
    assert '<td class="literal">user *admin* [root] &lt;init&gt; a_b `x` | y &amp; z' in page
