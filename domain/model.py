"""The model as the application sees it: training, prediction and persistence ports.

The SSVAE itself lives in `ssvae.adapters` (JAX/Flax); the application only sees these
Protocols and the plain values they exchange.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.data import Samples
from ssvae.domain.labels import LabelSet
from ssvae.domain.spec import ModelSpec

FloatArray = npt.NDArray[np.float32]


@attrs.frozen(eq=False)
class Predictions:
    """Per-sample outputs of a trained model, row-aligned with its input.

    `class_probs` comes from the classifier q(y|x); `tau_probs` from the component-to-label
    map (None while no label informs it); `ood_score` is what the spec's `ood_signal` reads:
    1 - max_c r_c(x) max_y tau[c, y] ("components") or 1 - max_y q(y|x) ("classifier"), None
    while no label has been trained on.
    """

    class_probs: FloatArray
    latent_mean: FloatArray
    certainty: FloatArray
    tau_probs: FloatArray | None = None
    ood_score: FloatArray | None = None
    responsibilities: FloatArray | None = None
    reconstructions: FloatArray | None = None
    noise_sigma: FloatArray | None = None  # heteroscedastic only: mean predicted data sigma
    # (n, C*d) the means of q(z|x,y) for every class y side by side: all the encoder says of
    # x, whatever its class. In M2, z holds the style that y leaves out, so latent_mean (the
    # q(y|x)-weighted mean) groups samples by style; clusters of this encoding follow the
    # digits better (typiclust, benchmarks/README.md). None from models that lack one.
    encoding: FloatArray | None = None


@attrs.frozen
class EpochRecord:
    """The metrics of one finished epoch."""

    epoch: int
    metrics: Mapping[str, float]


# Stop reasons of a run whose loss blew up (NaN/Inf, or far above its running level): the
# model is back at its last good state, and the run is a failure, not a result.
DIVERGED_STOPS = ("non_finite_loss", "diverged")


@attrs.frozen
class TrainingReport:
    """What a call to fit or fit_more did."""

    epochs_run: int
    history: tuple[EpochRecord, ...]
    # "max_epochs", "early_stopping", "interrupted", or one of DIVERGED_STOPS
    stop_reason: str
    best_epoch: int
    seconds: float
    message: str = ""  # one line for the user, e.g. why training stopped early

    @property
    def diverged(self) -> bool:
        """Whether the loss blew up, so the run's parameters are not a trained model."""
        return self.stop_reason in DIVERGED_STOPS


class TrainingCallback(Protocol):
    """Observes training: live step losses, finished epochs and the end of a run."""

    def on_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float) -> None:
        """Called every few steps with the latest training loss."""
        ...

    def on_epoch_end(self, record: EpochRecord) -> None:
        """Called after each epoch with its metrics."""
        ...

    def on_train_end(self, report: TrainingReport) -> None:
        """Called once when a fit or fit_more call finishes, whatever the reason."""
        ...


class ModelTrainer(Protocol):
    """Trains a model; `fit_more` continues with optimizer and PRNG state kept."""

    def fit(self, pool: Samples, labels: LabelSet, epochs: int | None = None) -> TrainingReport:
        """Train from the current parameters for at most `epochs` (the spec's max_epochs)."""
        ...

    def fit_more(self, epochs: int, labels: LabelSet) -> TrainingReport:
        """Continue training on the same pool with a possibly changed label set."""
        ...


class ModelPredictor(Protocol):
    """Batched prediction in bounded memory."""

    def predict(self, x: FloatArray) -> Predictions:
        """Both classifiers, latent means, certainty, OOD score, responsibilities."""
        ...


class SsvaeModel(ModelTrainer, ModelPredictor, Protocol):
    """A trainable, predicting model with its specification."""

    @property
    def spec(self) -> ModelSpec: ...


class ModelRepository(Protocol):
    """Creates, saves and restores models."""

    def create(self, spec: ModelSpec) -> SsvaeModel:
        """A freshly initialised model for `spec` (seeded by spec.training.seed)."""
        ...

    def save(self, model: SsvaeModel, directory: Path) -> None:
        """Checkpoint `model` into `directory` atomically."""
        ...

    def load(self, directory: Path) -> SsvaeModel:
        """The model checkpointed in `directory`, ready to predict or train further."""
        ...


def component_label_map(
    responsibilities: FloatArray, classes: npt.NDArray[np.int64], num_classes: int, alpha0: float
) -> FloatArray:
    """tau[c, y] = (s[c, y] + alpha0) / sum_y' (s[c, y'] + alpha0), s[c, y] = sum r_c(x_i).

    `responsibilities` (n, K) are r_c(x_i) of the labelled samples, `classes` (n,) their labels.
    """
    k = responsibilities.shape[1]
    counts = np.zeros((k, num_classes), np.float64)
    np.add.at(counts.T, classes, responsibilities.astype(np.float64))
    smoothed = counts + alpha0
    tau: FloatArray = (smoothed / smoothed.sum(axis=1, keepdims=True)).astype(np.float32)
    return tau


def tau_class_probs(responsibilities: FloatArray, tau: FloatArray) -> FloatArray:
    """The second classifier: p(y|x) = sum_c r_c(x) tau[c, y]."""
    probs: FloatArray = (responsibilities.astype(np.float64) @ tau.astype(np.float64)).astype(
        np.float32
    )
    return probs


def classifier_ood_scores(class_probs: FloatArray) -> FloatArray:
    """s_ood(x) = 1 - max_y q(y|x): high where the classifier favours no known class."""
    scores: FloatArray = (1.0 - class_probs.max(axis=1)).astype(np.float32)
    return scores


def ood_scores(responsibilities: FloatArray, tau: FloatArray) -> FloatArray:
    """s_ood(x) = 1 - max_c (r_c(x) max_y tau[c, y]): high where no confident component fits."""
    peak = responsibilities.astype(np.float64) * tau.max(axis=1).astype(np.float64)
    scores: FloatArray = (1.0 - peak.max(axis=1)).astype(np.float32)
    return scores


def data_fingerprint(
    pool: Samples, labels: LabelSet, x_chunks: Iterable[npt.NDArray[np.floating]] | None = None
) -> str:
    """A short hash of the pool (serials and inputs) and the labels a model was trained on.

    `x_chunks`: the inputs in row order, chunk by chunk, for a pool read from a file rather
    than held in memory; the hash is the same as for the whole array."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(pool.serials, dtype=np.int64).tobytes())
    digest.update(str(tuple(pool.x.shape)).encode())
    for chunk in [pool.x] if x_chunks is None else x_chunks:
        digest.update(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
    digest.update(repr(labels.vocabulary.names).encode())
    for serial, name in labels:
        digest.update(f"{serial}:{name};".encode())
    return digest.hexdigest()
