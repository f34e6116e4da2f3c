"""Use case: continue training a workspace's model on its current labels (one round).

The first round creates the model from spec.yaml. Later rounds continue from the checkpoint
(optimizer and PRNG state included); within one process the model stays loaded and the next
round calls the incremental `fit_more` on it, as long as no other process recorded a round
in between. Every round saves the checkpoint, appends a row to history.csv and records the
labels used, the predictions on the stop set and tau, which the stopping criteria read.

The model has one output per class of the label store's vocabulary. When a user added classes
since the last round, a new model is trained for them all (see `_start` for why not the saved
one grown).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from ssvae.application.pool_scan import PREDICT_CHUNK, predict_pool
from ssvae.application.query import tau_of
from ssvae.application.workspace import WorkspaceService, total_epochs
from ssvae.domain.comparison import TrainingRelay
from ssvae.domain.data import Samples
from ssvae.domain.distributed import DistributedRuntime
from ssvae.domain.errors import SsvaeError, TrainingDivergedError
from ssvae.domain.labels import LabelSet
from ssvae.domain.model import ModelRepository, SsvaeModel, TrainingCallback, TrainingReport
from ssvae.domain.ports import LabelStore
from ssvae.domain.rows import STREAM_ABOVE_BYTES, RowReadingSource
from ssvae.domain.stopping import StopDecision, StoppingRule, should_stop
from ssvae.domain.workspace import (
    SPEC_FILE,
    TrainingLock,
    Workspace,
    WorkspaceRound,
    stop_set_rows,
)


@attrs.frozen(eq=False)
class TrainOutcome:
    """A finished round: the updated workspace, the training report and the stopping check."""

    workspace: Workspace
    report: TrainingReport
    round: WorkspaceRound
    stopping: StopDecision
    incremental: bool  # True: fit_more on the model kept loaded since the previous round
    # (the saved model's classes, the labels' classes) when classes were added since its
    # round and a new model was trained for them all; None when the round went on from it.
    restarted_for_classes: tuple[int, int] | None = None


@attrs.define
class _Loaded:
    model: SsvaeModel
    rounds: int  # the workspace's round count the model matches


@attrs.define
class TrainService:
    """Trains workspace models round by round; keeps the last model of each workspace loaded."""

    repository: ModelRepository
    workspaces: WorkspaceService
    relay: TrainingRelay | None = None
    lock: TrainingLock | None = None  # across processes; None: no lock (tests, one process)
    # Several processes training one model (jax.distributed) all train, save and predict,
    # since every step is collective and the checkpointer writes each process's shards and
    # lets the first commit; only the first takes the lock and writes metadata and history.
    runtime: DistributedRuntime | None = None
    # A pool of more input bytes than this trains from its file, read a window of batches at
    # a time, when the data source can read rows (vector files); smaller pools are loaded.
    stream_above_bytes: int = STREAM_ABOVE_BYTES
    now: Callable[[], dt.datetime] = dt.datetime.now
    predict_chunk: int = PREDICT_CHUNK
    _loaded: dict[Path, _Loaded] = attrs.field(factory=dict, init=False)

    def train(
        self,
        workspace: Workspace,
        epochs: int,
        store: LabelStore,
        *,
        listener: TrainingCallback | None = None,
        rule: StoppingRule | None = None,
        fresh: bool = False,
    ) -> TrainOutcome:
        """Train `epochs` more epochs on the store's labels; save, record and check stopping.

        `fresh`: a new model from spec.yaml replaces the saved one (with few labels, continued
        training can stay locked to its first class assignment; benchmarks/README.md)."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise SsvaeError(f"epochs = {epochs!r} is invalid: train for at least 1 epoch")
        held = (
            self.lock.hold(workspace.directory)
            if self.lock and self._writes()
            else contextlib.nullcontext()
        )
        with held:
            return self._train(workspace, epochs, store, listener, rule, fresh)

    def _train(
        self,
        workspace: Workspace,
        epochs: int,
        store: LabelStore,
        listener: TrainingCallback | None,
        rule: StoppingRule | None,
        fresh: bool,
    ) -> TrainOutcome:
        labels = store.load()
        classes = len(labels.vocabulary)
        restarted: tuple[int, int] | None = None
        pool = self._pool(workspace)
        key = workspace.directory.resolve()
        loaded = self._loaded.pop(key, None)
        incremental = (
            not fresh
            and loaded is not None
            and loaded.rounds == len(workspace.metadata.rounds)
            and loaded.model.spec.network.num_classes == classes
        )
        if self.relay is not None and listener is not None:
            self.relay.attach(listener)
        try:
            if loaded is not None and incremental:
                model = loaded.model
                report = model.fit_more(epochs, labels)
            else:
                if fresh:
                    model = self.repository.create(workspace.spec.evolve(num_classes=classes))
                else:
                    model, restarted = self._start(workspace, classes)
                report = model.fit(pool, labels, epochs)
        finally:
            if self.relay is not None and listener is not None:
                self.relay.detach(listener)
        if report.diverged:
            # The previous checkpoint stays rather than the diverged run's last good state: it
            # ends a recorded round, so the checkpoint, the rounds and the stopping criteria's
            # predictions still agree, and a retry starts from it. The diverged model is not
            # kept loaded either.
            spec_file = workspace.directory / SPEC_FILE
            kept = (
                f"nothing was saved: the checkpoint of round {len(workspace.metadata.rounds)} "
                f"stays, with its settings (to change them, edit {spec_file} and train a new "
                "model: ssvae train --fresh)"
                if workspace.has_model
                else f"nothing was saved (the settings are in {spec_file})"
            )
            raise TrainingDivergedError(f"{report.message}; {kept}")
        writes = self._writes()
        self.repository.save(model, workspace.checkpoint_dir)
        round_ = self._round(workspace, model, pool, labels, report)
        history = (*workspace.metadata.rounds, round_)
        decision = should_stop(rule if rule is not None else StoppingRule(), history)
        if writes:
            updated = self.workspaces.record_round(
                workspace, round_, self._history_row(workspace, round_, report, decision)
            )
        else:
            updated = Workspace(
                workspace.directory, workspace.spec, workspace.metadata.with_round(round_)
            )
        self._loaded[key] = _Loaded(model, len(updated.metadata.rounds))
        return TrainOutcome(updated, report, round_, decision, incremental, restarted)

    def _pool(self, workspace: Workspace) -> Samples:
        """The pool's samples: loaded, or read from their file as training asks (large pools)."""
        source = self.workspaces.source
        size = workspace.metadata.pool_size * int(np.prod(workspace.spec.network.input_shape)) * 4
        if size > self.stream_above_bytes and isinstance(source, RowReadingSource):
            return source.row_samples("train", self.workspaces.pool_serials(workspace))
        return self.workspaces.pool(workspace)

    def _writes(self) -> bool:
        return self.runtime is None or self.runtime.place().writes

    def _start(
        self, workspace: Workspace, classes: int
    ) -> tuple[SsvaeModel, tuple[int, int] | None]:
        """(the model this round trains, (the saved model's classes, `classes`) when a new
        model replaced it because classes were added since; else None)."""
        if not workspace.has_model:
            return self.repository.create(workspace.spec.evolve(num_classes=classes)), None
        model = self.repository.load(workspace.checkpoint_dir)
        if model.spec.network.num_classes >= classes:
            return model, None  # fewer classes than the model: fit names the mismatch
        # A new model, not the saved one grown. Grown (every parameter carried over, the new
        # classes' rows and columns fresh), its old classes' decoders already explained the
        # new classes' unlabelled samples and kept pulling them away: on MNIST with digits 8
        # and 9 added to a model of 0-7 (5 labels a digit, 3 seeds) the new digits reached
        # 45.7% after 5 epochs and 41.7% after 10, against 82.6% and 89.2% for a new model;
        # overall 75.8% / 77.8% against 76.4% / 79.6%. Growing led only after 1-2 epochs.
        restarted = (model.spec.network.num_classes, classes)
        return self.repository.create(model.spec.evolve(num_classes=classes)), restarted

    def _round(
        self,
        workspace: Workspace,
        model: SsvaeModel,
        pool: Samples,
        labels: LabelSet,
        report: TrainingReport,
    ) -> WorkspaceRound:
        stop_rows = stop_set_rows(len(pool), workspace.metadata.pool_seed)
        in_pool = np.isin(pool.serials, labels.serials())
        # Predict only the stop set and the labelled rows: that is all the round records.
        rows = np.union1d(stop_rows, np.flatnonzero(in_pool))
        subset = pool.subset(rows)
        outputs = predict_pool(model, subset, self.predict_chunk)
        stop_positions = np.searchsorted(rows, stop_rows)
        tau = tau_of(outputs, labels, model.spec.network.num_classes, model.spec.scoring.tau_alpha0)
        return WorkspaceRound(
            index=len(workspace.metadata.rounds) + 1,
            finished=self.now().isoformat(timespec="seconds"),
            labels_used=len(labels),
            epochs_run=report.epochs_run,
            predictions=tuple(int(c) for c in outputs.predicted[stop_positions]),
            tau=None if tau is None else tuple(tuple(float(v) for v in row) for row in tau),
        )

    @staticmethod
    def _history_row(
        workspace: Workspace, round_: WorkspaceRound, report: TrainingReport, decision: StopDecision
    ) -> dict[str, object]:
        last = report.history[-1].metrics if report.history else {}
        return {
            "round": round_.index,
            "finished": round_.finished,
            "labels": round_.labels_used,
            "epochs_run": report.epochs_run,
            "total_epochs": total_epochs(workspace.metadata.rounds) + report.epochs_run,
            "stop_reason": report.stop_reason,
            "seconds": round(report.seconds, 3),
            "loss": last.get("loss"),
            "val_loss": last.get("val_loss"),
            "val_accuracy": last.get("val_accuracy"),
            "kappa": decision.kappa,
            "tau_change": decision.tau_change,
            "message": report.message or None,
        }
