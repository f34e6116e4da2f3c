"""The model as the application sees it: training, prediction and persistence ports.

The SSVAE itself lives in `ssvae.adapters` (JAX/Flax); the application only sees these
Protocols and the plain values they exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    map (None while no label informs it); `ood_score` is 1 - max_c r_c(x) max_y tau[c, y].
    """

    class_probs: FloatArray
    latent_mean: FloatArray
    certainty: FloatArray
    tau_probs: FloatArray | None = None
    ood_score: FloatArray | None = None
    responsibilities: FloatArray | None = None
    reconstructions: FloatArray | None = None


@attrs.frozen
class EpochRecord:
    """The metrics of one finished epoch."""

    epoch: int
    metrics: Mapping[str, float]


@attrs.frozen
class TrainingReport:
    """What a call to fit or fit_more did."""

    epochs_run: int
    history: tuple[EpochRecord, ...]
    stop_reason: str  # "max_epochs", "early_stopping", "non_finite_loss", "interrupted"
    best_epoch: int
    seconds: float


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
        """A freshly initialised model for `spec` (seeded by spec.seed)."""
        ...

    def save(self, model: SsvaeModel, directory: Path) -> None:
        """Checkpoint `model` into `directory` atomically."""
        ...

    def load(self, directory: Path) -> SsvaeModel:
        """The model checkpointed in `directory`, ready to predict or train further."""
        ...
