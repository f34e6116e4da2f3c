"""Full acquisition policies: one request value in, the serials to label next out.

The model adapter computes whatever arrays a policy needs (`required_inputs` says which) and
hands them in an `AcquisitionRequest`; `select` returns a `Selection`. Every policy returns
only unlabelled serials, k of them unless fewer are unlabelled, each once, the same ones for
the same request and seed, and the same ones whatever the order of the request's rows
(rows are sorted by serial first, so every tie goes to the lower serial).

| policy           | needs           | picks                                  | Selection.scores |
| ---------------- | --------------- | -------------------------------------- | ---------------- |
| random           | -               | seeded uniform draw                    | the draw         |
| least_confidence | probs           | top k of 1 - max p                     | the score        |
| margin           | probs           | top k of 1 - (p1 - p2)                 | the score        |
| entropy          | probs           | top k of -sum p log p                  | the score        |
| tau_ood          | ood             | top k of the OOD score                 | the score        |
| novelty          | inputs,         | top k of the novelty score: unlike     | the score        |
|                  | encodings       | every labelled sample (domain.novelty) |                  |
| bald             | bald            | top k of the mutual information        | the score        |
| elbo             | negative_elbo   | top k of -ELBO (novelty)               | the score        |
| kcenter          | features        | core-set k-center greedy (latent)      | distance*        |
| diverse_margin   | probs, features | k-center among the 10k most uncertain  | margin score     |
| diverse_entropy  | probs, features | k-center among the 10k most uncertain  | entropy score    |
| cold_start       | features        | typical per component, then k-center   | resp./distance*  |
| typiclust        | encodings       | most typical of the least covered      | typicality       |
|                  |                 | k-means cluster (Hacohen et al. 2022)  |                  |
| typiclust_margin | probs,          | typiclust while labels < 3 per class,  | its policy's     |
|                  | encodings       | then margin                            |                  |

*distance to the nearest centre (labelled or already picked) when picked; +inf for a first
pick with no centre at all. cold_start uses `responsibilities` when given (typical picks
score their responsibility). `features` are the latent means the dashboard's map shows;
`encodings` all the encoder says of a sample (see `AcquisitionRequest`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.acquisition import (
    POLICIES,
    AcquisitionError,
    random_scores,
    select_top_k,
    validate_probabilities,
)
from ssvae.domain.diversity import (
    check_features,
    cold_start_scored,
    diverse_top_uncertain,
    k_center_greedy_scored,
    typiclust_scored,
    validate_scores,
)
from ssvae.domain.labels import ascending_unique
from ssvae.domain.novelty import novelty
from ssvae.domain.policies import POLICY_NAMES, REGISTRY

FloatArray = npt.NDArray[np.float64]
SerialArray = npt.NDArray[np.int64]

# What each request field holds, for error messages.
_INPUT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "probs": "class probabilities",
        "features": "latent features",
        "encodings": "sample encodings",
        "inputs": "input vectors",
        "ood": "OOD scores",
        "bald": "BALD scores",
        "negative_elbo": "per-sample negative ELBO",
        "responsibilities": "mixture responsibilities",
    }
)


def _serials(value: Any) -> SerialArray:
    listable = isinstance(value, Iterable) and not isinstance(value, np.ndarray)
    array = np.asarray(list(value) if listable else value)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise AcquisitionError(
            f"serials must be a 1-D array of integers, got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    # As given when int64: a request never writes to them, and a copy is 80 MB at 10M rows.
    return array.astype(np.int64, copy=False)


def _optional_array(value: Any) -> npt.NDArray[Any] | None:
    return None if value is None else np.asarray(value)


def _optional_serials(value: Any) -> SerialArray | None:
    return None if value is None else _serials(value)


def _check_non_negative(instance: Any, attribute: attrs.Attribute[int], value: Any) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
        raise AcquisitionError(f"{attribute.name} = {value!r} is invalid: must be an integer >= 0")


def _unique(serials: SerialArray) -> bool:
    """Whether no serial repeats. Serials in increasing order (a scanned pool's are) are
    checked without np.unique, whose sorted copy and result were 0.17 GB at 10M rows."""
    if ascending_unique(serials):
        return True
    return bool(np.unique(serials).shape[0] == serials.shape[0])


@attrs.frozen(eq=False)
class AcquisitionRequest:
    """The pool (serials, row-aligned model outputs), the labelled serials, k and the seed.

    Optional arrays are None when not computed: `probs` (n, C) class probabilities,
    `features` (n, d) latent means, `encodings` (n, e) a fuller description of each sample
    (the SSVAE's means of q(z|x,y) for every class y: its latent means are a style that
    leaves the class out), `ood` (n,) OOD scores, `bald` (n,) mutual information,
    `negative_elbo` (n,) per-sample -ELBO (higher = worse explained = more novel),
    `responsibilities` (n, K) mixture responsibilities, `inputs` (n, d) the samples' input
    vectors (flattened, perhaps projected). `labelled_classes` holds the class index of each
    labelled serial, in the same order (novelty needs it). Labelled serials outside the pool
    are ignored.
    """

    serials: SerialArray = attrs.field(converter=_serials)
    k: int = attrs.field(validator=_check_non_negative)
    seed: int = attrs.field(default=0, validator=_check_non_negative)
    labelled_serials: SerialArray = attrs.field(
        factory=lambda: np.zeros(0, np.int64), converter=_serials
    )
    probs: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    features: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    encodings: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    ood: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    bald: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    negative_elbo: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    responsibilities: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    inputs: npt.NDArray[Any] | None = attrs.field(default=None, converter=_optional_array)
    labelled_classes: SerialArray | None = attrs.field(default=None, converter=_optional_serials)
    candidate_factor: int = attrs.field(default=10, validator=_check_non_negative)

    def __attrs_post_init__(self) -> None:
        rows = self.serials.shape[0]
        if not _unique(self.serials):
            raise AcquisitionError("serials must be unique; each sample appears once in the pool")
        if self.candidate_factor < 1:
            raise AcquisitionError("candidate_factor = 0 is invalid: must be an integer >= 1")
        for name in _INPUT_NAMES:
            value = getattr(self, name)
            if value is not None and (value.ndim == 0 or value.shape[0] != rows):
                raise AcquisitionError(
                    f"{_INPUT_NAMES[name]} ({name}) have shape {value.shape} for {rows} "
                    "serials; pass one row per serial"
                )
        if self.labelled_classes is not None and (
            self.labelled_classes.shape != self.labelled_serials.shape
        ):
            raise AcquisitionError(
                f"{self.labelled_classes.shape[0]} labelled classes for "
                f"{self.labelled_serials.shape[0]} labelled serials; give one class per serial"
            )


@attrs.frozen(eq=False)
class Selection:
    """The serials to label next, best or first picked first, with each one's policy score."""

    policy: str
    serials: SerialArray
    scores: FloatArray

    def __len__(self) -> int:
        return int(self.serials.shape[0])


@attrs.frozen(eq=False)
class _Pool:
    """A request's rows sorted by serial, with the labelled mask, so ties go to lower serials."""

    request: AcquisitionRequest
    order: npt.NDArray[np.intp] | None  # None: the rows are sorted already
    serials: SerialArray
    labelled: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, request: AcquisitionRequest) -> _Pool:
        serials = request.serials
        # Rows sorted already (a scanned pool's are) are used as given, neither sorted nor
        # copied: at 10M rows the sort's order, the sorted copy and the identity it was
        # compared with were 0.24 GB beside the pool's features.
        order = None
        if not ascending_unique(serials):  # unique already: checked by the request
            order = np.argsort(serials, kind="stable")
            serials = serials[order]
        return cls(request, order, serials, np.isin(serials, request.labelled_serials))

    def field(self, policy: str, name: str) -> npt.NDArray[Any]:
        value: npt.NDArray[Any] | None = getattr(self.request, name)
        if value is None:
            raise AcquisitionError(
                f"policy {policy!r} needs {_INPUT_NAMES[name]} ({name}) but the request has "
                f"none; compute them or choose another policy"
            )
        return value if self.order is None else value[self.order]


def _top_k(pool: _Pool, policy: str, scores: FloatArray) -> Selection:
    chosen = select_top_k(scores, pool.serials, pool.request.k, pool.serials[pool.labelled])
    rows = np.searchsorted(pool.serials, chosen)
    return Selection(policy, chosen, scores[rows])


def _indices(
    pool: _Pool, policy: str, rows: npt.NDArray[np.int64], scores: FloatArray
) -> Selection:
    return Selection(policy, pool.serials[rows], scores.astype(np.float64))


def _random(pool: _Pool) -> Selection:
    return _top_k(pool, "random", random_scores(pool.serials.shape[0], pool.request.seed))


def _uncertainty(name: str) -> Callable[[_Pool], Selection]:
    def run(pool: _Pool) -> Selection:
        return _top_k(pool, name, POLICIES[name](pool.field(name, "probs"), pool.request.seed))

    return run


def _given_scores(name: str, field: str) -> Callable[[_Pool], Selection]:
    def run(pool: _Pool) -> Selection:
        scores = validate_scores(
            pool.field(name, field), pool.serials.shape[0], _INPUT_NAMES[field]
        )
        return _top_k(pool, name, scores)

    return run


def _kcenter(pool: _Pool) -> Selection:
    features = check_features(pool.field("kcenter", "features"))  # not copied: see diversity
    rows, distances = k_center_greedy_scored(
        features, pool.request.k, pool.labelled, pool.request.seed
    )
    return _indices(pool, "kcenter", rows, distances)


def _diverse(uncertainty: str) -> Callable[[_Pool], Selection]:
    name = f"diverse_{uncertainty}"

    def run(pool: _Pool) -> Selection:
        probs = validate_probabilities(pool.field(name, "probs"))
        features = check_features(pool.field(name, "features"))
        scores = POLICIES[uncertainty](probs, pool.request.seed)
        rows = diverse_top_uncertain(
            scores,
            features,
            pool.request.k,
            pool.request.candidate_factor,
            pool.labelled,
            pool.request.seed,
        )
        return _indices(pool, name, rows, scores[rows])

    return run


def _cold_start(pool: _Pool) -> Selection:
    features = check_features(pool.field("cold_start", "features"))
    responsibilities = None
    if pool.request.responsibilities is not None:
        # cold_start_scored validates them (a float64 copy) and lets the copy go before
        # k-center; one held here would last through it.
        responsibilities = pool.field("cold_start", "responsibilities")
    rows, scores = cold_start_scored(
        features, pool.request.k, pool.request.seed, responsibilities, pool.labelled
    )
    return _indices(pool, "cold_start", rows, scores)


def _novelty(pool: _Pool) -> Selection:
    given = pool.request.labelled_classes
    if given is None:
        raise AcquisitionError(
            "policy 'novelty' needs the class of each labelled serial (labelled_classes); "
            "pass them with the labelled serials"
        )
    order = np.argsort(pool.request.labelled_serials, kind="stable")
    sorted_serials = pool.request.labelled_serials[order]
    positions = np.searchsorted(sorted_serials, pool.serials[pool.labelled])
    classes = given[order][positions]
    inputs = pool.field("novelty", "inputs")
    scored = novelty(
        [inputs, pool.field("novelty", "encodings")],
        pool.labelled,
        classes,
        inputs=inputs,
        seed=pool.request.seed,
    )
    return _top_k(pool, "novelty", scored.scores)


def _typiclust(pool: _Pool) -> Selection:
    encodings = pool.field("typiclust", "encodings")  # typiclust_scored validates them
    rows, typicality = typiclust_scored(encodings, pool.request.k, pool.labelled, pool.request.seed)
    return _indices(pool, "typiclust", rows, typicality)


# TypiClust suits small budgets; once every class has a few labels, the samples near the
# decision boundary teach more (Hacohen et al. 2022). On Loghub --task event it carries the
# curve to 95% within 300 labels (3 a class); on MNIST it stalls at 85-94% after 30 to 50
# labels (benchmarks/README.md). So: typiclust below 3 labels a class, then margin.
TYPICAL_LABELS_PER_CLASS = 3


def _typiclust_margin(pool: _Pool) -> Selection:
    classes = validate_probabilities(pool.field("typiclust_margin", "probs")).shape[1]
    if int(pool.labelled.sum()) < TYPICAL_LABELS_PER_CLASS * classes:
        chosen = _typiclust(pool)
    else:
        chosen = _uncertainty("margin")(pool)
    return Selection("typiclust_margin", chosen.serials, chosen.scores)


# How each policy of the registry picks; what it needs is the registry's.
_RUNS: Mapping[str, Callable[[_Pool], Selection]] = MappingProxyType(
    {
        "random": _random,
        "least_confidence": _uncertainty("least_confidence"),
        "margin": _uncertainty("margin"),
        "entropy": _uncertainty("entropy"),
        "tau_ood": _given_scores("tau_ood", "ood"),
        "novelty": _novelty,
        "bald": _given_scores("bald", "bald"),
        "elbo": _given_scores("elbo", "negative_elbo"),
        "kcenter": _kcenter,
        "diverse_margin": _diverse("margin"),
        "diverse_entropy": _diverse("entropy"),
        "cold_start": _cold_start,
        "typiclust": _typiclust,
        "typiclust_margin": _typiclust_margin,
    }
)

SELECTION_POLICIES: tuple[str, ...] = POLICY_NAMES
"""The names `select` accepts: every policy of the registry."""


def _entry(name: str) -> tuple[tuple[str, ...], Callable[[_Pool], Selection]]:
    try:
        return REGISTRY[name].needs, _RUNS[name]
    except (KeyError, TypeError):
        raise AcquisitionError(
            f"unknown acquisition policy {name!r}; choose one of {', '.join(SELECTION_POLICIES)}"
        ) from None


def required_inputs(name: str) -> tuple[str, ...]:
    """The AcquisitionRequest fields policy `name` needs (cold_start also uses responsibilities)."""
    return _entry(name)[0]


def select(name: str, request: AcquisitionRequest) -> Selection:
    """The serials policy `name` picks for `request`; AcquisitionError if an input is missing."""
    needs, run = _entry(name)
    pool = _Pool.of(request)
    for field in needs:
        pool.field(name, field)  # fail before any work, naming the missing input
    return run(pool)
