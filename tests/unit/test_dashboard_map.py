"""The latent map's values: projection, row order, colour columns and point picking."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.domain.acquisition import AcquisitionError, margin
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.viewmodels.map import (
    ACQUISITION,
    CLASS_AXES,
    CLASS_VIEW,
    COLOUR_MODES,
    COMPONENT,
    NOVELTY,
    OOD,
    PREDICTED,
    TRUE_LABEL,
    UNKNOWN,
    USER_LABEL,
    DashboardError,
    acquisition_scores,
    build_pool_map,
    colour_column,
    in_view,
    nearest_row,
    project_2d,
    rows_in_box,
    rows_in_polygon,
    user_codes,
    with_layout,
)

VOCABULARY = ClassVocabulary(("cat", "dog", "owl"))


def _predictions(n: int, latent_dim: int = 4, components: int = 2, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    resp = rng.dirichlet(np.ones(components), n).astype(np.float32)
    return Predictions(
        class_probs=probs,
        latent_mean=rng.normal(size=(n, latent_dim)).astype(np.float32),
        certainty=probs.max(axis=1),
        ood_score=rng.random(n).astype(np.float32),
        responsibilities=resp,
    )


def test_a_2d_latent_is_drawn_as_it_is_and_a_wider_one_by_its_principal_axes() -> None:
    rng = np.random.default_rng(1)
    flat = rng.normal(size=(50, 2))
    xy, names = project_2d(flat)
    np.testing.assert_array_equal(xy, flat)
    assert names == ("z1", "z2")
    # Points along one direction in 5-D: the first axis carries all the spread.
    direction = np.array([3.0, 0.0, 4.0, 0.0, 0.0]) / 5.0
    line = rng.normal(size=(40, 1)) * direction + 2.0
    xy, names = project_2d(line)
    assert names == ("PC 1", "PC 2")
    centred = line - line.mean(axis=0)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(centred @ direction), atol=1e-9)
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-9)


def test_the_projection_does_not_depend_on_the_svd_sign() -> None:
    z = np.random.default_rng(2).normal(size=(30, 6))
    xy, _ = project_2d(z)
    flipped, _ = project_2d(z * np.array([-1, 1, 1, 1, 1, 1]))
    # The same picture up to the fixed sign rule: each axis's largest loading is positive.
    assert np.allclose(np.abs(xy), np.abs(flipped)) or np.allclose(xy, flipped)
    again, _ = project_2d(z.copy())
    np.testing.assert_array_equal(xy, again)


def test_the_map_sorts_rows_by_serial_and_keeps_every_column_aligned() -> None:
    serials = np.array([40, 10, 30, 20])
    predictions = _predictions(4)
    pool_map = build_pool_map(serials, predictions, VOCABULARY, np.array([2, 0, 1, -1]))
    np.testing.assert_array_equal(pool_map.serials, [10, 20, 30, 40])
    order = np.argsort(serials)
    np.testing.assert_allclose(pool_map.class_probs, predictions.class_probs[order], rtol=1e-6)
    np.testing.assert_array_equal(pool_map.true_classes, [0, -1, 1, 2])
    assert pool_map.component is not None
    np.testing.assert_array_equal(
        pool_map.component, predictions.responsibilities.argmax(axis=1)[order]
    )
    np.testing.assert_array_equal(pool_map.rows_of([30, 10]), [2, 0])
    with pytest.raises(DashboardError, match="serial 25"):
        pool_map.rows_of([25])


def test_user_codes_mark_labelled_rows_with_their_class_index() -> None:
    pool_map = build_pool_map(np.arange(5), _predictions(5), VOCABULARY)
    labels = LabelSet(VOCABULARY, {1: "owl", 3: "cat", 99: "dog"})  # 99 is outside the pool
    np.testing.assert_array_equal(user_codes(pool_map, labels), [-1, 2, -1, 0, -1])


def test_every_colour_mode_gives_one_value_per_point() -> None:
    pool_map = build_pool_map(np.arange(6), _predictions(6), VOCABULARY, np.arange(6) % 3)
    labels = LabelSet(VOCABULARY, {2: "dog"})
    for mode in COLOUR_MODES:
        column = colour_column(pool_map, mode, labels, "entropy")
        assert column.values.shape == (6,)
    user = colour_column(pool_map, USER_LABEL, labels)
    assert user.categories == VOCABULARY.names
    assert user.values.tolist() == [-1, -1, 1, -1, -1, -1]
    assert colour_column(pool_map, TRUE_LABEL, labels).values.tolist() == [0, 1, 2, 0, 1, 2]
    assert colour_column(pool_map, COMPONENT, labels).categories == ("0", "1")
    assert colour_column(pool_map, OOD, labels).categories is None
    with pytest.raises(DashboardError, match="colour mode"):
        colour_column(pool_map, "sparkle", labels)


def test_modes_without_data_say_why_instead_of_failing() -> None:
    bare = Predictions(
        class_probs=np.full((3, 3), 1 / 3, np.float32),
        latent_mean=np.zeros((3, 2), np.float32),
        certainty=np.full(3, 1 / 3, np.float32),
    )
    pool_map = build_pool_map(np.arange(3), bare, VOCABULARY)
    labels = LabelSet(VOCABULARY)
    assert "no true labels" in colour_column(pool_map, TRUE_LABEL, labels).note
    assert "one component" in colour_column(pool_map, COMPONENT, labels).note
    assert "OOD" in colour_column(pool_map, OOD, labels).note


def test_novelty_colours_the_map_and_marks_unknown_predictions() -> None:
    # Two known classes labelled 12 times each, a third class never labelled: its points are
    # far from every label, in the inputs and in the encodings.
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 40)
    centres = np.eye(6)[:3] * 4.0
    inputs = (centres[truth] + rng.normal(scale=0.5, size=(120, 6))).astype(np.float32)
    predictions = attrs.evolve(_predictions(120), encoding=inputs * 2.0)
    pool_map = build_pool_map(np.arange(120), predictions, VOCABULARY, truth, inputs=inputs)
    pairs = [(int(s), "cat") for s in range(12)] + [(int(s), "dog") for s in range(40, 52)]
    labels = LabelSet.from_pairs(VOCABULARY, pairs)
    column = colour_column(pool_map, NOVELTY, labels)
    assert column.categories is None
    assert column.values[80:].min() > column.values[:80].max()
    assert "unknown" in column.note and "about 5%" in column.note
    predicted = colour_column(pool_map, PREDICTED, labels)
    assert predicted.categories == (*VOCABULARY.names, UNKNOWN)
    unknown_code = len(VOCABULARY.names)
    assert np.mean(predicted.values[80:] == unknown_code) > 0.9
    assert np.mean(predicted.values[:80] == unknown_code) < 0.1
    # Before 2 labels there is no novelty: the mode says what to do, predictions stay plain.
    one = LabelSet.from_pairs(VOCABULARY, [(0, "cat")])
    assert "label at least 2" in colour_column(pool_map, NOVELTY, one).note
    assert colour_column(pool_map, PREDICTED, one).categories == VOCABULARY.names
    # Too few labels to calibrate: scores, but nothing is called unknown.
    few = LabelSet.from_pairs(VOCABULARY, pairs[:5] + pairs[12:17])
    assert "needs at least 19 labelled" in colour_column(pool_map, NOVELTY, few).note


def test_acquisition_scores_are_the_policy_scores_of_every_point() -> None:
    predictions = _predictions(8)
    pool_map = build_pool_map(np.arange(8), predictions, VOCABULARY)
    np.testing.assert_allclose(
        acquisition_scores(pool_map, "margin"), margin(predictions.class_probs), rtol=1e-6
    )
    np.testing.assert_allclose(
        acquisition_scores(pool_map, "diverse_margin"), margin(predictions.class_probs), rtol=1e-6
    )
    np.testing.assert_allclose(acquisition_scores(pool_map, "tau_ood"), predictions.ood_score)
    column = colour_column(pool_map, ACQUISITION, LabelSet(VOCABULARY), "margin")
    assert column.mode == "acquisition score (margin)"
    with pytest.raises(DashboardError, match="scores a batch"):
        acquisition_scores(pool_map, "kcenter")
    with pytest.raises(AcquisitionError, match="unknown acquisition policy"):
        acquisition_scores(pool_map, "psychic")


def test_a_click_picks_the_nearest_point_on_screen() -> None:
    latent = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 1.0]], np.float32)
    predictions = Predictions(
        class_probs=np.full((3, 3), 1 / 3, np.float32),
        latent_mean=latent,
        certainty=np.full(3, 1 / 3, np.float32),
    )
    pool_map = build_pool_map(np.arange(3), predictions, VOCABULARY)
    # In data units (6, 0.6) is nearer to (10, 0); on a screen showing x over 100 units and
    # y over 1 unit it is nearer to (0, 1).
    assert nearest_row(pool_map, 6.0, 0.6, 1.0, 1.0) == 1
    assert nearest_row(pool_map, 6.0, 0.6, 100.0, 1.0) == 2


def _square_map() -> object:
    xs, ys = np.meshgrid(np.arange(5.0), np.arange(5.0))
    latent = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float32)
    n = len(latent)
    predictions = Predictions(
        class_probs=np.full((n, 3), 1 / 3, np.float32),
        latent_mean=latent,
        certainty=np.full(n, 1 / 3, np.float32),
    )
    return build_pool_map(np.arange(n), predictions, VOCABULARY)


def test_lasso_and_box_select_the_points_inside() -> None:
    pool_map = _square_map()
    # A triangle around (1, 1), (2, 1) and (1, 2) of the 5 x 5 grid.
    inside = rows_in_polygon(pool_map, [0.5, 2.8, 0.5], [0.5, 0.5, 2.8])
    assert sorted(map(tuple, pool_map.xy[inside].tolist())) == [(1, 1), (1, 2), (2, 1)]
    box = rows_in_box(pool_map, 3.5, 1.5, 0.5, 1.5)
    assert sorted(map(tuple, pool_map.xy[box].tolist())) == [(2, 1), (3, 1)]
    assert rows_in_polygon(pool_map, [0, 1], [0, 1]).size == 0  # not a polygon


def _distance_to_edges(point: np.ndarray, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    best = np.inf
    for i in range(len(xs)):
        a = np.array([xs[i - 1], ys[i - 1]])
        b = np.array([xs[i], ys[i]])
        t = np.clip(np.dot(point - a, b - a) / max(np.dot(b - a, b - a), 1e-300), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(point - (a + t * (b - a)))))
    return best


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 7), st.floats(-3, 7)), min_size=3, max_size=8, unique=True))
def test_the_polygon_test_agrees_with_matplotlib(vertices: list[tuple[float, float]]) -> None:
    from matplotlib.path import Path as PolygonPath

    pool_map = _square_map()
    # Vertices in angular order around their mean: a simple polygon, on which the even-odd
    # rule (ours) and matplotlib's winding rule agree.
    points = np.array(vertices)
    centre = points.mean(axis=0)
    points = points[np.argsort(np.arctan2(*(points - centre).T[::-1]))]
    xs, ys = tuple(points[:, 0]), tuple(points[:, 1])
    ours = set(rows_in_polygon(pool_map, xs, ys).tolist())
    reference = PolygonPath(np.column_stack([xs, ys]))
    for row, point in enumerate(pool_map.xy):
        if _distance_to_edges(point, xs, ys) < 1e-6:
            continue  # a point on an edge may go either way
        assert (row in ours) == bool(reference.contains_point(point)), (row, point)


def test_a_pixel_names_its_own_point_else_the_nearest_within_reach() -> None:
    from ssvae.entrypoints.dashboard.viewmodels.map import reach_rows

    raster = np.full((5, 9), -1)
    raster[2, 1] = 7
    raster[2, 6] = 4
    reached = reach_rows(raster, radius=2)
    assert reached[2, 1] == 7 and reached[2, 6] == 4  # a point's own pixel
    assert reached[2, 3] == 7 and reached[2, 4] == 4  # two pixels from one, three from the other
    assert reached[0, 1] == 7  # two pixels below
    assert reached[0, 3] == -1  # sqrt(8) pixels from the nearest: out of reach
    assert (reach_rows(np.full((3, 3), -1)) == -1).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 4), st.floats(0.0, 0.3))
def test_every_pixel_names_a_nearest_point_pixel_within_reach(
    seed: int, radius: int, density: float
) -> None:
    from ssvae.entrypoints.dashboard.viewmodels.map import reach_rows

    rng = np.random.default_rng(seed)
    raster = np.where(rng.random((11, 13)) < density, rng.integers(0, 1000, (11, 13)), -1)
    reached = reach_rows(raster, radius)
    occupied = np.argwhere(raster >= 0)
    for (line, column), row in np.ndenumerate(reached):
        if occupied.size == 0:
            assert row == -1
            continue
        distance = np.sqrt(((occupied - (line, column)) ** 2).sum(axis=1))
        if distance.min() > radius:
            assert row == -1
        else:
            nearest = occupied[distance == distance.min()]
            assert row in {int(raster[a, b]) for a, b in nearest}, (line, column)


def test_a_position_is_looked_up_in_the_pixel_the_browser_hover_reads() -> None:
    from ssvae.entrypoints.dashboard.viewmodels.map import row_at

    reached = np.arange(8).reshape(2, 4)  # row 0 of the raster is the bottom
    assert row_at(reached, (0.0, 4.0), (0.0, 2.0), 0.1, 0.1) == 0
    assert row_at(reached, (0.0, 4.0), (0.0, 2.0), 3.9, 1.9) == 7
    assert row_at(reached, (0.0, 4.0), (0.0, 2.0), 1.0, 1.0) == 5  # a boundary: the next pixel
    assert row_at(reached, (0.0, 4.0), (0.0, 2.0), 4.0, 1.0) == -1  # outside
    assert row_at(reached, (0.0, 4.0), (0.0, 2.0), float("nan"), 1.0) == -1
    assert row_at(reached, (1.0, 1.0), (0.0, 2.0), 1.0, 1.0) == -1  # an empty view


def test_the_class_map_is_drawn_once_laid_out_and_the_latent_stays_a_view() -> None:
    serials = np.array([30, 10, 20, 40])
    pool_map = build_pool_map(serials, _predictions(4), VOCABULARY)
    assert pool_map.view == "latent (PCA)"
    latent_xy = pool_map.xy.copy()
    # The layout lists serials in its own order; each lands on its own map row.
    layout_serials = np.array([40, 20, 10, 30])
    positions = np.array([[4.0, -4.0], [2.0, -2.0], [1.0, -1.0], [3.0, -3.0]])
    drawn = with_layout(pool_map, layout_serials, positions)
    assert drawn.view == CLASS_VIEW and drawn.axis_names == CLASS_AXES
    np.testing.assert_array_equal(drawn.serials, [10, 20, 30, 40])
    np.testing.assert_array_equal(drawn.xy[:, 0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(drawn.class_probs, pool_map.class_probs)  # colours unmoved
    latent = in_view(drawn, "latent (PCA)")
    np.testing.assert_array_equal(latent.xy, latent_xy)
    assert latent.axis_names == pool_map.axis_names
    np.testing.assert_array_equal(in_view(latent, CLASS_VIEW).xy, drawn.xy)


def test_the_class_map_before_its_layout_or_of_another_pool_says_what_to_do() -> None:
    pool_map = build_pool_map(np.arange(5), _predictions(5), VOCABULARY)
    with pytest.raises(DashboardError, match="not laid out yet") as error:
        in_view(pool_map, CLASS_VIEW)
    assert "\n" not in str(error.value)
    with pytest.raises(DashboardError, match="places 4 samples, the pool has 5"):
        with_layout(pool_map, np.arange(4), np.zeros((4, 2)))
    with pytest.raises(DashboardError, match="not in the pool"):
        with_layout(pool_map, np.arange(1, 6), np.zeros((5, 2)))
    with pytest.raises(DashboardError, match="unknown map view"):
        in_view(pool_map, "umap")


def test_a_pool_in_serial_order_keeps_its_large_arrays_uncopied() -> None:
    import attrs

    rng = np.random.default_rng(0)
    encodings = rng.normal(size=(6, 5)).astype(np.float32)
    inputs = rng.normal(size=(6, 3)).astype(np.float32)
    predictions = attrs.evolve(_predictions(6), encoding=encodings)
    ordered = build_pool_map(np.arange(6), predictions, VOCABULARY, inputs=inputs)
    # A million rows' encodings are gigabytes: a pool already in serial order uses them as is.
    assert ordered.encodings is encodings and ordered.inputs is inputs
    shuffled = build_pool_map(np.arange(6)[::-1], predictions, VOCABULARY, inputs=inputs)
    np.testing.assert_array_equal(shuffled.encodings, encodings[::-1])
    np.testing.assert_array_equal(shuffled.serials, np.arange(6))
