"""Background training for the dashboard: one run at a time per model, progress to poll.

The run happens in a worker thread so the page stays responsive and labelling goes on; it
reads the labels when it starts (labels made meanwhile are kept for the next run). The page
polls `progress()`; Stop asks the trainer to end after the current step, as Ctrl-C does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ssvae.domain.errors import SpecError, SsvaeError
from ssvae.domain.model import EpochRecord, TrainingCallback, TrainingReport
from ssvae.domain.spec import ModelSpec
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError

IDLE, RUNNING, STOPPING, FINISHED, FAILED = "idle", "running", "stopping", "finished", "failed"

# The hyperparameters the Train page offers, with the widget kind each needs.
TRAIN_FIELDS: Mapping[str, str] = {
    "learning_rate": "float",
    "batch_size": "int",
    "labeled_batch_size": "int",
    "kl_weight": "float",
    "classification_weight": "float",
    "patience": "int",
    "validation_split": "float",
    "seed": "int",
}


def check_epochs(value: object) -> int:
    """`value` as a number of epochs; DashboardError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DashboardError(f"epochs = {value!r} is invalid: train for at least 1 epoch")
    return value


def field_errors(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, str]:
    """The spec's own error message for each value it rejects, by field name."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        try:
            spec.evolve(**{name: value})
        except SpecError as error:
            errors[name] = str(error)
    return errors


def changed_fields(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from `spec`'s."""
    current = spec.to_fields()
    return {name: value for name, value in values.items() if current[name] != value}


@attrs.frozen
class TrainingProgress:
    """A snapshot of a run for the page: state, where it is, the loss curves and its end."""

    state: str
    run: int  # runs started since the server started (a new number: a new curve)
    epoch: int  # epochs finished in this run
    epochs: int  # epochs asked for
    step: int
    steps: int
    step_losses: tuple[tuple[float, float], ...]  # (fractional epoch, training loss)
    epoch_metrics: tuple[EpochRecord, ...]
    message: str  # the report's message or the error, one line
    finished_runs: int  # runs that ended with a saved model (the map is refreshed after each)
    stopped: bool = False  # ended by a stop request, before the epochs asked for

    @property
    def fraction(self) -> float:
        """How much of the run is done, 0 to 1: a stopped run stays at the epochs it ended,
        the figure its status names."""
        if self.state == FINISHED and not self.stopped:
            return 1.0
        if self.epochs <= 0:
            return 0.0
        if self.stopped:
            return min(self.epoch / self.epochs, 1.0)
        within = self.step / self.steps if self.steps else 0.0
        return min((self.epoch + within) / self.epochs, 1.0)

    def where(self) -> str:
        """One line for the page: where a running run is, where a stopped one stopped, or
        how a run ended."""
        if self.state in (RUNNING, STOPPING):
            where = f"epoch {self.epoch + 1} of {self.epochs}"
            return where + (f", step {self.step} of {self.steps}" if self.steps else "")
        if self.state == FINISHED and self.stopped:
            # The trainer keeps the steps of an unfinished epoch, and the round saves them.
            kept = "the model as trained up to the stop is saved"
            if self.epoch == 0:
                return f"stopped before the first epoch of {self.epochs} ended; {kept}"
            return f"stopped at epoch {self.epoch} of {self.epochs}; {kept}"
        if self.state in (FINISHED, FAILED):
            return self.message
        return ""


class _StopRequested(KeyboardInterrupt):
    """Raised inside the trainer's step callback: the trainer ends the run as after Ctrl-C."""


class TrainingJob:
    """Runs `train(epochs, overrides, listener)` in a thread; a second start while one runs
    is refused with a message."""

    def __init__(
        self, train: Callable[[int, Mapping[str, Any], TrainingCallback], TrainingReport]
    ) -> None:
        self._train = train
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = IDLE
        self._run = 0
        self._finished_runs = 0
        self._epoch = 0
        self._epochs = 0
        self._step = 0
        self._steps = 0
        self._step_losses: list[tuple[float, float]] = []
        self._records: list[EpochRecord] = []
        self._message = ""
        self._stopped = False
        self._epoch_base = 0  # the trainer counts epochs over the model's life

    @property
    def running(self) -> bool:
        with self._lock:
            return self._state in (RUNNING, STOPPING)

    def start(self, epochs: int, overrides: Mapping[str, Any] | None = None) -> None:
        """Start a run of `epochs` epochs; DashboardError if one is running."""
        check_epochs(epochs)
        with self._lock:
            if self._state in (RUNNING, STOPPING):
                raise DashboardError(
                    "a training run is already going on for this model; wait for it or stop it"
                )
            self._state = RUNNING
            self._run += 1
            self._epoch = self._step = self._steps = 0
            self._epochs = epochs
            self._step_losses, self._records = [], []
            self._message = ""
            self._stopped = False
            self._epoch_base = -1
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._work,
                args=(epochs, dict(overrides or {})),
                name=f"ssvae-dashboard-training-{self._run}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> bool:
        """Ask the running run to stop after its current step; False when none runs."""
        with self._lock:
            if self._state != RUNNING:
                return False
            self._state = STOPPING
            self._stop.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to end; True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def progress(self) -> TrainingProgress:
        with self._lock:
            return TrainingProgress(
                state=self._state,
                run=self._run,
                epoch=self._epoch,
                epochs=self._epochs,
                step=self._step,
                steps=self._steps,
                step_losses=tuple(self._step_losses),
                epoch_metrics=tuple(self._records),
                message=self._message,
                finished_runs=self._finished_runs,
                stopped=self._stopped,
            )

    def _work(self, epochs: int, overrides: dict[str, Any]) -> None:
        try:
            report = self._train(epochs, overrides, self)
        except (SsvaeError, Exception) as error:  # shown on the page; the workspace is kept
            with self._lock:
                self._state = FAILED
                self._message = f"training failed: {error}".splitlines()[0]
            return
        with self._lock:
            self._state = FINISHED
            self._finished_runs += 1
            self._stopped = self._stop.is_set() and report.stop_reason == "interrupted"
            stopped = "stopped on request; " if self._stopped else ""
            self._message = stopped + (
                report.message
                or f"{report.epochs_run} epoch(s) in {report.seconds:.1f} s ({report.stop_reason})"
            )

    # TrainingCallback: called from the worker thread.

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        # The step is taken and kept by the stopped run: its loss is drawn before the stop, or
        # a run stopped before its first report would leave the loss chart empty.
        with self._lock:
            if self._epoch_base < 0:
                self._epoch_base = epoch
            self._step, self._steps = step, steps_per_epoch
            position = (epoch - self._epoch_base) + step / max(steps_per_epoch, 1)
            self._step_losses.append((position, float(loss)))
        if self._stop.is_set():
            raise _StopRequested

    def on_epoch_end(self, record: EpochRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._epoch = len(self._records)
            self._step = 0

    def on_train_end(self, report: TrainingReport) -> None:
        """The report arrives through `train`'s return value."""
