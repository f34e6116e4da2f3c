"""Training callbacks: a console progress bar, a CSV history and a loss-curve PNG.

Each implements `ssvae.domain.model.TrainingCallback`. Files are written atomically, so a
crash mid-training leaves the previous complete version.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TextIO

from ssvae.adapters.files import atomic_write_bytes, atomic_write_text
from ssvae.domain.model import EpochRecord, TrainingReport

_SHOWN = ("loss", "train_accuracy", "val_loss", "val_accuracy", "samples_per_second")


class ConsoleProgress:
    """A one-line progress bar with the live loss, then a summary line per epoch."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        done = int(self.width * step / max(steps_per_epoch, 1))
        bar = "=" * done + " " * (self.width - done)
        self.stream.write(f"\repoch {epoch + 1} [{bar}] {step}/{steps_per_epoch} loss {loss:.4g}")
        self.stream.flush()

    def on_epoch_end(self, record: EpochRecord) -> None:
        shown = "  ".join(
            f"{name} {record.metrics[name]:.4g}" for name in _SHOWN if name in record.metrics
        )
        self.stream.write(f"\repoch {record.epoch}: {shown}\n")
        self.stream.flush()

    def on_train_end(self, report: TrainingReport) -> None:
        if report.message:
            self.stream.write(report.message + "\n")
        self.stream.flush()


class CsvHistory:
    """Every epoch's metrics as rows of a CSV file (rewritten atomically each epoch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing per step."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.rows.append({"epoch": float(record.epoch), **record.metrics})
        columns: list[str] = []
        for row in self.rows:
            columns.extend(name for name in row if name not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in row.items()})
        atomic_write_text(self.path, buffer.getvalue())

    def on_train_end(self, report: TrainingReport) -> None:
        """Nothing at the end: every epoch is already written."""


class LossCurvePlot:
    """A PNG of training and validation loss per epoch (matplotlib, Agg backend)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[EpochRecord] = []

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Nothing per step."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.records.append(record)

    def on_train_end(self, report: TrainingReport) -> None:
        if not self.records:
            return
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        epochs = [r.epoch for r in self.records]
        for name in ("loss", "val_loss"):
            if all(name in r.metrics for r in self.records):
                values = [r.metrics[name] for r in self.records]
                axes.plot(epochs, values, marker="o", label=name)
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss")
        axes.legend()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        atomic_write_bytes(self.path, buffer.getvalue())
