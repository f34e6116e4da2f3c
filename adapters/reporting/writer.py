"""`FileReportWriter`: a comparison's folder with figures, summary.json, REPORT.md and .html.

Layout of `artifacts/comparisons/<YYYYmmdd-HHMMSS[-n]>/`:
- `REPORT.md`, `REPORT.html` (figures embedded), `summary.json`;
- `figures/*.png`;
- `models/<name>/checkpoint/` (saved by the model repository), `history.csv`, `spec.yaml`.
Every file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from ssvae.adapters.files import (
    atomic_write_bytes,
    atomic_write_text,
    create_timestamped_directory,
)
from ssvae.adapters.model.callbacks import CsvHistory
from ssvae.adapters.reporting import figures
from ssvae.adapters.reporting.documents import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from ssvae.adapters.reporting.examples import NO_IMAGE_GRIDS, example_blocks
from ssvae.adapters.reporting.summary import summary_of
from ssvae.adapters.yaml.spec import spec_to_yaml
from ssvae.domain.comparison import (
    FINISHED,
    NOT_RUN,
    ComparisonResult,
    Evaluation,
    ModelOutcome,
    conclusion,
)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


class FileReportWriter:
    """Writes a comparison report into a fresh, uniquely named folder (a ReportWriter)."""

    def __init__(self, now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.now = now

    def create_run_directory(self, root: Path) -> Path:
        """`root/<YYYYmmdd-HHMMSS>`, unique even for runs started in the same second."""
        stamp = self.now().strftime("%Y%m%d-%H%M%S")
        return create_timestamped_directory(root, stamp, "report", "--out")

    def write(self, result: ComparisonResult, directory: Path) -> Sequence[Path]:
        """Every report file of `result` in `directory`; returns their paths."""
        written: list[Path] = []
        for outcome in result.outcomes:
            written += self._model_files(outcome, directory)
        images = self._figures(result, directory)
        written += [directory / path for path, _ in images]
        summary = directory / "summary.json"
        atomic_write_text(
            summary, json.dumps(summary_of(result, directory), indent=2, allow_nan=False) + "\n"
        )
        blocks = report_blocks(result, images)
        title = f"Model comparison on {result.dataset}"
        markdown, page = directory / "REPORT.md", directory / "REPORT.html"
        atomic_write_text(markdown, to_markdown(blocks))
        atomic_write_text(page, to_html(blocks, title, directory))
        return [*written, summary, markdown, page]

    @staticmethod
    def _model_files(outcome: ModelOutcome, directory: Path) -> list[Path]:
        if outcome.status == NOT_RUN:
            return []
        folder = directory / "models" / outcome.name
        spec_path = folder / "spec.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec_path, spec_to_yaml(outcome.plan.spec))
        if not outcome.history:
            return [spec_path]
        history = CsvHistory(folder / "history.csv")
        for record in outcome.history:
            history.on_epoch_end(record)
        return [spec_path, history.path]

    @staticmethod
    def _figures(result: ComparisonResult, directory: Path) -> list[tuple[str, str]]:
        """Draw every figure that has data; (relative path, caption) of each."""
        folder = directory / "figures"
        folder.mkdir(exist_ok=True)
        colors = figures.model_colors([o.name for o in result.outcomes])
        done = result.finished
        made: list[tuple[str, str]] = []

        def save(name: str, png: bytes, caption: str) -> None:
            atomic_write_bytes(folder / name, png)
            made.append((f"figures/{name}", caption))

        if any(o.history for o in result.outcomes):
            save(
                "loss_curves.png",
                figures.loss_curves(result.outcomes, colors),
                "Every loss term per epoch, training (solid) and validation (dashed).",
            )
        if not done:
            return made
        save(
            "latent_space.png",
            figures.latent_space(done, result.class_names),
            "Latent means of test samples in 2-D (PCA when the latent has more than 2 "
            "dimensions), coloured by true class.",
        )
        if figures.is_image_shape(result.input_shape):
            save(
                "reconstructions.png",
                figures.reconstructions(done),
                "Test samples (top row) over each model's reconstructions.",
            )
            for outcome in done:
                if outcome.evaluation is not None and outcome.evaluation.generated is not None:
                    save(
                        f"generated_{outcome.name}.png",
                        figures.generated_samples(outcome, result.class_names),
                        f"{outcome.name}: samples per class (left) and per prior component "
                        "(right), what the model thinks each class looks like.",
                    )
        save(
            "confusion_matrices.png",
            figures.confusion_matrices(done, result.class_names),
            "Confusion matrices of the classifier q(y|x) on the test samples.",
        )
        if any(o.evaluation is not None and len(o.evaluation.component_usage) > 1 for o in done):
            save(
                "component_usage.png",
                figures.component_usage(done, colors),
                "Mixture components: how much the test samples use each, and its mixing weight.",
            )
        return made


# ---------------------------------------------------------------------------------------------
# The report's text.


def _differing_spec_rows(outcomes: Sequence[ModelOutcome]) -> list[tuple[str, ...]]:
    """A row per spec field whose value differs between the models (all fields if one)."""
    if not outcomes:
        return []
    specs = [o.plan.spec for o in outcomes]
    shown = ("prior", "num_components", "latent_dim", "likelihood", "hidden_sizes")
    rows = []
    fields = [s.to_fields() for s in specs]
    for name in specs[0].field_names():
        values = [f[name] for f in fields]
        if name in shown or len({repr(v) for v in values}) > 1:
            rows.append((name, *(str(v) for v in values)))
    return rows


def comparison_table(result: ComparisonResult) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The side-by-side table: one column per model, one row per measure."""
    outcomes = result.outcomes
    header = ("measure", *(o.name for o in outcomes))

    def row(label: str, cell: Callable[[ModelOutcome], str]) -> tuple[str, ...]:
        return (label, *(cell(o) for o in outcomes))

    def evaluated(cell: Callable[[Evaluation], str]) -> Callable[[ModelOutcome], str]:
        return lambda o: cell(o.evaluation) if o.evaluation is not None else "—"

    rows = [
        row("status", lambda o: o.status.replace("_", " ")),
        row("test accuracy, q(y|x)", evaluated(lambda e: _pct(e.accuracy))),
        row("test accuracy, component-label map", evaluated(lambda e: _pct(e.tau_accuracy))),
        row("validation ELBO (nats per sample)", lambda o: _num(o.validation_elbo)),
        row(
            "effective components / K",
            evaluated(lambda e: f"{math.exp(e.usage_entropy):.1f} / {len(e.component_usage)}"),
        ),
        row("usage entropy (nats)", evaluated(lambda e: _num(e.usage_entropy, 2))),
        row("epochs run / max", lambda o: f"{o.epochs_run} / {o.plan.spec.training.max_epochs}"),
        row("stopped by", lambda o: (o.stop_reason or "—").replace("_", " ")),
        row("training time (s)", lambda o: _num(o.seconds, 1) if o.status != NOT_RUN else "—"),
    ]
    rows += _differing_spec_rows(outcomes)
    return header, rows


def _per_class_table(result: ComparisonResult) -> Table:
    done = result.finished
    rows = []
    for c, name in enumerate(result.class_names):
        cells = []
        for outcome in done:
            assert outcome.evaluation is not None
            cells.append(_pct(outcome.evaluation.per_class[c]))
        rows.append((name, str(result.labelled_per_class[c]), *cells))
    return Table(("class", "labelled", *(o.name for o in done)), tuple(rows))


def report_blocks(result: ComparisonResult, images: Sequence[tuple[str, str]]) -> list[Block]:
    """The report as blocks, rendered to Markdown and HTML alike."""
    experiment = result.experiment
    blocks: list[Block] = [Heading(f"Model comparison on {result.dataset}", 1)]
    if result.interrupted:
        names = [o.name for o in result.outcomes if o.status not in (FINISHED, "failed")]
        blocks.append(
            Paragraph(
                "Interrupted (Ctrl-C): results are shown for the models that finished; "
                f"not finished: {', '.join(names)}.",
                emphasis=True,
            )
        )
    blocks.append(
        Paragraph(
            f"Started {result.started}, took {result.seconds:.0f} s. Settings from "
            f"{experiment.source}; seed {experiment.seed}."
        )
    )
    labelled = sum(result.labelled_per_class)
    per_class = ", ".join(
        f"{name}: {n}"
        for name, n in zip(result.class_names, result.labelled_per_class, strict=True)
    )
    blocks += [
        Heading("Data"),
        Paragraph(
            f"{result.train_size:,} training samples ({experiment.sampling} selection) of which "
            f"{labelled} are labelled ({per_class}); {result.test_size:,} test samples. "
            f"Samples of shape {result.input_shape}, {len(result.class_names)} classes."
        ),
    ]
    splits = sorted({o.plan.spec.training.validation_split for o in result.outcomes})
    if any(splits):
        shares = " or ".join(f"{100 * v:.0f}%" for v in splits)
        blocks.append(
            Paragraph(
                f"Each model holds out {shares} of the training samples for validation "
                "(validation ELBO and early stopping), unlabelled ones only: every label trains."
            )
        )
    blocks.append(Heading("Results"))
    header, rows = comparison_table(result)
    blocks.append(Table(header, tuple(rows)))
    blocks += [Heading("Conclusion"), Bullets(conclusion(result))]
    if result.finished:
        blocks += [Heading("Per-class test accuracy of q(y|x)"), _per_class_table(result)]
    blocks.append(Heading("Figures"))
    if result.data_kind == "text":
        blocks.append(Paragraph(NO_IMAGE_GRIDS))
    blocks += [Image(path, caption) for path, caption in images]
    for outcome in result.finished:
        assert outcome.evaluation is not None
        if outcome.evaluation.examples is not None:
            blocks += example_blocks(
                outcome.evaluation.examples, f"Message examples of {outcome.name}"
            )
    files = []
    for outcome in result.outcomes:
        if outcome.status == NOT_RUN:
            continue
        parts = [f"models/{outcome.name}/spec.yaml"]
        if outcome.history:
            parts.append(f"models/{outcome.name}/history.csv")
        if outcome.checkpoint is not None:
            parts.append(f"models/{outcome.name}/checkpoint/")
        files.append(f"{outcome.name}: " + ", ".join(parts))
    blocks += [Heading("Files"), Bullets(("summary.json: every number above", *files))]
    return blocks
