"""`JaxSsvaeModel`: the SSVAE behind the `SsvaeModel` port (created by JaxModelRepository).

`fit(pool, labels, epochs)` trains from the current parameters and optimizer state (a loaded
checkpoint resumes where it stopped); `fit_more(epochs, labels)` continues on the same pool
with a possibly changed label set, keeping optimizer and PRNG state. The data order of epoch
e and the key of step s derive from (seed, e) and (seed, s), so resumed training repeats the
straight run. Validation rows are a seeded fraction of the pool drawn from its unlabelled
samples only: every label trains (see `validation_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ssvae.adapters.model import sharding
from ssvae.adapters.model.batches import ArrayRows, RowSource, as_row_source, take
from ssvae.adapters.model.checkpoint import (
    load_checkpoint,
    restore_tree,
    save_checkpoint,
)
from ssvae.adapters.model.modules import build_network
from ssvae.adapters.model.trainer import StepKit, Trainer, TrainingData, TrainState, init_state
from ssvae.domain.acquisition import AcquisitionError, check_prior_serves
from ssvae.domain.data import Samples
from ssvae.domain.errors import DataError, LabelError, SsvaeError
from ssvae.domain.labels import LabelSet
from ssvae.domain.model import (
    EpochRecord,
    Predictions,
    TrainingCallback,
    TrainingReport,
    classifier_ood_scores,
    component_label_map,
    data_fingerprint,
    ood_scores,
    tau_class_probs,
)
from ssvae.domain.ports import DEFAULT_SCORE_SAMPLES, MODEL_SCORES
from ssvae.domain.spec import ModelSpec

PREDICT_BATCH = 1024
_KITS: dict[ModelSpec, StepKit] = {}


def _step_kit(spec: ModelSpec, graphdef: Any, params: Any) -> StepKit:
    """One set of compiled steps per spec, shared by every model built from it.

    The labelling loop and resumed runs create new models of the same spec; sharing the
    jitted functions saves their compilation (seconds each on a small CPU).
    """
    key = spec.evolve(**_NOT_COMPILED)
    kit = _KITS.get(key)
    if kit is None or kit.graphdef != graphdef:
        kit = _KITS[key] = StepKit(key, graphdef, params)
    return kit


# Fields the compiled steps never read (they enter as arguments or stay on the host).
_NOT_COMPILED: dict[str, Any] = {
    "seed": 0,
    "max_epochs": 1,
    "patience": 0,
    "monitor": "val_loss",
    "validation_split": 0.0,
    "kl_warmup_epochs": 0,
    "lr_schedule": "constant",
    "lr_min_fraction": 0.05,
    "classification_weight": 1.0,
    "scale_classification_by_ratio": True,
    "tau_alpha0": 1.0,
}


def validation_rows(
    pool_size: int, labelled_rows: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Sorted rows held out for validation: unlabelled rows only, at least one row trains.

    Labels are scarce (often 5 per class), so none is held out: validation measures the
    unsupervised terms, and val_accuracy is not available (monitoring it falls back to
    val_loss). The rows come in one fixed seeded order of the whole pool, skipping labelled
    ones, so labelling a validation sample moves it to training and the next unlabelled row of
    the order takes its place: the rest of the validation set stays the same across rounds.
    """
    order = np.random.default_rng([seed, 7919]).permutation(pool_size)  # fixed split stream
    unlabelled = order[~np.isin(order, labelled_rows)]
    count = min(round(fraction * pool_size), len(unlabelled), pool_size - 1)
    return np.sort(unlabelled[: max(count, 0)]).astype(np.int64)


def _check_shape(spec: ModelSpec, x: np.ndarray | RowSource, what: str) -> None:
    if tuple(x.shape[1:]) != tuple(spec.network.input_shape):
        raise DataError(
            f"{what} has samples of shape {tuple(x.shape[1:])}, the model expects "
            f"{tuple(spec.network.input_shape)}; use a spec whose input_shape matches the data"
        )


class JaxSsvaeModel:
    """An M2 SSVAE in JAX/Flax NNX: trains, predicts, and is checkpointed by the repository."""

    def __init__(
        self,
        spec: ModelSpec,
        callbacks: Sequence[TrainingCallback] = (),
        predict_batch_size: int = PREDICT_BATCH,
    ) -> None:
        self._spec = spec
        self.mesh = sharding.data_mesh()
        self.graphdef, state = init_state(spec, build_network(spec))
        self.state = self._placed(state)
        self.kit = _step_kit(spec, self.graphdef, state.params)
        self.callbacks: list[TrainingCallback] = list(callbacks)
        self.predict_batch_size = predict_batch_size
        self.pool: Samples | None = None
        self.labels: LabelSet | None = None
        self.tau: np.ndarray | None = None
        self.fingerprint = ""
        self.history: list[EpochRecord] = []

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def _placed(self, state: TrainState) -> TrainState:
        """Parameters, optimizer state and key replicated over the mesh."""
        state.params = sharding.put_replicated(self.mesh, state.params)
        state.opt_state = sharding.put_replicated(self.mesh, state.opt_state)
        state.key = sharding.put_replicated(self.mesh, state.key)
        return state

    # Training.

    def fit(self, pool: Samples, labels: LabelSet, epochs: int | None = None) -> TrainingReport:
        """Train on `pool` with `labels` for at most `epochs` (default: the spec's max_epochs).

        `pool.x` is an array, or a `RowSource` that reads each batch's rows from a file."""
        x: RowSource | np.ndarray = (
            pool.x if isinstance(pool.x, np.ndarray) else as_row_source(pool.x)
        )
        if isinstance(x, np.ndarray) and x.dtype != np.float32:
            x = x.astype(np.float32)
        _check_shape(self._spec, x, "the pool")
        self.pool = Samples(serials=np.asarray(pool.serials, np.int64), x=x, y=pool.y)  # type: ignore[arg-type]
        return self._train(self._spec.training.max_epochs if epochs is None else epochs, labels)

    def fit_more(self, epochs: int, labels: LabelSet) -> TrainingReport:
        """Continue on the pool of the last `fit`, keeping optimizer and PRNG state."""
        if self.pool is None:
            raise SsvaeError(
                "fit_more needs the pool of an earlier fit; call fit(pool, labels) first "
                "(a loaded model resumes with fit)"
            )
        return self._train(epochs, labels)

    def _train(self, epochs: int, labels: LabelSet) -> TrainingReport:
        if epochs < 1:
            raise SsvaeError(f"epochs = {epochs} is invalid: train for at least 1 epoch")
        assert self.pool is not None
        data = self._training_data(self.pool, labels)
        trainer = Trainer(self._spec, self.kit, self.mesh, self.callbacks)
        report = trainer.run(self.state, data, epochs)
        self.labels = labels
        self.fingerprint = data_fingerprint(self.pool, labels, self._x_chunks(data.x))
        self.history.extend(report.history)
        self._update_tau(data)
        return report

    def _training_data(self, pool: Samples, labels: LabelSet) -> TrainingData:
        spec = self._spec
        if len(labels.vocabulary) != spec.network.num_classes:
            raise LabelError(
                f"the labels have {len(labels.vocabulary)} classes, the model "
                f"{spec.network.num_classes}; set num_classes to the vocabulary size"
            )
        n = len(pool)
        row_of = {int(s): i for i, s in enumerate(pool.serials)}
        serials, classes = labels.serials(), labels.class_indices()
        missing = [int(s) for s in serials if int(s) not in row_of]
        if missing:
            raise LabelError(
                f"{len(missing)} labelled serial(s) are not in the pool (first: {missing[0]}); "
                "label only samples of the dataset's pool"
            )
        rows = np.array([row_of[int(s)] for s in serials], np.int64)
        val_rows = validation_rows(n, rows, spec.training.validation_split, spec.training.seed)
        train_rows = np.setdiff1d(np.arange(n, dtype=np.int64), val_rows)
        return TrainingData(
            x=as_row_source(pool.x),
            train_rows=train_rows,
            labelled_rows=rows,
            labelled_classes=classes,
            val_rows=val_rows,
            val_classes=np.full(len(val_rows), -1, np.int64),
        )

    @staticmethod
    def _x_chunks(source: RowSource) -> Iterable[np.ndarray]:
        """The pool's inputs in row order: the array, or a file's rows chunk by chunk."""
        if isinstance(source, ArrayRows):
            return [source.x]
        rows = source.shape[0]
        return source.gather(np.arange(i, min(i + 65_536, rows)) for i in range(0, rows, 65_536))

    def _update_tau(self, data: TrainingData) -> None:
        """Refit the component-to-label map from the labelled rows' responsibilities."""
        if len(data.labelled_rows) == 0:
            self.tau = None
            return
        out = self._predict_arrays(take(data.x, data.labelled_rows), reconstruct=False)
        self.tau = component_label_map(
            out["responsibilities"],
            data.labelled_classes,
            self._spec.network.num_classes,
            self._spec.scoring.tau_alpha0,
        )

    # Prediction.

    def _batched(
        self, x: np.ndarray, step: Callable[[jax.Array, jax.Array], Mapping[str, jax.Array]]
    ) -> dict[str, np.ndarray]:
        """`step(x_batch, row_indices)` over `x` in padded batches of a size the mesh divides,
        the outputs of the real rows joined; only one batch of intermediates lives at a time.

        With several processes each computes its part of every batch, and the parts are
        gathered, so every process returns the outputs of all rows."""
        n = x.shape[0]
        size = min(self.predict_batch_size, 1 << max(n - 1, 0).bit_length())
        size = math.ceil(size / self.mesh.size) * self.mesh.size
        results: dict[str, np.ndarray] = {}
        part = sharding.local_rows(self.mesh, size)
        for start in range(0, n, size):
            rows = min(size, n - start)
            # This process reads only its part of the batch; rows past the end are padding.
            lo, hi = start + part.start, min(start + part.stop, n)
            chunk = np.asarray(x[lo:hi] if hi > lo else x[:0], dtype=np.float32)
            pad = part.stop - part.start - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            indices = np.arange(start + part.start, start + part.stop, dtype=np.int32)
            placed = sharding.put_batch(self.mesh, {"x": chunk, "rows": indices}, size)
            out = sharding.gathered(step(placed["x"], placed["rows"]))
            for name, value in out.items():
                if name not in results:
                    results[name] = np.empty((n, *value.shape[1:]), np.float32)
                results[name][start : start + rows] = value[:rows]
        return results

    def _predict_arrays(self, x: np.ndarray, *, reconstruct: bool) -> dict[str, np.ndarray]:
        """The predict step's outputs for every row of `x`."""
        return self._batched(
            x,
            lambda batch, _: self.kit.predict_step(
                self.state.params, batch, reconstruct=reconstruct
            ),
        )

    def predict(self, x: np.ndarray, *, reconstructions: bool = False) -> Predictions:
        """Both classifiers, latent means, certainty, OOD score, responsibilities."""
        x = np.asarray(x)
        _check_shape(self._spec, x, "the input")
        if x.shape[0] == 0:
            raise DataError("predict got no samples; pass at least one row")
        out = self._predict_arrays(x, reconstruct=reconstructions)
        probs = out["class_probs"]
        resp = out["responsibilities"]
        tau_probs = ood = None
        if self.tau is not None:  # both OOD signals wait for labels, like tau
            tau_probs = tau_class_probs(resp, self.tau)
            if self._spec.scoring.ood_signal == "classifier":
                ood = classifier_ood_scores(probs)
            else:
                ood = ood_scores(resp, self.tau)
        return Predictions(
            class_probs=probs,
            latent_mean=out["latent_mean"],
            encoding=out["encoding"],
            certainty=probs.max(axis=1),
            tau_probs=tau_probs,
            ood_score=ood,
            responsibilities=resp,
            reconstructions=out.get("reconstructions"),
            noise_sigma=out.get("noise_sigma"),
        )

    # Checkpoints.

    def save(self, directory: Path) -> None:
        """Checkpoint everything needed to predict or resume training."""
        save_checkpoint(
            directory,
            spec=self._spec,
            tree=(self.state.params, self.state.opt_state),
            key=self.state.key,
            step=self.state.step,
            epoch=self.state.epoch,
            tau=self.tau,
            extra={
                "fingerprint": self.fingerprint,
                "history": [{"epoch": r.epoch, "metrics": dict(r.metrics)} for r in self.history],
            },
        )

    @classmethod
    def restore(cls, directory: Path, callbacks: Sequence[TrainingCallback] = ()) -> JaxSsvaeModel:
        """The model saved in `directory`."""
        content = load_checkpoint(directory)
        model = cls(content.spec, callbacks)
        template = (model.state.params, model.state.opt_state)
        params, opt_state = restore_tree(template, content.leaves, directory)
        model.state = model._placed(
            TrainState(
                params,
                opt_state,
                jax.numpy.asarray(content.key, np.uint32),
                content.step,
                content.epoch,
            )
        )
        model.tau = content.tau
        model.fingerprint = str(content.meta.get("fingerprint", ""))
        model.history = [
            EpochRecord(epoch=int(r["epoch"]), metrics=dict(r["metrics"]))
            for r in content.meta.get("history", [])
        ]
        return model

    # Acquisition scores (the ModelScorer port).

    def model_scores(
        self,
        x: np.ndarray,
        names: Sequence[str],
        *,
        samples: int = DEFAULT_SCORE_SAMPLES,
        seed: int = 0,
    ) -> dict[str, np.ndarray]:
        """Per-sample "bald" and/or "negative_elbo" (see `ssvae.adapters.model.scores`)."""
        x = np.asarray(x)
        _check_shape(self._spec, x, "the input")
        if x.shape[0] == 0:
            raise DataError("model_scores got no samples; pass at least one row")
        wanted = _score_names(names)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise AcquisitionError(f"samples = {samples!r} is invalid: draw at least 1 z")
        if "bald" in wanted:
            self._check_bald()
        return self._score_arrays(x, wanted, samples, seed)

    def _check_bald(self) -> None:
        """BALD reads p(y|z) through tau: it needs labels and more than one component."""
        check_prior_serves("bald", self._spec.network.prior)
        if self.tau is None:
            raise AcquisitionError(
                "bald needs the component-to-label map, which the model gets from training "
                "with labels; label some samples, run ssvae train, then query again"
            )

    def _score_arrays(
        self, x: np.ndarray, names: tuple[str, ...], samples: int, seed: int
    ) -> dict[str, np.ndarray]:
        """The score step's outputs for every row of `x`; a row's draws depend on its index."""
        key = sharding.put_replicated(self.mesh, jax.random.key_data(jax.random.key(seed)))
        tau = None if self.tau is None else sharding.put_replicated(self.mesh, self.tau)
        return self._batched(
            x,
            lambda batch, rows: self.kit.score_step(
                self.state.params, batch, rows, key, tau, names=names, samples=samples
            ),
        )


def _score_names(names: Sequence[str]) -> tuple[str, ...]:
    """The requested score names in MODEL_SCORES order; AcquisitionError for unknown ones."""
    given = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in given if name not in MODEL_SCORES]
    if unknown or not given:
        raise AcquisitionError(
            f"unknown model score(s) {unknown}; ask for one or more of {', '.join(MODEL_SCORES)}"
        )
    return tuple(name for name in MODEL_SCORES if name in given)
