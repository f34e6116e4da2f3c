"""Use case: the next batch to label, for a model, a label store and an acquisition policy.

The model predicts the whole pool in chunks (bounded memory); the outputs fill an
`AcquisitionRequest` (class probabilities, latent means, OOD scores, responsibilities) and
`ssvae.domain.query.select` picks the batch. The same functions serve the simulated-oracle
experiments (`ssvae.application.simulate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.data import Samples
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import (
    FloatArray,
    ModelPredictor,
    ModelRepository,
    SsvaeModel,
    component_label_map,
)
from ssvae.domain.ports import LabelStore, text_catalog
from ssvae.domain.query import (
    SELECTION_POLICIES,
    AcquisitionRequest,
    Selection,
    required_inputs,
    select,
)
from ssvae.domain.workspace import Workspace

SerialArray = npt.NDArray[np.int64]
POOL_SPLIT = "train"  # a workspace's pool is drawn from this split
PREDICT_CHUNK = 8192  # pool rows per predict call: the outputs of one chunk live at a time

# The request fields the model's predictions provide (BALD and the per-sample ELBO need
# outputs the model does not compute yet).
COMPUTED_INPUTS = ("probs", "features", "ood", "responsibilities")
QUERY_POLICIES: tuple[str, ...] = tuple(
    name for name in SELECTION_POLICIES if set(required_inputs(name)) <= set(COMPUTED_INPUTS)
)


@attrs.frozen(eq=False)
class PoolOutputs:
    """What a policy may need of the model's predictions on the pool, row-aligned with serials."""

    serials: SerialArray
    probs: FloatArray
    features: FloatArray
    ood: FloatArray | None
    responsibilities: FloatArray | None

    @property
    def predicted(self) -> npt.NDArray[np.int64]:
        """The class index q(y|x) favours for each row."""
        return np.asarray(self.probs.argmax(axis=1), dtype=np.int64)


def predict_pool(model: ModelPredictor, pool: Samples, chunk: int = PREDICT_CHUNK) -> PoolOutputs:
    """The model's outputs on every pool row, predicted `chunk` rows at a time."""
    parts = [model.predict(pool.x[start : start + chunk]) for start in range(0, len(pool), chunk)]
    if not parts:
        raise AcquisitionError("the pool is empty; a workspace pool needs at least one sample")

    def stacked(name: str) -> FloatArray | None:
        values = [getattr(part, name) for part in parts]
        if any(value is None for value in values):
            return None
        joined: FloatArray = np.concatenate(values)
        return joined

    probs, features = stacked("class_probs"), stacked("latent_mean")
    assert probs is not None and features is not None
    return PoolOutputs(
        serials=np.asarray(pool.serials, np.int64),
        probs=probs,
        features=features,
        ood=stacked("ood_score"),
        responsibilities=stacked("responsibilities"),
    )


def check_policy(policy: str) -> str:
    """`policy` if the model can serve it; AcquisitionError listing the ones it can."""
    if policy not in QUERY_POLICIES:
        extra = " (it needs model outputs not computed yet)" if policy in SELECTION_POLICIES else ""
        raise AcquisitionError(
            f"policy {policy!r} is not available{extra}; choose one of {', '.join(QUERY_POLICIES)}"
        )
    return policy


def choose(
    outputs: PoolOutputs, labelled: SerialArray, policy: str, k: int, seed: int = 0
) -> Selection:
    """The policy's next `k` unlabelled serials of the pool, best or first picked first."""
    check_policy(policy)
    if "ood" in required_inputs(policy) and outputs.ood is None:
        raise AcquisitionError(
            f"policy {policy!r} needs the component-to-label map, which the model gets from "
            "training with labels; label some samples, train, then query again"
        )
    request = AcquisitionRequest(
        serials=outputs.serials,
        k=k,
        seed=seed,
        labelled_serials=labelled,
        probs=outputs.probs,
        features=outputs.features,
        ood=outputs.ood,
        responsibilities=outputs.responsibilities,
    )
    return select(policy, request)


def label_rows(serials: SerialArray, labels: LabelSet) -> tuple[SerialArray, SerialArray]:
    """(pool rows, class indices) of the labelled serials that are in the pool."""
    labelled, classes = labels.serials(), labels.class_indices()
    order = np.argsort(serials, kind="stable")
    positions = np.searchsorted(serials[order], labelled)
    positions = np.minimum(positions, len(serials) - 1)
    found = serials[order][positions] == labelled
    return order[positions[found]].astype(np.int64), classes[found].astype(np.int64)


def tau_of(
    outputs: PoolOutputs, labels: LabelSet, num_classes: int, alpha0: float
) -> FloatArray | None:
    """The component-to-label map from the labelled pool rows; None without labels or mixture."""
    if outputs.responsibilities is None or len(labels) == 0:
        return None
    rows, classes = label_rows(outputs.serials, labels)
    if rows.size == 0:
        return None
    return component_label_map(outputs.responsibilities[rows], classes, num_classes, alpha0)


@attrs.frozen
class QueryRow:
    """One sample to label: its serial, the policy's score and the class the model predicts.

    `text` is the message of a text dataset (None for images and plain vectors), so that a
    person reads what they label.
    """

    serial: int
    score: float  # +inf for a k-center pick with no centre yet
    predicted: str
    certainty: float  # max_y q(y|x)
    text: str | None = None


@attrs.frozen
class QueryBatch:
    """The next batch for a workspace, and what it was computed from."""

    policy: str
    k: int
    rows: tuple[QueryRow, ...]
    labels: int  # labels in the store when the batch was chosen
    pool_size: int
    trained: bool  # False: the model was never trained (a fresh one from the spec was used)


def batch_rows(
    outputs: PoolOutputs,
    selection: Selection,
    vocabulary: ClassVocabulary,
    texts: Sequence[str] | None = None,
) -> tuple[QueryRow, ...]:
    """The selection as rows with predicted class names and certainties; `texts` (one per
    selected serial, in selection order) are the messages of a text dataset."""
    order = np.argsort(outputs.serials, kind="stable")
    positions = order[np.searchsorted(outputs.serials[order], selection.serials)]
    predicted = outputs.predicted[positions]
    certainty = outputs.probs[positions].max(axis=1)
    messages: Sequence[str | None] = (
        list(texts) if texts is not None else [None] * len(selection.serials)
    )
    if len(messages) != len(selection.serials):
        raise AcquisitionError(
            f"{len(messages)} texts for {len(selection.serials)} selected samples; give one "
            "text per selected serial"
        )
    return tuple(
        QueryRow(
            serial=int(serial),
            score=float(score) if math.isfinite(float(score)) else math.inf,
            predicted=vocabulary.names[int(cls)],
            certainty=float(cert),
            text=text,
        )
        for serial, score, cls, cert, text in zip(
            selection.serials, selection.scores, predicted, certainty, messages, strict=True
        )
    )


@attrs.define
class QueryService:
    """Chooses the next samples to label in a workspace."""

    repository: ModelRepository
    workspaces: WorkspaceService
    predict_chunk: int = PREDICT_CHUNK

    def model(self, workspace: Workspace) -> SsvaeModel:
        """The workspace's trained model, or a fresh one from its spec before the first round."""
        if workspace.has_model:
            return self.repository.load(workspace.checkpoint_dir)
        return self.repository.create(workspace.spec)

    def next_batch(
        self, workspace: Workspace, store: LabelStore, policy: str, k: int, seed: int = 0
    ) -> QueryBatch:
        """The `k` unlabelled pool samples `policy` ranks first for the workspace's model."""
        check_policy(policy)
        if k < 1:
            raise AcquisitionError(f"k = {k} is invalid: ask for at least 1 sample")
        if "ood" in required_inputs(policy) and not workspace.has_model:
            raise AcquisitionError(
                f"policy {policy!r} needs the component-to-label map of a trained model; "
                "label some samples and run ssvae train first"
            )
        labels = store.load()
        model = self.model(workspace)
        pool = self.workspaces.pool(workspace)
        outputs = predict_pool(model, pool, self.predict_chunk)
        selection = choose(outputs, labels.serials(), policy, k, seed)
        catalog = text_catalog(self.workspaces.source)
        texts = None
        if catalog is not None and len(selection.serials):
            texts = catalog.texts(POOL_SPLIT, np.asarray(selection.serials, np.int64))
        return QueryBatch(
            policy=policy,
            k=k,
            rows=batch_rows(outputs, selection, labels.vocabulary, texts),
            labels=len(labels),
            pool_size=len(pool),
            trained=workspace.has_model,
        )
