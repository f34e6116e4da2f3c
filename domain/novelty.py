"""Novelty in the user's own pool: how unlike every labelled sample each sample is.

In a real pool, messages of systems nobody has labelled yet sit unlabelled among the others,
and the model trains on them too. The classifier's certainty then fails as a novelty signal
(it puts unseen messages into known classes with certainty 0.95), and so do the mixture
components (they hold style, shared by every class). What stays true is that a sample of an
unseen class is far from every labelled sample, in the input and in what the encoder says of
it, and lacks what the labelled samples have in common; a sample of a known class has a
labelled neighbour of its class somewhere near, and shares its class's traits.

Two parts, each measured against the labelled samples themselves:

1. Distance. For feature spaces s = 1..S (the input vectors and the SSVAE's encodings):

       d_s(x) = cosine distance from x to its nearest labelled sample (a labelled sample: to
                its nearest *other* labelled sample, leave-one-out)
       u_s(x) = log(1 + d_s(x) / m_s),  m_s = the median of d_s over the labelled samples
       w_s    = max(a_s - 1/C, 0)^2, normalised to sum 1, where a_s is the leave-one-out 1-NN
                accuracy of the labelled samples in space s (C classes among them)
       D(x)   = sum_s w_s u_s(x)

   m_s makes the spaces' distances comparable; log1p keeps one space's outlier from deciding
   alone, and exact duplicates (distance 0) finite. The weights trust a space as far as it
   separates the labelled classes: a model trained on 5 labels a class encodes classes less
   cleanly than the input does (weight about 0.1), on 50 about as well (0.5).

2. Contrast. A linear logistic model tells the labelled samples from the unlabelled pool
   (positive-unlabelled learning) in the centred unit input vectors, strongly regularised:
   P(x) = -its logit. Nearest neighbours see one labelled sample at a time; the contrast sees
   what they share (a system's vocabulary, a digit's strokes), so a known class's sample
   unlike any one label still scores low. Labelled samples are scored by models fitted
   without them (k-fold cross-fitting), so their scores are honest calibration values.

   score(x) = (z(D) + z(P)) / 2,  z(v) = (v - median of v over the labelled) / its MAD

Measured with benchmarks/novelty.py (benchmarks/README.md): on Loghub and MNIST with
held-out classes in the pool, the sum is ahead of either part alone and of the nearest
labelled sample in the input.

The threshold is split-conformal: the ceil((L + 1)(1 - alpha))-th smallest of the L
labelled samples' (out-of-sample) scores. When the labelled samples are a random draw of the
known classes, a new sample of those classes passes it with probability at most about alpha,
so "unknown" is shown above it. Labels chosen by an active-learning policy are not a random
draw: the threshold is then only a guide (the p-value below says how unusual a sample is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.acquisition import AcquisitionError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_ALPHA = 0.05  # the share of known-class samples allowed above the threshold
MIN_LABELLED = 2  # leave-one-out needs another labelled sample
_BLOCK_ELEMENTS = 4_000_000  # distance-matrix entries per block: bounded memory
# The contrast: its L2 penalty on the weights, with each side's sample weights summing to 1/2
# (the same value for any pool size; 3e-3 is the middle of the range 1e-3 to 1e-2 that did
# equally well on Loghub with 5 labels a class); the unlabelled rows it fits on (a seeded
# sample past this many: the cost stays bounded however large the pool); its folds.
CONTRAST_PENALTY = 3e-3
CONTRAST_NEGATIVES = 4096
CONTRAST_FOLDS = 5


@attrs.frozen(eq=False)
class Novelty:
    """Novelty scores of every row, the calibrated threshold and how they were made.

    `labelled_scores` are the labelled rows' leave-one-out scores (the calibration set);
    `weights` one per feature space, in the order given.
    """

    scores: FloatArray
    threshold: float
    alpha: float
    weights: tuple[float, ...]
    labelled_scores: FloatArray

    @property
    def unknown(self) -> BoolArray:
        """True where the score passes the threshold: shown as an "unknown" prediction."""
        return np.asarray(self.scores > self.threshold, np.bool_)

    def p_values(self) -> FloatArray:
        """(1 + #{labelled scores >= score}) / (L + 1): small where a row is unusual."""
        calibration = np.sort(self.labelled_scores)
        at_least = calibration.shape[0] - np.searchsorted(calibration, self.scores, side="left")
        return np.asarray((1.0 + at_least) / (calibration.shape[0] + 1.0), np.float64)


def _unit_rows(features: npt.ArrayLike, what: str) -> FloatArray:
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[1] < 1:
        raise AcquisitionError(
            f"{what} must be a 2-D array (samples, dimensions), got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise AcquisitionError(f"{what} must be real numbers, got dtype {array.dtype}")
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise AcquisitionError(f"{what} contain NaN or infinity; check the model and the data")
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    # A zero row has no direction: it is as far (distance 1) from every row as orthogonal ones.
    unit: FloatArray = np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)
    return unit


def nearest_labelled(
    features: npt.ArrayLike, labelled: npt.ArrayLike, what: str = "features"
) -> tuple[FloatArray, IntArray]:
    """(cosine distance to the nearest labelled row, that row's index) for every row.

    A labelled row's nearest is the nearest *other* labelled row (leave-one-out). Computed in
    blocks, so memory stays bounded whatever the pool's size. Ties go to the lower row.
    """
    unit = _unit_rows(features, what)
    mask = np.asarray(labelled, np.bool_)
    if mask.shape != (unit.shape[0],):
        raise AcquisitionError(
            f"the labelled mask has shape {mask.shape} for {unit.shape[0]} rows; give one "
            "flag per row"
        )
    rows = np.flatnonzero(mask)
    if rows.size < MIN_LABELLED:
        raise AcquisitionError(
            f"novelty compares samples with the labelled ones and needs at least {MIN_LABELLED} "
            f"labelled samples in the pool, got {rows.size}; label some samples and try again"
        )
    reference = unit[rows].T
    distance = np.empty(unit.shape[0], np.float64)
    nearest = np.empty(unit.shape[0], np.int64)
    step = max(1, _BLOCK_ELEMENTS // rows.size)
    for start in range(0, unit.shape[0], step):
        block = np.maximum(1.0 - unit[start : start + step] @ reference, 0.0)
        self_rows = np.flatnonzero(mask[start : start + step])
        if self_rows.size:
            block[self_rows, np.searchsorted(rows, start + self_rows)] = np.inf
        best = np.argmin(block, axis=1)
        distance[start : start + step] = block[np.arange(block.shape[0]), best]
        nearest[start : start + step] = rows[best]
    return distance, nearest


def conformal_threshold(calibration: npt.ArrayLike, alpha: float = DEFAULT_ALPHA) -> float:
    """The ceil((L + 1)(1 - alpha))-th smallest of L calibration scores (+inf past L)."""
    if not 0.0 < alpha < 1.0:
        raise AcquisitionError(f"alpha = {alpha!r} is invalid: must lie strictly between 0 and 1")
    values = np.sort(np.asarray(calibration, np.float64))
    rank = math.ceil((values.shape[0] + 1) * (1.0 - alpha))
    return math.inf if rank > values.shape[0] else float(values[rank - 1])


def space_weight(accuracy: float, classes: int) -> float:
    """How far a space's leave-one-out 1-NN accuracy lies above chance, squared (>= 0)."""
    return max(accuracy - 1.0 / max(classes, 1), 0.0) ** 2


def _sigmoid(z: FloatArray) -> FloatArray:
    value: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for any z
    return value


def logistic_fit(
    x: npt.ArrayLike,
    targets: npt.ArrayLike,
    weights: npt.ArrayLike,
    penalty: float,
    start: FloatArray | None = None,
    iterations: int = 50,
) -> FloatArray:
    """Weights (d,) then intercept of min sum_i weights_i logloss_i + penalty/2 |w|^2.

    Newton's method (the objective is strictly convex for penalty > 0); the intercept is not
    penalised. `start` warm-starts it (cross-fitting starts from the full fit).
    """
    design = np.column_stack([np.asarray(x, np.float64), np.ones(np.shape(x)[0])])
    t = np.asarray(targets, np.float64)
    s = np.asarray(weights, np.float64)
    ridge = np.full(design.shape[1], float(penalty))
    ridge[-1] = 0.0
    w = np.zeros(design.shape[1]) if start is None else np.array(start, np.float64)
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (s * (p - t)) + ridge * w
        hessian = (design * (s * p * (1.0 - p))[:, None]).T @ design
        hessian[np.diag_indices_from(hessian)] += ridge + 1e-12
        step = np.linalg.solve(hessian, gradient)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return w


def contrast(
    inputs: npt.ArrayLike,
    labelled: npt.ArrayLike,
    seed: int = 0,
    negatives: int = CONTRAST_NEGATIVES,
    penalty: float = CONTRAST_PENALTY,
    folds: int = CONTRAST_FOLDS,
) -> FloatArray:
    """-logit of a logistic model of labelled against unlabelled rows (higher = less like the
    labelled ones); each labelled row scored by the model fitted without its fold."""
    unit = _unit_rows(inputs, "input vectors")
    mask = np.asarray(labelled, np.bool_)
    unlabelled = np.flatnonzero(~mask)
    if unlabelled.size == 0:
        raise AcquisitionError("novelty needs unlabelled samples to compare; every one is labelled")
    centred = unit - unit[unlabelled].mean(axis=0)
    rng = np.random.default_rng(seed)
    if unlabelled.size > negatives:
        unlabelled = np.sort(rng.choice(unlabelled, negatives, replace=False))
    positives = np.flatnonzero(mask)

    def fit(chosen: IntArray, start: FloatArray | None = None) -> FloatArray:
        rows = np.concatenate([chosen, unlabelled])
        targets = np.concatenate([np.ones(chosen.size), np.zeros(unlabelled.size)])
        weights = np.concatenate(
            [
                np.full(chosen.size, 0.5 / chosen.size),
                np.full(unlabelled.size, 0.5 / unlabelled.size),
            ]
        )
        return logistic_fit(centred[rows], targets, weights, penalty, start)

    full = fit(positives)
    scores: FloatArray = -(centred @ full[:-1] + full[-1])
    parts = np.array_split(rng.permutation(positives), min(folds, positives.size))
    for held in parts:
        kept = np.setdiff1d(positives, held)
        if kept.size == 0:
            continue
        w = fit(kept, full)
        scores[held] = -(centred[held] @ w[:-1] + w[-1])
    return scores


def _robust_z(values: FloatArray, calibration: FloatArray) -> FloatArray:
    centre = float(np.median(calibration))
    spread = float(np.median(np.abs(calibration - centre)))
    if not math.isfinite(spread) or spread <= 0.0:
        spread = float(np.std(values)) or 1.0
    scaled: FloatArray = (values - centre) / spread
    return scaled


def novelty(
    spaces: Sequence[npt.ArrayLike],
    labelled: npt.ArrayLike,
    labelled_classes: npt.ArrayLike,
    alpha: float = DEFAULT_ALPHA,
    inputs: npt.ArrayLike | None = None,
    seed: int = 0,
) -> Novelty:
    """Novelty of every row from feature `spaces` (each (n, d_s)) and the labelled rows.

    `labelled` is a boolean mask of the n rows; `labelled_classes` the class index of each
    labelled row, in row order; `inputs` the input vectors for the contrast (None: distance
    alone); `seed` picks the contrast's unlabelled sample and folds. See the module's
    docstring for the score and the threshold.
    """
    if not spaces:
        raise AcquisitionError("novelty needs at least one feature space")
    mask = np.asarray(labelled, np.bool_)
    classes = np.asarray(labelled_classes, np.int64)
    if classes.shape != (int(mask.sum()),):
        raise AcquisitionError(
            f"{classes.shape[0] if classes.ndim == 1 else classes.shape} classes for "
            f"{int(mask.sum())} labelled rows; give one class per labelled row"
        )
    count = len(np.unique(classes))
    parts, weights = [], []
    for index, features in enumerate(spaces):
        distance, nearest = nearest_labelled(features, mask, f"feature space {index}")
        own = distance[mask]
        scale = float(np.median(own))
        if not math.isfinite(scale) or scale <= 0.0:
            # Labelled duplicates: a typical labelled sample has a twin. Any positive scale
            # keeps the order; the smallest positive distance keeps the numbers readable.
            positive = distance[distance > 0]
            scale = float(positive.min()) if positive.size else 1.0
        parts.append(np.log1p(distance / scale))
        by_row = np.full(mask.shape[0], -1, np.int64)
        by_row[mask] = classes
        accuracy = float(np.mean(by_row[nearest[mask]] == classes))
        weights.append(space_weight(accuracy, count))
    total = sum(weights)
    shares = [w / total for w in weights] if total > 0 else [1.0 / len(parts)] * len(parts)
    scores = np.sum([share * part for share, part in zip(shares, parts, strict=True)], axis=0)
    if inputs is not None and not mask.all():  # with nothing unlabelled there is no contrast
        contrasted = contrast(inputs, mask, seed)
        scores = 0.5 * (_robust_z(scores, scores[mask]) + _robust_z(contrasted, contrasted[mask]))
    calibration = np.asarray(scores[mask], np.float64)
    return Novelty(
        scores=np.asarray(scores, np.float64),
        threshold=conformal_threshold(calibration, alpha),
        alpha=alpha,
        weights=tuple(float(s) for s in shares),
        labelled_scores=calibration,
    )
