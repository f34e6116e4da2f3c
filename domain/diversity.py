"""Diverse selection in latent space: core-set k-center, batch-diverse uncertainty, cold start.

All functions work on row indices of a feature array (n samples, d dimensions), usually the
model's latent means. Labelled rows are never returned; they act as fixed centres, so a new
batch covers what the labels do not. Ties always go to the lower row index (or, in
`diverse_top_uncertain`, to the more uncertain candidate), so results are deterministic.

Distances are Euclidean. Squared distances are computed as |x|^2 + (|c|^2 - 2 x.c) (matrix
products, so a block of centres costs one BLAS call) on features shifted to the middle of
their range: the shift leaves distances unchanged but keeps the norms small, which limits the
cancellation in that formula. k-center computes them in float64 but converts and shifts the
features a block of rows at a time rather than holding a shifted float64 copy: the latent
means of ten million rows are 1.3 GB in float32 and would be 2.6 GB more in float64.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from ssvae.domain.acquisition import AcquisitionError

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Distances to a block of centres are an (n, block) array: this bounds that block to about
# 32 MiB of float64 whatever n is, so memory stays O(n).
_DISTANCE_BLOCK_ELEMENTS = 1 << 22
# k-center's rows are made float64 and shifted this many values at a time (2 MiB of float64):
# small enough to stay in cache between the conversion and the product that uses it.
_ROW_BLOCK_ELEMENTS = 1 << 18


def _row_blocks(rows: int, width: int) -> Iterator[slice]:
    """Slices of about `_ROW_BLOCK_ELEMENTS` values each over `rows` rows of `width` values:
    what a blockwise pass converts or checks at a time."""
    step = max(1, _ROW_BLOCK_ELEMENTS // max(width, 1))
    for start in range(0, rows, step):
        yield slice(start, start + step)


def _check_count(value: Any, what: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
        raise AcquisitionError(f"{what} = {value!r} is invalid: must be an integer >= 0")
    return int(value)


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise AcquisitionError(f"seed {seed!r} is invalid: must be an integer >= 0")
    return int(seed)


def validate_features(features: npt.ArrayLike) -> FloatArray:
    """`features` as a finite float64 (n, d) array (a copy); AcquisitionError otherwise."""
    return check_features(features).astype(np.float64)


def check_features(features: npt.ArrayLike) -> npt.NDArray[Any]:
    """`features` as given, checked as `validate_features` checks them, without the float64
    copy: a caller that hands them on to a function that validates its own copy need not
    hold one more (10M rows of 32 latent means are 2.6 GB in float64)."""
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[1] < 1:
        raise AcquisitionError(
            f"features must be a 2-D array (samples, dimensions) with at least one dimension, "
            f"got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise AcquisitionError(f"features must be real numbers, got dtype {array.dtype}")
    # A block of rows at a time: np.isfinite of the whole array is one byte a value more.
    for block in _row_blocks(*array.shape):
        if not np.isfinite(array[block]).all():
            raise AcquisitionError(
                "features contain NaN or infinity; check the model's latent means"
            )
    return array


def validate_scores(scores: npt.ArrayLike, rows: int, what: str = "scores") -> FloatArray:
    """`scores` as a finite float64 array of `rows` values; AcquisitionError otherwise."""
    array = np.asarray(scores)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
        raise AcquisitionError(f"{what} must be a 1-D array of numbers, got shape {array.shape}")
    if array.shape[0] != rows:
        raise AcquisitionError(f"got {array.shape[0]} {what} for {rows} samples; pass one each")
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise AcquisitionError(f"{what} contain NaN or infinity; check the model's outputs")
    return values


def labelled_mask(labelled: npt.ArrayLike | None, rows: int) -> BoolArray:
    """A boolean mask of the labelled rows from a mask, an index array or None (nothing)."""
    if labelled is None:
        return np.zeros(rows, dtype=np.bool_)
    array = np.asarray(labelled)
    if array.dtype == np.bool_:
        if array.shape != (rows,):
            raise AcquisitionError(
                f"the labelled mask has shape {array.shape}; it needs one value per sample ({rows})"
            )
        return array.copy()
    if array.size == 0:
        return np.zeros(rows, dtype=np.bool_)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise AcquisitionError(
            f"labelled rows must be a boolean mask or a 1-D array of row indices, got shape "
            f"{array.shape} and dtype {array.dtype}"
        )
    if array.min() < 0 or array.max() >= rows:
        raise AcquisitionError(f"labelled row indices must lie in [0, {rows}); got out-of-range")
    mask = np.zeros(rows, dtype=np.bool_)
    mask[array] = True
    return mask


def _centred(features: FloatArray) -> FloatArray:
    if features.shape[0] == 0:
        return features
    middle = (features.min(axis=0) + features.max(axis=0)) / 2.0
    shifted: FloatArray = features - middle
    return shifted


def _middle(features: npt.NDArray[Any]) -> FloatArray:
    """The middle of each column's range in float64, which `_centred` subtracts: the minimum
    and maximum of the features as given, converted after, are those of their float64 copy."""
    if features.shape[0] == 0:
        return np.zeros(features.shape[1])
    low = features.min(axis=0).astype(np.float64)
    high = features.max(axis=0).astype(np.float64)
    middle: FloatArray = (low + high) / 2.0
    return middle


def _shifted(features: npt.NDArray[Any], middle: FloatArray) -> FloatArray:
    """`features` (a block of rows) as float64 minus `middle`: a new array, never a view."""
    block: FloatArray = features.astype(np.float64)
    block -= middle
    return block


def _centre_terms(points: FloatArray, centres: FloatArray) -> FloatArray:
    """|c|^2 - 2 x.c for every point and centre (m, c): |x - c|^2 without the |x|^2 term,
    which neither the nearest centre nor its order depends on. Built in place."""
    block = points @ centres.T
    block *= -2.0
    block += np.einsum("ij,ij->i", centres, centres)[None, :]
    return block


def _nearest_squared_distances(
    points: FloatArray, point_norms: FloatArray, centres: FloatArray
) -> FloatArray:
    """Each point's squared distance to its nearest centre in `centres` (m,), clipped at 0."""
    # |x|^2 is added once per point after the minimum, which halves the passes over the block.
    nearest = _centre_terms(points, centres).min(axis=1) + point_norms
    # Rounding can leave a duplicate of a centre slightly below 0.
    clipped: FloatArray = np.maximum(nearest, 0.0)
    return clipped


def _update_nearest(
    features: npt.NDArray[Any],
    middle: FloatArray,
    norms: FloatArray,
    centres: FloatArray,
    nearest: FloatArray,
) -> None:
    """Lower `nearest` (n,) to each row's squared distance to its nearest of `centres` (c, d;
    shifted float64), the rows of `features` shifted by `middle` a block at a time.

    `norms` holds the shifted rows' squared norms. The distance is clipped at 0 (rounding can
    leave a duplicate of a centre slightly below); an entry at -1 (a row taken) stays there.
    """
    rows = max(1, _ROW_BLOCK_ELEMENTS // features.shape[1])
    per_block = max(1, _DISTANCE_BLOCK_ELEMENTS // rows)
    for block in _row_blocks(*features.shape):
        points = _shifted(features[block], middle)
        target = nearest[block]
        for first in range(0, centres.shape[0], per_block):
            # |x|^2 is added once per point after the minimum, which halves the passes.
            squared = _centre_terms(points, centres[first : first + per_block]).min(axis=1)
            squared += norms[block]
            np.maximum(squared, 0.0, out=squared)
            np.minimum(target, squared, out=target)


def _farthest_first(
    features: npt.NDArray[Any],
    middle: FloatArray,
    centres: FloatArray,
    k: int,
    first: int | None,
    seed: int,
    taken: BoolArray | None = None,
) -> tuple[IndexArray, FloatArray]:
    """Greedy k-center over the rows of `features` (n, d) with fixed `centres`: positions and
    pick distances.

    Distances are those of the rows shifted by `middle` in float64, as `_shifted` makes them,
    and `centres` are shifted already. Each pick is the point farthest from its nearest centre,
    and becomes a centre. Without fixed centres the first pick is `first`, or a seeded uniform
    choice among the points not `taken` when that is None. Points `taken` (the labelled ones,
    say) are never picked: passing them so, rather than the other points as a copy, spares a
    copy of a large pool. The distance reported for a pick is to its nearest centre then (inf
    for a first pick without centres). O(n (c + k) d) time; besides the inputs, memory is two
    float64 values a row and a block of rows.
    """
    n = features.shape[0]
    available = n if taken is None else n - int(taken.sum())
    picks = min(k, available)
    positions = np.zeros(picks, dtype=np.int64)
    distances = np.zeros(picks, dtype=np.float64)
    if picks == 0:
        return positions, distances
    norms = np.empty(n)
    for block in _row_blocks(*features.shape):
        points = _shifted(features[block], middle)
        norms[block] = np.einsum("ij,ij->i", points, points)
    nearest = np.full(n, np.inf)
    _update_nearest(features, middle, norms, centres, nearest)
    # A taken point's distance is -1, below every other, so argmax never picks it again and
    # the minimum with a new centre's distances (>= 0) leaves it there.
    if taken is not None:
        nearest[taken] = -1.0
    for step_number in range(picks):
        if step_number == 0 and centres.shape[0] == 0 and first is not None:
            pick = first
        elif step_number == 0 and centres.shape[0] == 0:
            choice = int(np.random.default_rng(seed).integers(available))
            pick = choice if taken is None or not taken.any() else _nth_free(taken, choice)
        else:
            # argmax returns the first maximum, which is the documented tie-break.
            pick = int(np.argmax(nearest))
        positions[step_number] = pick
        distances[step_number] = np.sqrt(nearest[pick])
        nearest[pick] = -1.0
        centre = _shifted(features[pick : pick + 1], middle)
        _update_nearest(features, middle, norms, centre, nearest)
    return positions, distances


def _nth_free(taken: BoolArray, choice: int) -> int:
    """The position of the `choice`-th row (from 0) not `taken`."""
    return int(np.flatnonzero(~taken)[choice])


def k_center_greedy_scored(
    features: npt.ArrayLike, k: int, labelled: npt.ArrayLike | None = None, seed: int = 0
) -> tuple[IndexArray, FloatArray]:
    """`k_center_greedy` with, for each pick, its distance to the nearest centre when picked."""
    values = check_features(features)  # as given: shifted to float64 a block at a time
    count = _check_count(k, "k")
    seed = _check_seed(seed)
    mask = labelled_mask(labelled, values.shape[0])
    middle = _middle(values)
    # The labelled rows are the centres and are never picked; the others are not copied.
    positions, distances = _farthest_first(
        values, middle, _shifted(values[mask], middle), count, first=None, seed=seed, taken=mask
    )
    return positions.astype(np.int64), distances


def k_center_greedy(
    features: npt.ArrayLike, k: int, labelled: npt.ArrayLike | None = None, seed: int = 0
) -> IndexArray:
    """The core-set greedy (Sener & Savarese 2018): k unlabelled rows, in the order picked.

    Repeatedly picks the unlabelled row farthest from its nearest centre; labelled rows
    (a boolean mask or row indices) are the initial centres. With no labelled rows the
    first pick is a uniform choice seeded by `seed` (so seeds give different, equally valid
    covers); ties go to the lower row. Returns fewer than k rows only when fewer are
    unlabelled.
    """
    return k_center_greedy_scored(features, k, labelled, seed)[0]


def diverse_top_uncertain(
    scores: npt.ArrayLike,
    features: npt.ArrayLike,
    k: int,
    candidate_factor: int = 10,
    labelled: npt.ArrayLike | None = None,
    seed: int = 0,
) -> IndexArray:
    """A batch of k rows both uncertain and spread out, in the order picked.

    Takes the `candidate_factor * k` unlabelled rows of highest score (higher = more worth
    labelling; ties to the lower row), then picks k of them by k-center greedy with the
    labelled rows as fixed centres, so a batch is not k near-copies of one confusing sample.
    Without labelled rows the first pick is the most uncertain candidate, so the result
    does not depend on `seed` (accepted for a common signature).
    """
    values = check_features(features)  # as given: only the candidates are made float64
    rows = values.shape[0]
    score_values = validate_scores(scores, rows)
    count = _check_count(k, "k")
    factor = _check_count(candidate_factor, "candidate_factor")
    if factor < 1:
        raise AcquisitionError("candidate_factor = 0 is invalid: must be an integer >= 1")
    _check_seed(seed)
    mask = labelled_mask(labelled, rows)
    unlabelled = np.flatnonzero(~mask)
    # lexsort sorts by its last key first: descending score, then ascending row.
    ranked = unlabelled[np.lexsort((unlabelled, -score_values[unlabelled]))]
    candidates = ranked[: count * factor]
    middle = _middle(values)
    positions, _ = _farthest_first(
        values[candidates], middle, _shifted(values[mask], middle), count, first=0, seed=seed
    )
    return candidates[positions].astype(np.int64)


def check_responsibilities(responsibilities: npt.ArrayLike, rows: int) -> npt.NDArray[Any]:
    """Mixture responsibilities as given, checked to be a finite, non-negative (rows, K) array
    of real numbers a block of rows at a time: a float64 copy of 10M rows of K components is
    80 MB a component, and `typical_per_component` reads them a block at a time."""
    array = np.asarray(responsibilities)
    if array.ndim != 2 or array.shape[0] != rows or array.shape[1] < 1:
        raise AcquisitionError(
            f"responsibilities must have shape ({rows}, components), got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise AcquisitionError(f"responsibilities must be real numbers, got dtype {array.dtype}")
    for rows_here in _row_blocks(*array.shape):
        block = array[rows_here]
        if not np.all(np.isfinite(block)) or np.any(block < 0):
            raise AcquisitionError("responsibilities must be finite and >= 0; check the model")
    return array


def validate_responsibilities(responsibilities: npt.ArrayLike, rows: int) -> FloatArray:
    """Mixture responsibilities as a finite, non-negative float64 (rows, K) array (a copy)."""
    return check_responsibilities(responsibilities, rows).astype(np.float64)


def typical_per_component(
    responsibilities: npt.NDArray[Any], available: BoolArray, k: int
) -> tuple[IndexArray, FloatArray]:
    """Up to k rows, each the most typical available row of one component, by component usage.

    Components are visited by decreasing usage (total responsibility over the available rows;
    ties to the lower component); a component that is no available row's most likely one is
    skipped, as its best row belongs to another component's region. Each picked row is the
    one of highest responsibility for its component not already picked (ties to the lower
    row). Returns the rows and their responsibilities.

    The responsibilities (n, K) are read a block of rows at a time, in float64: neither the
    available rows' nor a float64 copy of them is made, each 80 MB a component at 10M rows.
    """
    rows, components = responsibilities.shape
    if k == 0 or not available.any():
        return np.zeros(0, np.int64), np.zeros(0, np.float64)

    def blocks() -> Iterator[tuple[slice, FloatArray]]:
        for rows_here in _row_blocks(rows, components):
            yield rows_here, np.asarray(responsibilities[rows_here], np.float64)

    usage = np.zeros(components)
    owned = np.zeros(components, dtype=np.bool_)
    for rows_here, block in blocks():
        free_block = block[available[rows_here]]
        usage += free_block.sum(axis=0)
        owned[free_block.argmax(axis=1)] = True
    order = np.lexsort((np.arange(components), -usage))
    free = available.copy()
    picked: list[int] = []
    values: list[float] = []
    for component in order[owned[order]][:k]:
        best, best_value = -1, -np.inf
        for rows_here, block in blocks():
            column = np.where(free[rows_here], block[:, component], -1.0)
            at = int(np.argmax(column))
            if column[at] > best_value:  # strictly: ties go to the lower row
                best, best_value = rows_here.start + at, float(column[at])
        free[best] = False
        picked.append(best)
        values.append(best_value)
    return np.asarray(picked, dtype=np.int64), np.asarray(values, dtype=np.float64)


def cold_start_scored(
    features: npt.ArrayLike,
    k: int,
    seed: int = 0,
    responsibilities: npt.ArrayLike | None = None,
    labelled: npt.ArrayLike | None = None,
) -> tuple[IndexArray, FloatArray]:
    """`cold_start` with each pick's score: its responsibility if typical, else its distance."""
    rows = check_features(features).shape[0]
    count = _check_count(k, "k")
    seed = _check_seed(seed)
    mask = labelled_mask(labelled, rows)
    if responsibilities is None:
        return k_center_greedy_scored(features, count, mask, seed)
    resp = check_responsibilities(responsibilities, rows)  # as given, not copied
    typical, typical_scores = typical_per_component(resp, ~mask, count)
    centres = mask.copy()
    centres[typical] = True
    rest, rest_scores = k_center_greedy_scored(features, count - typical.size, centres, seed)
    return np.concatenate([typical, rest]), np.concatenate([typical_scores, rest_scores])


def cold_start(
    features: npt.ArrayLike,
    k: int,
    seed: int = 0,
    responsibilities: npt.ArrayLike | None = None,
    labelled: npt.ArrayLike | None = None,
) -> IndexArray:
    """k diverse representatives to label first, when there are no (or few) labels.

    Without `responsibilities` (n, K): k-center greedy on `features` (seeded first pick).
    With them: first the most typical row of each used mixture component, most used
    component first (see `typical_per_component`), then k-center greedy for the rest with
    those rows (and any labelled rows) as centres; the seed then plays no part.
    """
    return cold_start_scored(features, k, seed, responsibilities, labelled)[0]


# TypiClust (Hacohen, Dekel & Weinshall, "Active learning on a budget", ICML 2022): with few
# labels, typical samples of uncovered clusters teach more than uncertain or extreme ones.
TYPICLUST_MAX_CLUSTERS = 500  # the paper's cap: beyond it clusters get too small to be typical
TYPICLUST_NEIGHBOURS = 20  # k of the k-nearest-neighbour density (the paper's value)
TYPICLUST_MIN_CLUSTER = 5  # clusters smaller than this are picked from only when no other is
TYPICLUST_DENSITY_SAMPLE = 4096  # neighbours are searched among at most this many members
# Wider features are projected to this many dimensions first: an SSVAE's encodings have
# classes x latent dims (3,168 for 99 Loghub templates), and k-means' cost grows with them.
TYPICLUST_MAX_DIMS = 256
_KMEANS_ITERATIONS = 50


def project_down(features: npt.ArrayLike, dims: int, seed: int = 0) -> FloatArray:
    """`features` (n, d) as they are when d <= dims, else times a seeded Gaussian matrix
    (d, dims) / sqrt(dims): a Johnson-Lindenstrauss projection, which keeps every pairwise
    distance to within a few tens of per cent at 256 dimensions (relative error about
    sqrt(2 / dims) for one pair) whatever n and d."""
    values = validate_features(features)
    if values.shape[1] <= dims:
        return values
    rng = np.random.default_rng(_check_seed(seed))
    matrix = rng.standard_normal((values.shape[1], dims)) / np.sqrt(dims)
    projected: FloatArray = values @ matrix
    return projected


def _assign(points: FloatArray, centres: FloatArray) -> IndexArray:
    """Each point's nearest centre (ties to the lower centre), in blocks of rows."""
    out = np.zeros(points.shape[0], dtype=np.int64)
    step = max(1, _DISTANCE_BLOCK_ELEMENTS // max(centres.shape[0], 1))
    for start in range(0, points.shape[0], step):
        out[start : start + step] = np.argmin(
            _centre_terms(points[start : start + step], centres), axis=1
        )
    return out


def kmeans(features: npt.ArrayLike, clusters: int, seed: int = 0) -> IndexArray:
    """Seeded k-means (k-means++ start, Lloyd steps until no point moves): each row's cluster.

    Deterministic for a seed; at most min(clusters, rows) clusters, numbered from 0, and an
    emptied cluster keeps its last centre (it may stay empty).
    """
    values = _centred(validate_features(features))
    count = min(_check_count(clusters, "clusters"), values.shape[0])
    rng = np.random.default_rng(_check_seed(seed))
    if count == 0:
        return np.zeros(values.shape[0], dtype=np.int64)
    norms = np.einsum("ij,ij->i", values, values)
    centres = np.empty((count, values.shape[1]))
    centres[0] = values[rng.integers(values.shape[0])]
    nearest = _nearest_squared_distances(values, norms, centres[:1])
    for c in range(1, count):
        total = nearest.sum()
        # D^2 sampling; once every point sits on a centre, any row will do.
        pick = (
            rng.choice(values.shape[0], p=nearest / total)
            if total > 0
            else rng.integers(values.shape[0])
        )
        centres[c] = values[pick]
        np.minimum(
            nearest, _nearest_squared_distances(values, norms, centres[c : c + 1]), out=nearest
        )
    assignment = _assign(values, centres)
    for _ in range(_KMEANS_ITERATIONS):
        sums = np.zeros_like(centres)
        np.add.at(sums, assignment, values)
        sizes = np.bincount(assignment, minlength=count)
        filled = sizes > 0
        centres[filled] = sums[filled] / sizes[filled, None]
        moved = _assign(values, centres)
        if np.array_equal(moved, assignment):
            break
        assignment = moved
    return assignment


def typicality(features: FloatArray, members: IndexArray, seed: int) -> FloatArray:
    """1 / mean distance to the `TYPICLUST_NEIGHBOURS` nearest other members, for each member.

    Neighbours are searched among all members, or a seeded sample of
    `TYPICLUST_DENSITY_SAMPLE` of them in a larger cluster. A lone member gets 0.
    """
    if members.size < 2:
        return np.zeros(members.size)
    reference = members
    if members.size > TYPICLUST_DENSITY_SAMPLE:
        chosen = np.random.default_rng(seed).choice(members.size, TYPICLUST_DENSITY_SAMPLE, False)
        reference = members[np.sort(chosen)]
    points, others = features[members], features[reference]
    point_norms = np.einsum("ij,ij->i", points, points)
    neighbours = min(TYPICLUST_NEIGHBOURS, reference.size - 1)
    out = np.empty(members.size)
    step = max(1, _DISTANCE_BLOCK_ELEMENTS // reference.size)
    for start in range(0, members.size, step):
        block = _centre_terms(points[start : start + step], others)
        block += point_norms[start : start + step, None]
        np.maximum(block, 0.0, out=block)
        # The nearest neighbours+1 include the member itself (distance 0) when it is in the
        # reference set; dropping the smallest value removes it either way.
        nearest = np.partition(block, neighbours, axis=1)[:, : neighbours + 1]
        nearest.sort(axis=1)
        mean = np.sqrt(nearest[:, 1:]).mean(axis=1)
        out[start : start + step] = 1.0 / np.maximum(mean, 1e-12)
    return out


def typiclust_scored(
    features: npt.ArrayLike, k: int, labelled: npt.ArrayLike | None = None, seed: int = 0
) -> tuple[IndexArray, FloatArray]:
    """TypiClust: k unlabelled rows, each the most typical of the least covered cluster.

    Features wider than `TYPICLUST_MAX_DIMS` are projected down first (`project_down`).
    Clusters the rows by k-means into min(labelled + k, `TYPICLUST_MAX_CLUSTERS`, rows)
    clusters, then k times: takes the cluster with the fewest labelled or picked rows (ties to
    the larger cluster, then the lower cluster number; clusters under `TYPICLUST_MIN_CLUSTER`
    rows only when no other has an unlabelled row) and picks its unlabelled row of highest
    typicality (ties to the lower row). Returns the rows in the order picked and their
    typicality.
    """
    seed = _check_seed(seed)
    values = _centred(project_down(features, TYPICLUST_MAX_DIMS, seed))
    rows = values.shape[0]
    count = _check_count(k, "k")
    mask = labelled_mask(labelled, rows)
    picks = min(count, int((~mask).sum()))
    if picks == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    clusters = min(int(mask.sum()) + picks, TYPICLUST_MAX_CLUSTERS, rows)
    assignment = kmeans(values, clusters, seed)
    sizes = np.bincount(assignment, minlength=clusters)
    covered = np.bincount(assignment[mask], minlength=clusters)
    taken = mask.copy()
    chosen: list[int] = []
    scores: list[float] = []
    for _ in range(picks):
        open_rows = np.bincount(assignment[~taken], minlength=clusters)
        small = sizes < TYPICLUST_MIN_CLUSTER
        usable = (open_rows > 0) & ~small
        if not usable.any():
            usable = open_rows > 0
        candidates = np.flatnonzero(usable)
        # lexsort's last key sorts first: fewest covered, then largest, then lowest number.
        cluster = int(
            candidates[np.lexsort((candidates, -sizes[candidates], covered[candidates]))[0]]
        )
        members = np.flatnonzero(assignment == cluster)
        density = typicality(values, members, seed + cluster)
        free = ~taken[members]
        best = int(np.argmax(np.where(free, density, -np.inf)))
        row = int(members[best])
        chosen.append(row)
        scores.append(float(density[best]))
        taken[row] = True
        covered[cluster] += 1
    return np.asarray(chosen, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def typiclust(
    features: npt.ArrayLike, k: int, labelled: npt.ArrayLike | None = None, seed: int = 0
) -> IndexArray:
    """`typiclust_scored`'s rows only."""
    return typiclust_scored(features, k, labelled, seed)[0]
