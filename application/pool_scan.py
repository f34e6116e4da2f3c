"""The model's outputs on a workspace pool, computed a chunk at a time.

`predict_pool` and `pool_scores` give the model's predictions and scores (BALD, the
per-sample ELBO) on pool rows, `PREDICT_CHUNK` rows per call, so the outputs of one chunk live
at a time. `scan_pool` walks the pool's chunks and keeps, in a `PoolScan`, only what a policy
needs: a policy that ranks samples by one score (margin, entropy, bald, ...) keeps the k best
unlabelled rows seen so far, which are the k best of the pool at the end; the others keep a
few numbers a row (latent means for k-center and cold_start, encodings projected to a fixed
width for typiclust), never the input vectors or the (n, C x d) encodings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.acquisition import POLICIES, AcquisitionError
from ssvae.domain.data import Samples
from ssvae.domain.diversity import TYPICLUST_MAX_DIMS, project_down, validate_scores
from ssvae.domain.model import FloatArray, ModelPredictor, Predictions, SsvaeModel
from ssvae.domain.ports import DEFAULT_SCORE_SAMPLES, MODEL_SCORES, ModelScorer
from ssvae.domain.query import required_inputs

SerialArray = npt.NDArray[np.int64]
PREDICT_CHUNK = 8192  # pool rows per predict call: the outputs of one chunk live at a time
# Input vectors wider than this are kept as a seeded Johnson-Lindenstrauss projection (novelty
# compares them by cosine distance): a 784-pixel image costs 256 numbers, not 784.
INPUT_DIMS = 256


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
        if any(value is None for value in values):
            return None
        return values[0] if len(values) == 1 else np.concatenate(values)

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
    first_row: int = 0,
) -> dict[str, FloatArray]:
    """The model scores `names` of every pool row, computed `chunk` rows at a time; `pool`
    starts at row `first_row` of a larger pool walked in chunks (it seeds the draws)."""
    if len(pool) == 0:
        raise AcquisitionError("the pool is empty; a workspace pool needs at least one sample")
    parts = [
        model.model_scores(
            pool.x[start : start + chunk],
            names,
            samples=samples,
            seed=chunk_seed(seed, first_row + start),
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
    first_row: int = 0,
) -> dict[str, FloatArray]:
    """The model scores `policy` needs on the pool ({} for most policies), as PoolOutputs
    fields; AcquisitionError when the model cannot compute them."""
    names = model_inputs(policy)
    if not names:
        return {}
    check_scorer(model, policy)
    assert isinstance(model, ModelScorer)
    return score_pool(model, pool, names, chunk, samples, seed, first_row)


def check_scorer(model: object, policy: str) -> None:
    """AcquisitionError when `policy` needs model scores that `model` cannot compute."""
    names = model_inputs(policy)
    if names and not isinstance(model, ModelScorer):
        raise AcquisitionError(
            f"policy {policy!r} needs {', '.join(names)} scores, which this model cannot "
            "compute; choose a policy that works on predictions, such as margin"
        )


# Policies that rank rows by one score: the field it is computed from. Scored chunk by chunk,
# they keep only the k best unlabelled rows.
RANKED_BY: Mapping[str, str] = {
    "least_confidence": "probs",
    "margin": "probs",
    "entropy": "probs",
    "tau_ood": "ood",
    "bald": "bald",
    "elbo": "negative_elbo",
}
_OUTPUT_FIELDS = (
    "probs",
    "features",
    "ood",
    "responsibilities",
    "encodings",
    "inputs",
    "bald",
    "negative_elbo",
)


def stacked_outputs(parts: Sequence[PoolOutputs]) -> PoolOutputs:
    """The rows of `parts`, one after another (a field is None when any part lacks it)."""
    values: dict[str, Any] = {}
    for name in _OUTPUT_FIELDS:
        arrays = [getattr(part, name) for part in parts]
        values[name] = None if any(a is None for a in arrays) else np.concatenate(arrays)
    return PoolOutputs(serials=np.concatenate([p.serials for p in parts]), **values)


def joined_outputs(parts: list[PoolOutputs]) -> PoolOutputs:
    """`stacked_outputs(parts)`, emptying `parts` as their rows are copied: each part goes once
    copied, so the resident peak is the joined rows and one part, not every row twice (the
    latent means of 10M rows are 1.3 GB). Parts whose fields disagree in width or presence are
    stacked as `stacked_outputs` stacks them."""
    names = ("serials", *_OUTPUT_FIELDS)
    fields = [[getattr(part, name) for part in parts] for name in names]
    if any(
        any(a is None for a in arrays) is not all(a is None for a in arrays)
        or len({np.shape(a)[1:] for a in arrays}) > 1
        for arrays in fields
    ):
        joined = stacked_outputs(parts)
        parts.clear()
        return joined
    total = sum(len(part.serials) for part in parts)
    values: dict[str, Any] = {
        name: None
        if arrays[0] is None
        else np.empty((total, *np.shape(arrays[0])[1:]), np.result_type(*arrays))
        for name, arrays in zip(names, fields, strict=True)
    }
    del fields  # the parts' arrays would outlive the parts
    # The last part first: the most recent allocations are the ones the allocator can hand
    # back to the system as soon as they are freed. The joined arrays' pages are committed only
    # as they are written, so resident memory grows by a part as it shrinks by one.
    end = total
    while parts:
        part = parts.pop()
        rows = len(part.serials)
        for name, value in values.items():
            if value is not None:
                value[end - rows : end] = getattr(part, name)
        end -= rows
        del part
    return PoolOutputs(**values)


def output_rows(outputs: PoolOutputs, rows: npt.NDArray[np.intp]) -> PoolOutputs:
    """The outputs of `rows` only."""
    values: dict[str, Any] = {
        name: None if getattr(outputs, name) is None else getattr(outputs, name)[rows]
        for name in _OUTPUT_FIELDS
    }
    return PoolOutputs(serials=outputs.serials[rows], **values)


@attrs.define
class PoolScan:
    """What a policy keeps of the model's outputs while the pool is scored chunk by chunk.

    A ranked policy (RANKED_BY) keeps the k best unlabelled rows so far (ties to the lower
    serial, as `select_top_k`): the k best of the pool are among them at the end. Other
    policies keep only the fields they read, the encodings projected to TYPICLUST_MAX_DIMS
    with the seed `typiclust` projects them with, so their rows agree with the whole pool's.
    """

    policy: str
    k: int
    seed: int
    labelled: SerialArray  # labelled serials, sorted
    rows: int = 0
    _kept: list[PoolOutputs] = attrs.field(factory=list)
    _best: PoolOutputs | None = None
    _best_scores: npt.NDArray[np.float64] | None = None
    # The pool's rows, when known: the kept fields are then copied into arrays of that many
    # rows as the chunks come, so no chunk outlives its copy. Freed chunks need not go back to
    # the system (the allocator keeps them for reuse), so a join at the end could hold every
    # row twice in resident memory even after the chunks are gone.
    expected: int | None = None
    _joined: PoolOutputs | None = None
    _written: int = 0

    def add(self, outputs: PoolOutputs) -> None:
        """Take in the outputs of one chunk of the pool."""
        self.rows += len(outputs.serials)
        if self.policy in RANKED_BY:
            self._rank(outputs)
        else:
            part = self._slim(outputs)
            if not self._fill(part):
                self._kept.append(part)

    def _fill(self, part: PoolOutputs) -> bool:
        """Copy `part` into the pool-sized arrays (made at the first part); False when it
        does not fit them (no pool size, more rows than it, or fields unlike the first part's),
        the rows copied so far then being kept as a part like any other."""
        if self.expected is None or self._kept:
            return False
        names = ("serials", *_OUTPUT_FIELDS)
        if self._joined is None:
            empty: dict[str, Any] = {
                name: None
                if getattr(part, name) is None
                else np.empty(
                    (self.expected, *np.shape(getattr(part, name))[1:]),
                    np.asarray(getattr(part, name)).dtype,
                )
                for name in names
            }
            self._joined = PoolOutputs(**empty)
        rows, start = len(part.serials), self._written
        pairs = [(getattr(self._joined, name), getattr(part, name)) for name in names]
        if start + rows > self.expected or any(
            (held is None) is not (value is None)
            or (
                held is not None
                and (held.shape[1:] != np.shape(value)[1:] or held.dtype != np.asarray(value).dtype)
            )
            for held, value in pairs
        ):
            self._kept.append(output_rows(self._joined, np.arange(start)))
            self._joined = None
            return False
        for held, value in pairs:
            if held is not None:
                held[start : start + rows] = value
        self._written += rows
        return True

    def outputs(self) -> PoolOutputs:
        """The kept rows: what `choose` needs to pick as it would from the whole pool."""
        if self.rows == 0:
            raise AcquisitionError("the pool is empty; a workspace pool needs at least one sample")
        if self.policy in RANKED_BY:
            assert self._best is not None
            return self._best
        if self._joined is not None:
            if self._written == self.expected:
                return self._joined
            # Fewer rows than the pool said: the rows written, without the rest.
            self._kept.insert(0, output_rows(self._joined, np.arange(self._written)))
            self._joined = None
        if len(self._kept) > 1:
            self._kept = [joined_outputs(self._kept)]
        return self._kept[0]

    def _scores(self, outputs: PoolOutputs) -> npt.NDArray[np.float64]:
        field = RANKED_BY[self.policy]
        if field == "probs":
            return POLICIES[self.policy](outputs.probs, self.seed)
        value = getattr(outputs, field)
        if value is None:  # choose() names what is missing
            return np.zeros(len(outputs.serials))
        return validate_scores(value, len(outputs.serials), f"{field} scores")

    def _rank(self, outputs: PoolOutputs) -> None:
        scores = self._scores(outputs)
        free = np.flatnonzero(~np.isin(outputs.serials, self.labelled))
        # The chunk's own k best first, so only k of its rows are copied.
        if free.size > self.k:
            kth = np.partition(-scores[free], self.k - 1)[self.k - 1]
            free = free[-scores[free] <= kth]  # ties at the k-th score all stay
        chunk, chunk_scores = output_rows(outputs, free), scores[free]
        if self._best is not None and self._best_scores is not None:
            chunk = stacked_outputs([self._best, chunk])
            chunk_scores = np.concatenate([self._best_scores, chunk_scores])
        # lexsort sorts by its last key first: descending score, then ascending serial.
        best = np.lexsort((chunk.serials, -chunk_scores))[: self.k]
        self._best, self._best_scores = output_rows(chunk, best), chunk_scores[best]

    def _slim(self, outputs: PoolOutputs) -> PoolOutputs:
        needs = set(required_inputs(self.policy))
        if self.policy == "cold_start":  # it uses them when the model has them
            needs.add("responsibilities")
        empty = np.zeros((len(outputs.serials), 0), np.float32)
        values: dict[str, Any] = {
            name: getattr(outputs, name) if name in needs else None for name in _OUTPUT_FIELDS
        }
        values["probs"] = outputs.probs if "probs" in needs else empty
        values["features"] = outputs.features if "features" in needs else empty
        if self.policy == "typiclust" and outputs.encodings is not None:
            projected = project_down(outputs.encodings, TYPICLUST_MAX_DIMS, self.seed)
            values["encodings"] = np.asarray(projected, np.float32)
        return PoolOutputs(serials=outputs.serials, **values)


def scan_pool(
    model: SsvaeModel,
    chunks: Iterable[Samples],
    policy: str,
    k: int,
    labelled: SerialArray,
    *,
    seed: int = 0,
    chunk: int = PREDICT_CHUNK,
    score_samples: int = DEFAULT_SCORE_SAMPLES,
    rows: int | None = None,
) -> PoolScan:
    """The model's outputs on the pool `chunks`, reduced to what `policy` needs to pick `k`;
    `rows`, the pool's size when known, lets the kept fields be written in place."""
    scan = PoolScan(policy, k, seed, np.sort(np.asarray(labelled, np.int64)), expected=rows)
    needs_inputs = "inputs" in required_inputs(policy)
    for samples in chunks:
        scores = pool_scores(model, samples, policy, chunk, score_samples, seed, scan.rows)
        scan.add(predict_pool(model, samples, chunk, needs_inputs).with_scores(scores))
    return scan
