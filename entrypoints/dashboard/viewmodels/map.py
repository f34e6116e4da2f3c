"""The map of the whole pool, as the dashboard draws it: positions and colour columns.

Plain values built from a model's predictions; the dashboard only draws them. Two views:
the class map (`CLASS_VIEW`), the workspace's cached layout of the model's class probabilities
and encodings, which groups classes, so a lasso takes mostly one class; and the latent
(`LATENT_VIEW`), which shows style: a 2-D latent as it is, a wider one through a PCA
projection whose axes are computed once per model, so every page of one model shows the same
picture. The latent view is drawn until the class map is laid out (a model's first layout
takes a while) and for an untrained model, which has none.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.acquisition import POLICIES, AcquisitionError
from ssvae.domain.errors import SsvaeError
from ssvae.domain.labels import ClassVocabulary, LabelSet, ascending_unique
from ssvae.domain.model import Predictions
from ssvae.domain.novelty import MIN_LABELLED, Novelty, novelty
from ssvae.domain.policies import MAP_POLICIES, REGISTRY
from ssvae.domain.query import SELECTION_POLICIES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

USER_LABEL = "user label"
TRUE_LABEL = "true label"
PREDICTED = "predicted class"
CERTAINTY = "certainty"
OOD = "OOD score"
COMPONENT = "mixture component"
ACQUISITION = "acquisition score"
NOVELTY = "novelty"
UNKNOWN = "unknown"  # the predicted class of a point whose novelty passes the threshold
CLASS_VIEW = "class map"
LATENT_VIEW = "latent (PCA)"
MAP_VIEWS: tuple[str, ...] = (CLASS_VIEW, LATENT_VIEW)
CLASS_AXES = ("map 1", "map 2")
COLOUR_MODES: tuple[str, ...] = (
    USER_LABEL,
    TRUE_LABEL,
    PREDICTED,
    CERTAINTY,
    OOD,
    NOVELTY,
    COMPONENT,
    ACQUISITION,
)


class DashboardError(SsvaeError, ValueError):
    """A request the dashboard cannot serve, with what to do instead."""


@attrs.frozen(eq=False)
class PoolMap:
    """The pool in 2-D with the model's outputs for each point, row-aligned with `serials`."""

    serials: IntArray
    xy: FloatArray  # (n, 2) the drawn positions
    axis_names: tuple[str, str]
    latent: FloatArray  # (n, d) latent means: nearest neighbours are found here
    class_probs: FloatArray  # (n, C) q(y|x)
    tau_probs: FloatArray | None  # (n, C) sum_c r_c tau[c, y]
    certainty: FloatArray
    ood: FloatArray | None
    component: IntArray | None  # most responsible mixture component
    responsibilities: FloatArray | None  # (n, K) r_c(x)
    true_classes: IntArray | None  # class index or -1 where the data has no truth
    vocabulary: ClassVocabulary
    num_components: int = 1
    encodings: npt.NDArray[np.float32] | None = None  # (n, e) Predictions.encoding (typiclust)
    inputs: npt.NDArray[np.float32] | None = None  # (n, d) query.input_vectors (novelty)
    view: str = LATENT_VIEW  # which positions `xy` holds
    latent_xy: FloatArray | None = None  # (n, 2) the latent view's positions
    latent_axes: tuple[str, str] = ("z1", "z2")
    class_xy: FloatArray | None = None  # (n, 2) the class map, once laid out

    def __len__(self) -> int:
        return int(self.serials.shape[0])

    @property
    def projection(self) -> str:
        """What the drawn positions are, as the map's caption names them."""
        if self.view == CLASS_VIEW:
            return "class map: t-SNE of the model's class probabilities and encodings"
        dims = self.latent.shape[1]
        return "the 2-D latent" if dims <= 2 else f"PCA of the {dims}-D latent"

    @property
    def predicted(self) -> IntArray:
        """The classifier's class per point."""
        return np.asarray(self.class_probs.argmax(axis=1), np.int64)

    def rows_of(self, serials: npt.ArrayLike) -> IntArray:
        """The map rows of `serials`; DashboardError naming a serial the map does not hold."""
        wanted = np.atleast_1d(np.asarray(serials, np.int64))
        rows = np.searchsorted(self.serials, wanted)
        rows = np.minimum(rows, len(self) - 1)
        missing = wanted[self.serials[rows] != wanted]
        if missing.size:
            raise DashboardError(
                f"serial {int(missing[0])} is not in the pool of this model; pick a point "
                "on the map"
            )
        return np.asarray(rows, np.int64)


def project_2d(latent: npt.ArrayLike) -> tuple[FloatArray, tuple[str, str]]:
    """The latent itself when 2-D (1-D: a zero second axis), else its first two PCA axes.

    Axis signs are fixed (largest loading positive) so the same latent always gives the same
    picture, whatever the SVD routine's sign convention.
    """
    z = np.asarray(latent, np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise DashboardError(f"latent codes must be (samples, dims) with samples, got {z.shape}")
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.zeros(len(z))]), ("z1", "(none)")
    if z.shape[1] == 2:
        return z.copy(), ("z1", "z2")
    centred = z - z.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    projected: FloatArray = centred @ axes.T
    return projected, ("PC 1", "PC 2")


def build_pool_map(
    serials: npt.ArrayLike,
    predictions: Predictions,
    vocabulary: ClassVocabulary,
    true_classes: npt.ArrayLike | None = None,
    inputs: npt.ArrayLike | None = None,
) -> PoolMap:
    """The map of a pool from the model's predictions on it (rows sorted by serial); `inputs`
    are the samples' input vectors (query.input_vectors), which novelty compares."""
    serial_array = np.asarray(serials, np.int64)
    ordered = ascending_unique(serial_array)
    order = None if ordered else np.argsort(serial_array, kind="stable")

    def in_order(values: npt.ArrayLike, dtype: type) -> npt.NDArray[Any]:
        # A pool's serials are usually ascending already: its arrays are then used as they
        # are, not copied (a million rows' encodings alone are gigabytes).
        array: npt.NDArray[Any] = np.asarray(values, dtype)
        return array if order is None else array[order]

    def sorted_rows(values: npt.ArrayLike | None, dtype: type) -> npt.NDArray[Any] | None:
        return None if values is None else in_order(values, dtype)

    latent = in_order(predictions.latent_mean, np.float64)
    xy, axis_names = project_2d(latent)
    responsibilities = predictions.responsibilities
    component = None
    num_components = 1 if responsibilities is None else int(responsibilities.shape[1])
    if responsibilities is not None and num_components > 1:
        component = sorted_rows(responsibilities.argmax(axis=1), np.int64)
    return PoolMap(
        serials=serial_array if order is None else serial_array[order],
        xy=xy,
        axis_names=axis_names,
        latent_xy=xy,
        latent_axes=axis_names,
        latent=latent,
        class_probs=in_order(predictions.class_probs, np.float64),
        tau_probs=sorted_rows(predictions.tau_probs, np.float64),
        certainty=in_order(predictions.certainty, np.float64),
        ood=sorted_rows(predictions.ood_score, np.float64),
        component=component,
        responsibilities=sorted_rows(responsibilities, np.float64),
        true_classes=sorted_rows(true_classes, np.int64),
        vocabulary=vocabulary,
        num_components=num_components,
        encodings=sorted_rows(predictions.encoding, np.float32),
        inputs=sorted_rows(inputs, np.float32),
    )


def with_layout(pool_map: PoolMap, serials: npt.ArrayLike, positions: npt.ArrayLike) -> PoolMap:
    """The map with the class map's `positions` (one row a serial, any order) as its view;
    DashboardError when the layout does not place exactly the map's serials."""
    serial_array = np.asarray(serials, np.int64)
    xy = np.asarray(positions, np.float64)
    if serial_array.shape != pool_map.serials.shape or xy.shape != (len(serial_array), 2):
        raise DashboardError(
            f"the class map places {serial_array.size} samples, the pool has {len(pool_map)}; "
            "reload the page to lay it out again"
        )
    rows = pool_map.rows_of(serial_array)
    aligned = np.empty_like(xy)
    aligned[rows] = xy
    return in_view(attrs.evolve(pool_map, class_xy=aligned), CLASS_VIEW)


def in_view(pool_map: PoolMap, view: str) -> PoolMap:
    """The map drawn in `view`; DashboardError for the class map before it is laid out."""
    if view == CLASS_VIEW:
        if pool_map.class_xy is None:
            raise DashboardError(
                "the class map is not laid out yet: it comes after a training run; meanwhile "
                f"the map shows the {LATENT_VIEW}"
            )
        return attrs.evolve(pool_map, xy=pool_map.class_xy, axis_names=CLASS_AXES, view=view)
    if view == LATENT_VIEW:
        latent_xy = pool_map.xy if pool_map.latent_xy is None else pool_map.latent_xy
        return attrs.evolve(pool_map, xy=latent_xy, axis_names=pool_map.latent_axes, view=view)
    raise DashboardError(f"unknown map view {view!r}; choose one of {', '.join(MAP_VIEWS)}")


@attrs.frozen(eq=False)
class ColourColumn:
    """What colours the points: category codes (-1 = none) with names, or continuous values."""

    mode: str
    values: FloatArray
    categories: tuple[str, ...] | None  # None for a continuous colour scale
    note: str = ""  # shown under the map, e.g. why a mode is empty


def user_codes(pool_map: PoolMap, labels: LabelSet) -> IntArray:
    """The user's class index per map row, -1 where unlabelled."""
    codes = np.full(len(pool_map), -1, np.int64)
    serials = labels.serials()
    if serials.size:
        rows = np.searchsorted(pool_map.serials, serials)
        rows = np.minimum(rows, max(len(pool_map) - 1, 0))
        inside = pool_map.serials[rows] == serials
        codes[rows[inside]] = labels.class_indices()[inside]
    return codes


def pool_novelty(pool_map: PoolMap, labels: LabelSet) -> Novelty | None:
    """Novelty of every map row against the labelled rows; None with fewer than 2 labelled
    rows, or without input vectors or encodings."""
    if pool_map.inputs is None or pool_map.encodings is None:
        return None
    codes = user_codes(pool_map, labels)
    labelled = codes >= 0
    if int(labelled.sum()) < MIN_LABELLED:
        return None
    return novelty(
        [pool_map.inputs, pool_map.encodings], labelled, codes[labelled], inputs=pool_map.inputs
    )


def _novelty_column(pool_map: PoolMap, labels: LabelSet) -> ColourColumn:
    scored = pool_novelty(pool_map, labels)
    if scored is None:
        empty = np.full(len(pool_map), np.nan)
        return ColourColumn(
            NOVELTY,
            empty,
            None,
            f"novelty compares each sample with the labelled ones: label at least {MIN_LABELLED}",
        )
    flagged = int(scored.unknown.sum())
    if not np.isfinite(scored.threshold):
        needed = math.ceil(1.0 / scored.alpha) - 1
        note = (
            f"no point is called unknown yet: the threshold needs at least {needed} labelled "
            "samples to be calibrated"
        )
        return ColourColumn(NOVELTY, scored.scores, None, note)
    note = (
        f"{flagged:,} of {len(pool_map):,} points are unknown: novelty above "
        f"{scored.threshold:.3g}, which about {scored.alpha:.0%} of samples like the labelled "
        "ones pass (from the labelled samples' out-of-sample scores)"
    )
    return ColourColumn(NOVELTY, scored.scores, None, note)


def _predicted_column(pool_map: PoolMap, labels: LabelSet) -> ColourColumn:
    names = pool_map.vocabulary.names
    codes = pool_map.predicted.astype(np.float64)
    scored = pool_novelty(pool_map, labels)
    if scored is None:
        return ColourColumn(PREDICTED, codes, names)
    codes[scored.unknown] = len(names)
    note = f"{int(scored.unknown.sum()):,} points predicted {UNKNOWN} (see the novelty colour)"
    return ColourColumn(PREDICTED, codes, (*names, UNKNOWN), note)


def acquisition_scores(pool_map: PoolMap, policy: str, seed: int = 0) -> FloatArray:
    """Every point's score under `policy`; DashboardError for policies without one."""
    info = REGISTRY.get(policy)
    if info is None or info.map_score is None:
        if info is None:
            raise AcquisitionError(
                f"unknown acquisition policy {policy!r}; choose one of "
                f"{', '.join(SELECTION_POLICIES)}"
            )
        raise DashboardError(
            f"policy {policy!r} scores a batch, not each sample; colour the map by one of "
            f"{', '.join(MAP_POLICIES)}"
        )
    score = info.map_score
    if score == "tau_ood":
        if pool_map.ood is None:
            raise DashboardError("this model has no OOD score yet: label some samples and train it")
        return np.asarray(pool_map.ood, np.float64)
    return POLICIES[score](pool_map.class_probs, seed)


def colour_column(
    pool_map: PoolMap, mode: str, labels: LabelSet, policy: str = "margin", seed: int = 0
) -> ColourColumn:
    """The colour values of `mode` for every map row."""
    names = pool_map.vocabulary.names
    if mode == USER_LABEL:
        return ColourColumn(mode, user_codes(pool_map, labels).astype(np.float64), names)
    if mode == TRUE_LABEL:
        if pool_map.true_classes is None:
            empty = np.full(len(pool_map), -1.0)
            return ColourColumn(mode, empty, names, "this dataset has no true labels")
        return ColourColumn(mode, pool_map.true_classes.astype(np.float64), names)
    if mode == PREDICTED:
        return _predicted_column(pool_map, labels)
    if mode == NOVELTY:
        return _novelty_column(pool_map, labels)
    if mode == CERTAINTY:
        return ColourColumn(mode, pool_map.certainty.astype(np.float64), None)
    if mode == OOD:
        if pool_map.ood is None:
            return ColourColumn(
                mode,
                np.zeros(len(pool_map)),
                None,
                "no OOD score yet: label some samples and train the model",
            )
        return ColourColumn(mode, np.asarray(pool_map.ood, np.float64), None)
    if mode == COMPONENT:
        if pool_map.component is None:
            empty = np.full(len(pool_map), -1.0)
            return ColourColumn(mode, empty, ("0",), "the model's prior has one component")
        components = tuple(str(c) for c in range(pool_map.num_components))
        return ColourColumn(mode, pool_map.component.astype(np.float64), components)
    if mode == ACQUISITION:
        return ColourColumn(f"{mode} ({policy})", acquisition_scores(pool_map, policy, seed), None)
    raise DashboardError(f"unknown colour mode {mode!r}; choose one of {', '.join(COLOUR_MODES)}")


def nearest_row(pool_map: PoolMap, x: float, y: float, x_span: float, y_span: float) -> int:
    """The map row nearest to (x, y), distances measured in units of the visible spans, so
    a click picks the point nearest on screen whatever the axes' scales."""
    if len(pool_map) == 0:
        raise DashboardError("the map is empty: the model's pool has no samples")
    dx = (pool_map.xy[:, 0] - x) / (x_span if x_span > 0 else 1.0)
    dy = (pool_map.xy[:, 1] - y) / (y_span if y_span > 0 else 1.0)
    return int(np.argmin(dx * dx + dy * dy))


def rows_in_polygon(pool_map: PoolMap, xs: npt.ArrayLike, ys: npt.ArrayLike) -> IntArray:
    """Map rows inside the polygon with vertices (xs, ys), by the even-odd rule."""
    vx, vy = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if vx.shape != vy.shape or vx.ndim != 1 or vx.size < 3:
        return np.zeros(0, np.int64)
    # Only the rows in the polygon's bounding box can be inside: a lasso round 10,000 of a
    # million points then tests its edges against those rows, not against the million.
    xy = pool_map.xy
    candidates = np.flatnonzero(
        (xy[:, 0] >= vx.min())
        & (xy[:, 0] <= vx.max())
        & (xy[:, 1] >= vy.min())
        & (xy[:, 1] <= vy.max())
    )
    px, py = xy[candidates, 0], xy[candidates, 1]
    inside = np.zeros(candidates.size, bool)
    for i in range(vx.size):
        x1, y1, x2, y2 = vx[i - 1], vy[i - 1], vx[i], vy[i]
        if y1 == y2:
            continue  # a horizontal edge crosses no horizontal ray
        crosses = (y1 > py) != (y2 > py)
        # The fraction first: in [0, 1] where the edge crosses, so huge coordinates cannot
        # overflow there; elsewhere it may overflow, and `crosses` masks it out.
        with np.errstate(over="ignore", invalid="ignore"):
            at_x = x1 + (py - y1) / (y2 - y1) * (x2 - x1)
        inside ^= crosses & (px < at_x)
    return candidates[inside].astype(np.int64)


def rows_in_box(pool_map: PoolMap, x0: float, x1: float, y0: float, y1: float) -> IntArray:
    """Map rows inside the axis-aligned box (corners in any order)."""
    left, right = sorted((x0, x1))
    bottom, top = sorted((y0, y1))
    px, py = pool_map.xy[:, 0], pool_map.xy[:, 1]
    inside = (px >= left) & (px <= right) & (py >= bottom) & (py <= top)
    return np.flatnonzero(inside).astype(np.int64)


HOVER_PIXELS = 3  # how far from a point, in raster pixels, the pointer still names it


def reach_rows(raster: IntArray, radius: int = HOVER_PIXELS) -> IntArray:
    """The row each pixel of a rasterised pool names under the pointer: its own row where a
    point falls in it (`raster` >= 0), else the row of the nearest such pixel within `radius`
    pixels (centre to centre; of equally near ones, the first in a fixed order), else -1.

    The hover reads this raster in the browser and a click is resolved in the same raster on
    the server (`row_at`), so the point the hover names is the point a click there selects,
    and the pointer need not sit on a point's own pixel.
    """
    raster = np.asarray(raster, np.int64)
    reached = raster.copy()
    height, width = raster.shape
    offsets = sorted(
        (dx * dx + dy * dy, dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if 0 < dx * dx + dy * dy <= radius * radius
    )
    for _, dy, dx in offsets:
        # shifted[r, c] = raster[r + dy, c + dx]: the pixel at this offset, -1 off the edge
        shifted = np.full_like(raster, -1)
        rows_to, rows_from = _overlap(height, dy)
        cols_to, cols_from = _overlap(width, dx)
        shifted[rows_to, cols_to] = raster[rows_from, cols_from]
        take = (reached < 0) & (shifted >= 0)
        reached[take] = shifted[take]
    return reached


def _overlap(size: int, offset: int) -> tuple[slice, slice]:
    """Slices `to`, `from` with to[i] + offset == from[i] inside range(size)."""
    if offset >= 0:
        return slice(0, size - offset), slice(offset, size)
    return slice(-offset, size), slice(0, size + offset)


def row_at(
    reached: IntArray,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x: float,
    y: float,
) -> int:
    """The row `reached` (as `reach_rows` gives it, drawn over the ranges, row 0 of the raster
    at the bottom) names at the data position (x, y); -1 for none or outside the ranges.

    The pixel is found as the browser's hover finds it in an image: the floor of the position's
    fraction of the range times the pixels."""
    height, width = reached.shape
    (x0, x1), (y0, y1) = x_range, y_range
    if not (x1 > x0 and y1 > y0) or not (math.isfinite(x) and math.isfinite(y)):
        return -1
    column = math.floor((x - x0) / (x1 - x0) * width)
    line = math.floor((y - y0) / (y1 - y0) * height)
    if not (0 <= column < width and 0 <= line < height):
        return -1
    return int(reached[line, column])
