"""Background training runs: one at a time, progress to poll, stop, failures shown."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import EpochRecord, TrainingReport
from ssvae.domain.spec import ModelSpec
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError
from ssvae.entrypoints.dashboard.viewmodels.training import (
    FAILED,
    FINISHED,
    IDLE,
    RUNNING,
    TrainingJob,
    TrainingProgress,
    changed_fields,
    check_epochs,
    field_errors,
)

STEPS = 4


class ScriptedTraining:
    """A train function: STEPS steps per epoch; waits at `gate` before each epoch if set, or
    at `gates[epoch]` before that epoch."""

    def __init__(
        self,
        gate: threading.Event | None = None,
        fail: str | None = None,
        gates: list[threading.Event] | None = None,
    ) -> None:
        self.gate = gate
        self.gates = gates or []
        self.fail = fail
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, epochs: int, overrides: Mapping[str, Any], listener: Any) -> TrainingReport:
        self.calls.append((epochs, dict(overrides)))
        if self.fail:
            raise SsvaeError(self.fail)
        history = []
        reason = "max_epochs"
        try:
            for epoch in range(epochs):
                if self.gate is not None:
                    assert self.gate.wait(10)
                if epoch < len(self.gates):
                    assert self.gates[epoch].wait(10)
                for step in range(1, STEPS + 1):
                    listener.on_step(10 + epoch, step, STEPS, 5.0 / (epoch + step))
                record = EpochRecord(11 + epoch, {"loss": 1.0, "val_loss": 2.0 - epoch})
                history.append(record)
                listener.on_epoch_end(record)
        except KeyboardInterrupt:  # what the real trainer does on Ctrl-C or a stop request
            reason = "interrupted"
        return TrainingReport(len(history), tuple(history), reason, len(history), 0.5)


def test_a_run_reports_its_steps_and_epochs_and_ends_finished() -> None:
    training = ScriptedTraining()
    job = TrainingJob(training)
    assert job.progress().state == IDLE
    job.start(2, {"learning_rate": 0.01})
    assert job.wait(10)
    progress = job.progress()
    assert progress.state == FINISHED
    assert progress.epoch == 2 and progress.fraction == 1.0
    assert progress.finished_runs == 1
    assert [r.metrics["val_loss"] for r in progress.epoch_metrics] == [2.0, 1.0]
    # Positions count epochs of this run from 0, whatever the model's epoch counter says.
    assert progress.step_losses[0] == (0.25, 5.0)
    assert progress.step_losses[-1] == (2.0, 5.0 / 5)
    assert "2 epoch(s)" in progress.message
    assert training.calls == [(2, {"learning_rate": 0.01})]


def test_a_second_start_while_running_is_refused_and_stop_ends_the_run() -> None:
    gate = threading.Event()
    job = TrainingJob(ScriptedTraining(gate))
    job.start(3)
    assert job.running and job.progress().state == RUNNING
    with pytest.raises(DashboardError, match="already going on"):
        job.start(1)
    assert job.stop()
    gate.set()
    assert job.wait(10)
    progress = job.progress()
    assert progress.state == FINISHED
    assert progress.message.startswith("stopped on request")
    assert progress.epoch == 0  # stopped at the first step
    assert not job.stop()  # nothing left to stop
    job.start(1)  # a new run starts with a fresh curve
    assert job.wait(10)
    assert job.progress().run == 2 and len(job.progress().epoch_metrics) == 1


def test_a_crash_shows_its_message_and_the_next_run_may_start() -> None:
    job = TrainingJob(ScriptedTraining(fail="the pool changed\nsecond line"))
    job.start(1)
    assert job.wait(10)
    progress = job.progress()
    assert progress.state == FAILED
    assert progress.message == "training failed: the pool changed"
    assert progress.finished_runs == 0
    job.start(1)
    assert job.wait(10)


def test_epochs_and_hyperparameters_are_checked_with_the_specs_own_messages() -> None:
    spec = ModelSpec()
    assert check_epochs(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(DashboardError, match="at least 1 epoch"):
            check_epochs(bad)
    errors = field_errors(spec, {"learning_rate": -1.0, "batch_size": 64, "patience": "x"})
    assert set(errors) == {"learning_rate", "patience"}
    assert errors["learning_rate"].startswith("model spec field 'learning_rate' = -1.0 is invalid")
    assert changed_fields(spec, {"batch_size": 128, "seed": 3}) == {"seed": 3}
    with pytest.raises(DashboardError, match="at least 1 epoch"):
        TrainingJob(ScriptedTraining()).start(0)


def _stopped_after(epochs_done: int) -> TrainingProgress:
    """A run of 5 epochs, stopped once `epochs_done` epochs have ended: the stop meets the
    first step of the next epoch, as the real trainer's step callback does."""
    gates = [threading.Event() for _ in range(5)]
    job = TrainingJob(ScriptedTraining(gates=gates))
    job.start(5)
    for gate in gates[:epochs_done]:
        gate.set()
    deadline = time.monotonic() + 10
    while job.progress().epoch < epochs_done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.stop()
    gates[epochs_done].set()
    assert job.wait(10)
    return job.progress()


def test_a_stopped_run_keeps_its_bar_at_the_epoch_reached_and_its_loss_curve() -> None:
    progress = _stopped_after(2)
    assert progress.state == FINISHED and progress.stopped
    assert progress.epoch == 2
    # Stopped at the first step of the third epoch: the bar shows the 2 epochs it names.
    assert progress.fraction == pytest.approx(2 / 5)
    assert progress.where().startswith("stopped at epoch 2 of 5")
    # Every step taken is drawn, the step that met the stop included.
    assert len(progress.step_losses) == 2 * STEPS + 1
    assert len(progress.epoch_metrics) == 2


def test_a_run_stopped_before_its_first_epoch_says_so_and_still_draws_its_step() -> None:
    progress = _stopped_after(0)
    assert progress.stopped and progress.epoch == 0
    assert progress.fraction == 0.0
    assert progress.where().startswith("stopped before the first epoch of 5 ended")
    assert len(progress.step_losses) == 1  # the chart is not left empty


def test_a_run_that_ends_on_its_own_fills_the_bar_and_is_not_stopped() -> None:
    job = TrainingJob(ScriptedTraining())
    job.start(2)
    assert job.wait(10)
    progress = job.progress()
    assert not progress.stopped and progress.fraction == 1.0
    assert progress.where() == progress.message
