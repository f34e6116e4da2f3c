"""In-memory fakes of the ports, with the same validation rules as the real adapters."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError
from ssvae.domain.labels import (
    ClassVocabulary,
    HistoryEntry,
    LabelChange,
    LabelSet,
    Undone,
    record_changes,
    undo_batch,
    validate_changes,
)


class InMemoryLabelStore:
    """A LabelStore kept in memory: validates and records changes like the file stores."""

    def __init__(
        self,
        vocabulary: ClassVocabulary,
        valid_serials: npt.NDArray[np.int64],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vocabulary = vocabulary
        self._valid_serials = np.asarray(valid_serials, dtype=np.int64)
        self._clock = clock
        self._labels = LabelSet(vocabulary)
        self._history: list[HistoryEntry] = []

    def load(self) -> LabelSet:
        return self._labels

    def apply(
        self, changes: Sequence[LabelChange], source: str, *, new_classes: Sequence[str] = ()
    ) -> LabelSet:
        changes = list(changes)
        vocabulary = self._labels.vocabulary.with_classes(new_classes)
        validate_changes(changes, vocabulary, self._valid_serials)
        self._labels, entries = record_changes(
            LabelSet(vocabulary, dict(self._labels)),
            changes,
            source=source,
            first_index=len(self._history),
            timestamp=self._clock(),
        )
        self._history.extend(entries)
        return self._labels

    def history(self) -> Sequence[HistoryEntry]:
        return tuple(self._history)

    def undo(self, source: str) -> Undone:
        changes = undo_batch(reversed(self._history))
        self._labels, entries = record_changes(
            self._labels,
            changes,
            source=source,
            first_index=len(self._history),
            timestamp=self._clock(),
        )
        self._history.extend(entries)
        return Undone(self._labels, entries)


class InMemoryDataSource:
    """A DataSource over arrays held in memory: a train pool and an optional test split."""

    def __init__(
        self,
        vocabulary: ClassVocabulary,
        train_x: npt.NDArray[np.float32],
        train_y: npt.NDArray[np.int64] | None = None,
        test_x: npt.NDArray[np.float32] | None = None,
        test_y: npt.NDArray[np.int64] | None = None,
        name: str = "fake",
    ) -> None:
        self._vocabulary = vocabulary
        self._splits = {"train": (train_x, train_y)}
        if test_x is not None:
            self._splits["test"] = (test_x, test_y)
        self._name = name

    def describe(self) -> DatasetInfo:
        train_x, train_y = self._splits["train"]
        return DatasetInfo(
            name=self._name,
            sample_shape=tuple(train_x.shape[1:]),
            vocabulary=self._vocabulary,
            split_sizes=tuple((name, len(x)) for name, (x, _) in self._splits.items()),
            has_true_labels=train_y is not None,
            kind="vector" if train_x.ndim == 2 else "image",
        )

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        return np.arange(len(self._split(split)[0]), dtype=np.int64)

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        x, y = self._split(split)
        chosen = self.serials(split) if serials is None else np.asarray(serials, np.int64)
        return Samples(chosen, x[chosen], None if y is None else y[chosen])

    def _split(self, split: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64] | None]:
        if split not in self._splits:
            raise DataError(f"fake dataset has no split {split!r}")
        return self._splits[split]


# --- Models, generators and report writers for the comparison tests (tests/*/test_compare_*).


def three_cluster_source(
    vocabulary: ClassVocabulary, n: int, n_test: int, seed: int = 0, test: bool = True
) -> InMemoryDataSource:
    """Three well separated clusters in 4 dimensions, classes in turn (n pool rows, n_test
    test rows, or no test split)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.eye(3, 4) * 5
    x = (centres[y] + rng.normal(size=(n, 4))).astype(np.float32)
    y_test = np.arange(n_test) % 3
    x_test = (centres[y_test] + rng.normal(size=(n_test, 4))).astype(np.float32)
    if not test:
        return InMemoryDataSource(vocabulary, x, y.astype(np.int64))
    return InMemoryDataSource(vocabulary, x, y.astype(np.int64), x_test, y_test.astype(np.int64))


class FakeModel:
    """An SsvaeModel without a network: nearest-centroid predictions, scripted training.

    It runs exactly the epochs it is asked for (or stops early at `stop_after`), reports each
    step and epoch to its callbacks, and raises KeyboardInterrupt at the start of epoch
    `interrupt_at` as Ctrl-C would.
    """

    STEPS_PER_EPOCH = 3

    def __init__(
        self,
        spec: Any,
        callbacks: Sequence[Any] = (),
        *,
        interrupt_at: int | None = None,
        stop_after: int | None = None,
    ) -> None:
        self._spec = spec
        self.callbacks = list(callbacks)
        self.interrupt_at = interrupt_at
        self.stop_after = stop_after
        self.fit_calls: list[tuple[int, int, int | None]] = []  # (pool size, labels, epochs)
        self.centroids: npt.NDArray[np.float64] | None = None
        self.epochs_trained = 0

    @property
    def spec(self) -> Any:
        return self._spec

    def fit(self, pool: Samples, labels: LabelSet, epochs: int | None = None) -> Any:
        from ssvae.domain.model import EpochRecord, TrainingReport

        self.fit_calls.append((len(pool), len(labels), epochs))
        row_of = {int(s): i for i, s in enumerate(pool.serials)}
        rows = np.array([row_of[int(s)] for s in labels.serials()], np.int64)
        classes = labels.class_indices()
        flat = pool.x.reshape(len(pool), -1).astype(np.float64)
        self.centroids = np.stack(
            [
                flat[rows[classes == c]].mean(axis=0) if np.any(classes == c) else flat.mean(0)
                for c in range(self._spec.network.num_classes)
            ]
        )
        history = []
        reason = "max_epochs"
        for epoch in range(epochs if epochs is not None else self._spec.training.max_epochs):
            if self.interrupt_at == epoch + 1:
                raise KeyboardInterrupt
            for step in range(self.STEPS_PER_EPOCH):
                for callback in self.callbacks:
                    callback.on_step(epoch, step + 1, self.STEPS_PER_EPOCH, 10.0 / (epoch + 1))
            self.epochs_trained += 1
            scale = 1.0 / (epoch + 1)
            record = EpochRecord(
                epoch=epoch + 1,
                metrics={
                    "loss": 10 * scale,
                    "reconstruction": 8 * scale,
                    "kl": 2 * scale,
                    "train_accuracy": 1 - scale / 2,
                    "val_loss": 11 * scale,
                    "val_elbo": -11 * scale,
                    "val_accuracy": 1 - scale / 2,
                    "seconds": 0.01,
                },
            )
            history.append(record)
            for callback in self.callbacks:
                callback.on_epoch_end(record)
            if self.stop_after == epoch + 1:
                reason = "early_stopping"
                break
        report = TrainingReport(
            epochs_run=len(history),
            history=tuple(history),
            stop_reason=reason,
            best_epoch=len(history),
            seconds=0.01 * len(history),
        )
        for callback in self.callbacks:
            callback.on_train_end(report)
        return report

    def fit_more(self, epochs: int, labels: LabelSet) -> Any:
        raise NotImplementedError("the comparison never continues training")

    def predict(self, x: npt.NDArray[np.float32]) -> Any:
        from ssvae.domain.model import Predictions

        assert self.centroids is not None, "predict before fit"
        flat = x.reshape(len(x), -1).astype(np.float64)
        distances = ((flat[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        logits = -(distances - distances.min(axis=1, keepdims=True))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        k = self._spec.network.num_components
        resp = np.eye(k, dtype=np.float32)[probs.argmax(axis=1) % k]
        return Predictions(
            class_probs=probs.astype(np.float32),
            latent_mean=flat[:, : self._spec.network.latent_dim].astype(np.float32),
            encoding=flat[:, : 2 * self._spec.network.latent_dim].astype(np.float32),
            certainty=probs.max(axis=1).astype(np.float32),
            tau_probs=probs.astype(np.float32) if k > 1 else None,
            responsibilities=resp,
        )


class FakeModelRepository:
    """A ModelRepository of FakeModels; `interrupt_at[i]` makes the i-th created model
    raise KeyboardInterrupt at that epoch; `stop_after[i]` makes it stop early."""

    def __init__(
        self,
        callbacks: Sequence[Any] = (),
        *,
        interrupt_at: dict[int, int] | None = None,
        stop_after: dict[int, int] | None = None,
    ) -> None:
        self.callbacks = tuple(callbacks)
        self.interrupt_at = dict(interrupt_at or {})
        self.stop_after = dict(stop_after or {})
        self.created: list[FakeModel] = []
        self.saved: list[Path] = []

    def create(self, spec: Any) -> FakeModel:
        index = len(self.created)
        model = FakeModel(
            spec,
            self.callbacks,
            interrupt_at=self.interrupt_at.get(index),
            stop_after=self.stop_after.get(index),
        )
        self.created.append(model)
        return model

    def save(self, model: Any, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "fake-model.txt").write_text(repr(model.spec), encoding="utf-8")
        self.saved.append(directory)

    def load(self, directory: Path) -> Any:
        raise NotImplementedError("the comparison never loads models")


class FakeModelGenerator:
    """A ModelGenerator: blank generated images, reconstructions = the inverted input."""

    def generate(self, model: Any, per_class: int, seed: int) -> Any:
        from ssvae.domain.comparison import GeneratedSamples

        spec = model.spec
        c, k, shape = (
            spec.network.num_classes,
            spec.network.num_components,
            tuple(spec.network.input_shape),
        )
        rng = np.random.default_rng(seed)
        return GeneratedSamples(
            per_class=rng.random((c, per_class, *shape), dtype=np.float32),
            per_component=rng.random((k, c, *shape), dtype=np.float32),
            mixing_weights=np.full(k, 1.0 / k, np.float32),
        )

    def reconstruct(self, model: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return (1.0 - x).astype(np.float32)


class InMemoryReportWriter:
    """A ReportWriter that keeps the results instead of writing files."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.runs = 0

    def create_run_directory(self, root: Path) -> Path:
        self.runs += 1
        directory = root / f"run-{self.runs}"
        directory.mkdir(parents=True)
        return directory

    def write(self, result: Any, directory: Path) -> Sequence[Path]:
        self.results.append(result)
        return ()


# --- Active learning (tests/*/test_al_*.py): a model that continues training, a repository
# that checkpoints in memory, an in-memory workspace store and learning-curve writer.


class IncrementalFakeModel(FakeModel):
    """A FakeModel that also continues training (fit_more) on the pool of its last fit."""

    def __init__(self, spec: Any, callbacks: Sequence[Any] = ()) -> None:
        super().__init__(spec, callbacks)
        self.pool: Samples | None = None
        self.fit_more_calls: list[tuple[int, int]] = []  # (labels, epochs)

    def fit(self, pool: Samples, labels: LabelSet, epochs: int | None = None) -> Any:
        self.pool = pool
        return super().fit(pool, labels, epochs)

    def fit_more(self, epochs: int, labels: LabelSet) -> Any:
        from ssvae.domain.errors import SsvaeError

        if self.pool is None:
            raise SsvaeError("fit_more needs the pool of an earlier fit")
        self.fit_more_calls.append((len(labels), epochs))
        report = super().fit(self.pool, labels, epochs)
        self.fit_calls.pop()  # recorded as a fit_more call instead
        return report

    def predict(self, x: npt.NDArray[np.float32]) -> Any:
        if self.centroids is None:  # never trained: every class equally likely
            flat = x.reshape(len(x), -1).astype(np.float64)
            self.centroids = np.repeat(
                flat.mean(axis=0, keepdims=True), self._spec.network.num_classes, 0
            )
        return super().predict(x)


class InMemoryModelRepository:
    """A ModelRepository of IncrementalFakeModels whose checkpoints live in a dict.

    A loaded model, like a real one, has no pool until its next fit.
    """

    def __init__(self, callbacks: Sequence[Any] = ()) -> None:
        self.callbacks = tuple(callbacks)
        self.checkpoints: dict[Path, dict[str, Any]] = {}
        self.created: list[IncrementalFakeModel] = []
        self.loaded: list[IncrementalFakeModel] = []

    def create(self, spec: Any) -> IncrementalFakeModel:
        model = IncrementalFakeModel(spec, self.callbacks)
        self.created.append(model)
        return model

    def save(self, model: Any, directory: Path) -> None:
        centroids = None if model.centroids is None else model.centroids.copy()
        self.checkpoints[Path(directory).resolve()] = {
            "spec": model.spec,
            "centroids": centroids,
            "epochs_trained": model.epochs_trained,
        }

    def load(self, directory: Path) -> IncrementalFakeModel:
        from ssvae.domain.errors import SsvaeError

        saved = self.checkpoints.get(Path(directory).resolve())
        if saved is None:
            raise SsvaeError(f"no checkpoint in {directory}")
        model = IncrementalFakeModel(saved["spec"], self.callbacks)
        model.centroids = None if saved["centroids"] is None else saved["centroids"].copy()
        model.epochs_trained = saved["epochs_trained"]
        self.loaded.append(model)
        return model


class InMemoryWorkspaceStore:
    """A WorkspaceStore in memory: spec and metadata per folder, history rows per folder."""

    def __init__(self) -> None:
        self.workspaces: dict[Path, tuple[Any, Any]] = {}
        self.history: dict[Path, list[dict[str, Any]]] = {}

    def create(self, directory: Path, spec: Any, metadata: Any) -> None:
        from ssvae.domain.workspace import WorkspaceExistsError

        if directory in self.workspaces:
            raise WorkspaceExistsError(f"workspace {directory} already exists")
        self.workspaces[directory] = (spec, metadata)
        self.history[directory] = []

    def read(self, directory: Path) -> tuple[Any, Any]:
        from ssvae.domain.workspace import WorkspaceError

        if directory not in self.workspaces:
            raise WorkspaceError(f"model workspace {directory} does not exist")
        return self.workspaces[directory]

    def record_round(self, directory: Path, metadata: Any, history_row: Any) -> None:
        from ssvae.domain.workspace import history_row as checked_row

        self.history[directory].append(checked_row(history_row))
        spec, _ = self.workspaces[directory]
        self.workspaces[directory] = (spec, metadata)


class InMemoryLearningCurveWriter:
    """A LearningCurveWriter that keeps the results instead of writing files."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.runs = 0

    def create_run_directory(self, root: Path) -> Path:
        self.runs += 1
        return Path(root) / f"experiment-{self.runs}"

    def write(self, result: Any, directory: Path) -> Sequence[Path]:
        self.results.append(result)
        return ()
