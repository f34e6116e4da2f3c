"""Use case: the next batch to label, for a model, a label store and an acquisition policy.

The model predicts the whole pool in chunks (bounded memory); the outputs fill an
`AcquisitionRequest` (class probabilities, latent means, OOD scores, responsibilities) and
`ssvae.domain.query.select` picks the batch. Policies that need scores only the model itself
can compute (bald, elbo) get them from its `ModelScorer` port, in chunks too. The same
functions serve the simulated-oracle experiments (`ssvae.application.simulate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.workspace import WorkspaceService
from ssvae.domain.acquisition import AcquisitionError
from ssvae.domain.data import Samples
from ssvae.domain.diversity import project_down
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import (
    FloatArray,
    ModelPredictor,
    ModelRepository,
    Predictions,
    SsvaeModel,
    component_label_map,
)
from ssvae.domain.policies import POLICY_NAMES, served_by
from ssvae.domain.ports import (
    DEFAULT_SCORE_SAMPLES,
    MODEL_SCORES,
    LabelStore,
    ModelScorer,
    text_catalog,
)
from ssvae.domain.query import (
    AcquisitionRequest,
    Selection,
    required_inputs,
    select,
)
from ssvae.domain.workspace import Workspace

SerialArray = npt.NDArray[np.int64]
POOL_SPLIT = "train"  # a workspace's pool is drawn from this split
PREDICT_CHUNK = 8192  # pool rows per predict call: the outputs of one chunk live at a time
# Input vectors wider than this are kept as a seeded Johnson-Lindenstrauss projection (novelty
# compares them by cosine distance): a 784-pixel image costs 256 numbers, not 784.
INPUT_DIMS = 256

# The request fields the model's predictions provide; BALD and the per-sample ELBO are
# computed on demand by the model's ModelScorer port (a pass over the pool with z draws).
PREDICTED_INPUTS = ("probs", "features", "encodings", "ood", "responsibilities", "inputs")
COMPUTED_INPUTS = (*PREDICTED_INPUTS, *MODEL_SCORES)
QUERY_POLICIES: tuple[str, ...] = served_by(COMPUTED_INPUTS)
"""The policies `ssvae query` and `ssvae simulate` serve."""
PREDICTION_POLICIES: tuple[str, ...] = served_by(PREDICTED_INPUTS)
"""The policies the predictions alone serve (the dashboard's queue, which holds no model)."""


@attrs.frozen(eq=False)
class PoolOutputs:
    """What a policy may need of the model's predictions on the pool, row-aligned with serials."""

    serials: SerialArray
    probs: FloatArray
    features: FloatArray
    ood: FloatArray | None
    responsibilities: FloatArray | None
    encodings: FloatArray | None = None  # (n, e) see Predictions.encoding
    inputs: FloatArray | None = None  # (n, <= INPUT_DIMS) the input vectors, see input_vectors
    bald: FloatArray | None = None  # only when a policy needed it (see pool_scores)
    negative_elbo: FloatArray | None = None

    def with_scores(self, scores: Mapping[str, FloatArray]) -> PoolOutputs:
        """These outputs with the model scores of `scores` (see pool_scores) filled in."""
        return attrs.evolve(
            self,
            bald=scores.get("bald", self.bald),
            negative_elbo=scores.get("negative_elbo", self.negative_elbo),
        )

    @property
    def predicted(self) -> npt.NDArray[np.int64]:
        """The class index q(y|x) favours for each row."""
        return np.asarray(self.probs.argmax(axis=1), dtype=np.int64)


def input_vectors(x: npt.ArrayLike, chunk: int = PREDICT_CHUNK) -> FloatArray:
    """Samples `x` (n, ...) flattened, projected to INPUT_DIMS when wider (the same matrix for
    every call, so chunks of one pool agree), `chunk` rows at a time."""
    flat = np.asarray(x, np.float32).reshape(np.shape(x)[0], -1)
    parts = [
        np.asarray(project_down(flat[start : start + chunk], INPUT_DIMS, seed=0), np.float32)
        for start in range(0, flat.shape[0], chunk)
    ]
    if not parts:
        return np.zeros((0, min(flat.shape[1], INPUT_DIMS)), np.float32)
    joined: FloatArray = np.concatenate(parts)
    return joined


def predict_chunks(
    model: ModelPredictor, x: npt.NDArray[np.float32], chunk: int = PREDICT_CHUNK
) -> Predictions:
    """The model's predictions on every row of `x`, `chunk` rows at a time (the outputs of one
    chunk live at a time); an output is None when any chunk lacks it."""
    parts = [model.predict(x[start : start + chunk]) for start in range(0, len(x), chunk)]
    if not parts:
        raise AcquisitionError("the pool is empty; a workspace pool needs at least one sample")

    def stacked(name: str) -> Any:
        values = [getattr(part, name) for part in parts]
        return None if any(value is None for value in values) else np.concatenate(values)

    return Predictions(
        class_probs=stacked("class_probs"),
        latent_mean=stacked("latent_mean"),
        certainty=stacked("certainty"),
        tau_probs=stacked("tau_probs"),
        ood_score=stacked("ood_score"),
        responsibilities=stacked("responsibilities"),
        encoding=stacked("encoding"),
    )


def predict_pool(
    model: ModelPredictor, pool: Samples, chunk: int = PREDICT_CHUNK, with_inputs: bool = False
) -> PoolOutputs:
    """The model's outputs on every pool row, predicted `chunk` rows at a time; with the
    projected input vectors when `with_inputs` (only novelty reads them: the projection is
    a pass over the whole pool that other policies need not pay for)."""
    predictions = predict_chunks(model, pool.x, chunk)
    return PoolOutputs(
        serials=np.asarray(pool.serials, np.int64),
        probs=predictions.class_probs,
        features=predictions.latent_mean,
        ood=predictions.ood_score,
        responsibilities=predictions.responsibilities,
        encodings=predictions.encoding,
        inputs=input_vectors(pool.x, chunk) if with_inputs else None,
    )


def model_inputs(policy: str) -> tuple[str, ...]:
    """The model scores (of MODEL_SCORES) policy `policy` needs: () for most policies."""
    return tuple(name for name in required_inputs(policy) if name in MODEL_SCORES)


def chunk_seed(seed: int, start: int) -> int:
    """The scoring seed of the pool chunk that starts at row `start`: its own random stream."""
    return int(np.random.SeedSequence([seed, start]).generate_state(1)[0])


def score_pool(
    model: ModelScorer,
    pool: Samples,
    names: Sequence[str],
    chunk: int = PREDICT_CHUNK,
    samples: int = DEFAULT_SCORE_SAMPLES,
    seed: int = 0,
) -> dict[str, FloatArray]:
    """The model scores `names` of every pool row, computed `chunk` rows at a time."""
    if len(pool) == 0:
        raise AcquisitionError("the pool is empty; a workspace pool needs at least one sample")
    parts = [
        model.model_scores(
            pool.x[start : start + chunk],
            names,
            samples=samples,
            seed=chunk_seed(seed, start),
        )
        for start in range(0, len(pool), chunk)
    ]
    return {
        name: np.concatenate([np.asarray(part[name], np.float32) for part in parts])
        for name in names
    }


def pool_scores(
    model: object,
    pool: Samples,
    policy: str,
    chunk: int = PREDICT_CHUNK,
    samples: int = DEFAULT_SCORE_SAMPLES,
    seed: int = 0,
) -> dict[str, FloatArray]:
    """The model scores `policy` needs on the pool ({} for most policies), as PoolOutputs
    fields; AcquisitionError when the model cannot compute them."""
    names = model_inputs(policy)
    if not names:
        return {}
    if not isinstance(model, ModelScorer):
        raise AcquisitionError(
            f"policy {policy!r} needs {', '.join(names)} scores, which this model cannot "
            "compute; choose a policy that works on predictions, such as margin"
        )
    return score_pool(model, pool, names, chunk, samples, seed)


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
        pool = self.workspaces.pool(workspace)
        # Model scores first: a model that cannot serve the policy fails before the predictions.
        scores = pool_scores(model, pool, policy, self.predict_chunk, self.score_samples, seed)
        needs_inputs = "inputs" in required_inputs(policy)
        outputs = predict_pool(model, pool, self.predict_chunk, needs_inputs).with_scores(scores)
        selection = choose(
            outputs, labels.serials(), policy, k, seed, labelled_classes=labels.class_indices()
        )
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
