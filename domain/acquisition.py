"""Acquisition policies: which unlabelled samples a person should label next.

Every policy scores each sample from the model's class probabilities, an array of shape
(n samples, C classes). For every policy a HIGHER score means MORE worth labelling; the scores
of different policies are not comparable with each other. `select_top_k` then picks the
highest-scoring unlabelled serials.

| policy           | score                    | range              |
| ---------------- | ------------------------ | ------------------ |
| random           | uniform draw, per seed   | [0, 1)             |
| least_confidence | 1 - max p                | [0, 1 - 1/C]       |
| margin           | 1 - (p_top1 - p_top2)    | [0, 1]             |
| entropy          | -sum p log p (natural)   | [0, log C]         |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import SsvaeError
from ssvae.domain.policies import PROBABILITY_SCORES

FloatArray = npt.NDArray[np.float64]
SerialArray = npt.NDArray[np.int64]
Scorer = Callable[[npt.ArrayLike, int], FloatArray]
"""A policy: (probabilities of shape (n, C), seed) -> n scores, higher = more worth labelling."""

# Model outputs are often float32 softmaxes: their rows sum to 1 only to about 1e-6 * C.
ROW_SUM_TOLERANCE = 1e-3


class AcquisitionError(SsvaeError, ValueError):
    """Invalid input to an acquisition policy, or an unknown policy name."""


def check_prior_serves(policy: str, prior: str) -> None:
    """AcquisitionError if a model with `prior` cannot serve `policy`: BALD reads p(y|z)
    through the component-to-label map, which the standard prior's one component makes the
    same for every z (BALD would be 0 everywhere)."""
    if policy == "bald" and prior == "standard":
        raise AcquisitionError(
            "bald needs a prior with several components (mixture or vamp): under the "
            "standard prior p(y|z) is the same for every z and BALD is 0; use a mixture or "
            "vamp preset (e.g. mixture_k10) or another policy"
        )


def validate_probabilities(probs: npt.ArrayLike) -> FloatArray:
    """`probs` as float64 rows renormalised to sum to 1; AcquisitionError if not probabilities."""
    array = np.asarray(probs)
    if array.ndim != 2 or array.shape[1] < 2:
        raise AcquisitionError(
            f"class probabilities must be a 2-D array (samples, classes) with at least 2 "
            f"classes, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise AcquisitionError(f"class probabilities must be real numbers, got dtype {array.dtype}")
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise AcquisitionError("class probabilities contain NaN or infinity; check the model")
    if np.any(values < 0):
        raise AcquisitionError("class probabilities contain negative values; pass softmax outputs")
    sums = values.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        raise AcquisitionError(
            f"class probabilities of row {int(bad[0])} sum to {float(sums[bad[0]]):.6g}, not 1 "
            f"({bad.size} such rows); pass softmax outputs, not logits"
        )
    # Renormalising removes the tolerated rounding so that every score stays in its range.
    normalised: FloatArray = values / sums[:, None]
    return normalised


def least_confidence(probs: npt.ArrayLike) -> FloatArray:
    """1 - max p per row, in [0, 1 - 1/C]: high when even the best class is unlikely."""
    p = validate_probabilities(probs)
    upper = 1.0 - 1.0 / p.shape[1]
    scores: FloatArray = np.clip(1.0 - p.max(axis=1), 0.0, upper)
    return scores


def margin(probs: npt.ArrayLike) -> FloatArray:
    """1 - (p_top1 - p_top2) per row, in [0, 1]: high when the two best classes are close."""
    p = validate_probabilities(probs)
    top_two = np.partition(p, -2, axis=1)[:, -2:]
    scores: FloatArray = np.clip(1.0 - (top_two[:, 1] - top_two[:, 0]), 0.0, 1.0)
    return scores


def entropy(probs: npt.ArrayLike) -> FloatArray:
    """-sum p log p per row (natural log), in [0, log C]; zero probabilities contribute 0."""
    p = validate_probabilities(probs)
    # log(1) = 0 where p = 0, so 0 * log 0 is taken as its limit 0 without a warning.
    log_p = np.log(np.where(p > 0, p, 1.0))
    scores: FloatArray = np.clip(-(p * log_p).sum(axis=1), 0.0, math.log(p.shape[1]))
    return scores


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise AcquisitionError(f"seed {seed!r} is invalid: must be an integer >= 0")
    return int(seed)


def random_scores(n: int, seed: int) -> FloatArray:
    """n uniform scores in [0, 1), the same for the same seed."""
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
        raise AcquisitionError(f"number of scores {n!r} is invalid: must be an integer >= 0")
    return np.random.default_rng(_check_seed(seed)).random(int(n))


def _random_policy(probs: npt.ArrayLike, seed: int) -> FloatArray:
    return random_scores(validate_probabilities(probs).shape[0], seed)


def _ignoring_seed(score: Callable[[npt.ArrayLike], FloatArray]) -> Scorer:
    """The uncertainty scores are deterministic: the seed is accepted for a common signature."""

    def scorer(probs: npt.ArrayLike, seed: int) -> FloatArray:
        _check_seed(seed)
        return score(probs)

    scorer.__name__ = score.__name__
    scorer.__doc__ = score.__doc__
    return scorer


_SCORERS: Mapping[str, Scorer] = {
    "random": _random_policy,
    "least_confidence": _ignoring_seed(least_confidence),
    "margin": _ignoring_seed(margin),
    "entropy": _ignoring_seed(entropy),
}
POLICIES: Mapping[str, Scorer] = MappingProxyType(
    {name: _SCORERS[name] for name in PROBABILITY_SCORES}
)
"""The registry's probability scores, by name."""


def policy(name: str) -> Scorer:
    """The scorer named `name`; AcquisitionError listing the known names when unknown."""
    try:
        return POLICIES[name]
    except (KeyError, TypeError):
        raise AcquisitionError(
            f"unknown acquisition policy {name!r}; choose one of {', '.join(POLICIES)}"
        ) from None


def _as_serials(values: Any, what: str) -> SerialArray:
    """`values` (an array, list, set or generator of integers) as an int64 array."""
    # Sets and generators are not array-like to numpy: list them first.
    listable = isinstance(values, Iterable) and not isinstance(values, np.ndarray)
    array = np.asarray(list(values) if listable else values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise AcquisitionError(
            f"{what} must be a 1-D array of integers, got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    return array.astype(np.int64)


def _as_scores(scores: npt.ArrayLike) -> FloatArray:
    array = np.asarray(scores)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
        raise AcquisitionError(f"scores must be a 1-D array of numbers, got shape {array.shape}")
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise AcquisitionError("scores contain NaN or infinity; check the policy's input")
    return values


def select_top_k(
    scores: npt.ArrayLike,
    serials: npt.ArrayLike,
    k: int,
    labelled_serials: npt.ArrayLike | Iterable[int],
) -> SerialArray:
    """The serials of the k highest-scoring unlabelled samples, best first.

    Ties go to the lower serial, so the result is deterministic. Returns fewer than k serials
    only when fewer than k samples are unlabelled.
    """
    score_values = _as_scores(scores)
    serial_values = _as_serials(serials, "serials")
    if score_values.shape[0] != serial_values.shape[0]:
        raise AcquisitionError(
            f"got {score_values.shape[0]} scores for {serial_values.shape[0]} serials; "
            "pass one score per serial"
        )
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 0:
        raise AcquisitionError(f"k = {k!r} is invalid: the number to select is an integer >= 0")
    if np.unique(serial_values).shape[0] != serial_values.shape[0]:
        raise AcquisitionError("serials must be unique; each sample appears once in the pool")
    unlabelled = ~np.isin(serial_values, _as_serials(labelled_serials, "labelled serials"))
    pool_scores, pool_serials = score_values[unlabelled], serial_values[unlabelled]
    # lexsort sorts by its last key first: descending score, then ascending serial.
    order = np.lexsort((pool_serials, -pool_scores))
    return pool_serials[order[: int(k)]]
