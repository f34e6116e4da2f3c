"""Use case: the next batch to label, for a model, a label store and an acquisition policy.

The model predicts the pool in chunks (`ssvae.application.pool_scan`); the outputs fill an
`AcquisitionRequest` (class probabilities, latent means, OOD scores, responsibilities) and
`ssvae.domain.query.select` picks the batch. Policies that need scores only the model itself
can compute (bald, elbo) get them from its `ModelScorer` port, in chunks too. The same
functions serve the simulated-oracle experiments (`ssvae.application.simulate`).

`ssvae query` never holds the pool: it reads it a chunk at a time (`PoolScan`) and keeps only
what its policy needs (see `ssvae.application.pool_scan`). The batch is the one the policy
picks from the whole pool held in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from ssvae.application.pool_scan import (
    PREDICT_CHUNK,
    RANKED_BY,
    PoolOutputs,
    SerialArray,
    check_scorer,
    model_inputs,
    predict_pool,
    scan_pool,
)
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import FloatArray, ModelRepository, SsvaeModel, component_label_map
from ssvae.domain.policies import POLICY_NAMES, served_by
from ssvae.domain.ports import DEFAULT_SCORE_SAMPLES, MODEL_SCORES, LabelStore, text_catalog
from ssvae.domain.query import (
    TYPICAL_LABELS_PER_CLASS,
    AcquisitionRequest,
    Selection,
    required_inputs,
    select,
)
from ssvae.domain.workspace import Workspace

POOL_SPLIT = "train"  # a workspace's pool is drawn from this split

# The request fields the model's predictions provide; BALD and the per-sample ELBO are
# computed on demand by the model's ModelScorer port (a pass over the pool with z draws).
PREDICTED_INPUTS = ("probs", "features", "encodings", "ood", "responsibilities", "inputs")
COMPUTED_INPUTS = (*PREDICTED_INPUTS, *MODEL_SCORES)
QUERY_POLICIES: tuple[str, ...] = served_by(COMPUTED_INPUTS)
"""The policies `ssvae query` and `ssvae simulate` serve."""
PREDICTION_POLICIES: tuple[str, ...] = served_by(PREDICTED_INPUTS)
"""The policies the predictions alone serve (the dashboard's queue, which holds no model)."""


def check_policy(policy: str) -> str:
    """`policy` if the model can serve it; AcquisitionError listing the ones it can."""
    if policy not in QUERY_POLICIES:
        extra = " (it needs model outputs not computed yet)" if policy in POLICY_NAMES else ""
        raise AcquisitionError(
            f"policy {policy!r} is not available{extra}; choose one of {', '.join(QUERY_POLICIES)}"
        )
    return policy


def choose(
    outputs: PoolOutputs,
    labelled: SerialArray,
    policy: str,
    k: int,
    seed: int = 0,
    labelled_classes: SerialArray | None = None,
) -> Selection:
    """The policy's next `k` unlabelled serials of the pool, best or first picked first.

    `labelled_classes` (the class index of each labelled serial) serves novelty.
    """
    check_policy(policy)
    if "ood" in required_inputs(policy) and outputs.ood is None:
        raise AcquisitionError(
            f"policy {policy!r} needs the component-to-label map, which the model gets from "
            "training with labels; label some samples, train, then query again"
        )
    for name in model_inputs(policy):
        if getattr(outputs, name) is None:
            raise AcquisitionError(
                f"policy {policy!r} needs the model's {name} scores on the pool, which these "
                f"outputs lack; choose one of {', '.join(PREDICTION_POLICIES)} here, or use "
                "ssvae query, which computes them"
            )
    request = AcquisitionRequest(
        serials=outputs.serials,
        k=k,
        seed=seed,
        labelled_serials=labelled,
        probs=outputs.probs,
        features=outputs.features,
        encodings=outputs.encodings,
        ood=outputs.ood,
        bald=outputs.bald,
        negative_elbo=outputs.negative_elbo,
        responsibilities=outputs.responsibilities,
        inputs=outputs.inputs,
        labelled_classes=labelled_classes,
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


def ranked_policy(policy: str, labelled_in_pool: int, classes: int) -> str:
    """The policy that picks for `policy` given the labels: typiclust_margin is typiclust
    below TYPICAL_LABELS_PER_CLASS labels a class, then margin (as `select` decides)."""
    if policy != "typiclust_margin":
        return policy
    return "typiclust" if labelled_in_pool < TYPICAL_LABELS_PER_CLASS * classes else "margin"


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
    score_samples: int = DEFAULT_SCORE_SAMPLES  # z draws per sample for bald and elbo

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
        if {"ood", "bald"} & set(required_inputs(policy)) and not workspace.has_model:
            raise AcquisitionError(
                f"policy {policy!r} needs the component-to-label map of a trained model; "
                "label some samples and run ssvae train first"
            )
        labels = store.load()
        model = self.model(workspace)
        # A model that cannot serve the policy fails before the pool is read.
        check_scorer(model, policy)
        serials = self.workspaces.pool_serials(workspace)
        in_pool = int(np.isin(labels.serials(), serials).sum())
        pool_rows = len(serials)
        del serials  # a copy of the pool's serials (80 MB at 10M rows); the scan keeps its own
        picking = ranked_policy(policy, in_pool, model.spec.network.num_classes)
        scan = scan_pool(
            model,
            self.workspaces.pool_chunks(workspace, self.predict_chunk),
            picking,
            k,
            labels.serials(),
            seed=seed,
            chunk=self.predict_chunk,
            score_samples=self.score_samples,
            rows=pool_rows,
        )
        picked = choose(
            scan.outputs(),
            labels.serials(),
            picking,
            k,
            seed,
            labelled_classes=labels.class_indices(),
        )
        selection = Selection(policy, picked.serials, picked.scores)
        # A ranked policy's kept rows are the picked ones and show them; the other policies
        # kept a few fields of every row (the latent means of 10M rows are 1.3 GB), which go
        # before the picked rows are read and predicted again.
        kept = scan.outputs() if scan.policy in RANKED_BY else None
        pool_size = scan.rows
        del scan
        return QueryBatch(
            policy=policy,
            k=k,
            rows=self._rows(model, selection, labels.vocabulary, kept),
            labels=len(labels),
            pool_size=pool_size,
            trained=workspace.has_model,
        )

    def _rows(
        self,
        model: SsvaeModel,
        selection: Selection,
        vocabulary: ClassVocabulary,
        kept: PoolOutputs | None,
    ) -> tuple[QueryRow, ...]:
        """The picked samples as rows, from the outputs `kept` of them when given (a ranked
        policy's), else from the picked samples read and predicted again."""
        chosen = np.asarray(selection.serials, np.int64)
        if chosen.size == 0:
            return ()
        source = self.workspaces.source
        if kept is not None:
            shown = kept
        else:
            shown = predict_pool(model, source.load(POOL_SPLIT, chosen), self.predict_chunk)
        catalog = text_catalog(source)
        texts = None if catalog is None else catalog.texts(POOL_SPLIT, chosen)
        return batch_rows(shown, selection, vocabulary, texts)
