"""The latent map figure: its class colours, its colour bar and its selection rings."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.model import Predictions
from ssvae.entrypoints.dashboard.latent_map import NONE_COLOUR, LatentMapView, category_palette
from ssvae.entrypoints.dashboard.viewmodels.map import (
    ACQUISITION,
    CERTAINTY,
    PREDICTED,
    TRUE_LABEL,
    USER_LABEL,
    build_pool_map,
    colour_column,
)

VOCABULARY = ClassVocabulary.digits(3)


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.float64)


@pytest.mark.parametrize("count", range(1, 41))
def test_no_class_colour_reads_as_the_unlabelled_grey(count: int) -> None:
    palette = np.array([_rgb(c) for c in category_palette(count)])
    assert len(palette) == count
    # Greyness is a small spread between the channels, whatever the lightness: Category10's
    # #7f7f7f is far from NONE_COLOUR in RGB yet reads as grey beside it.
    assert (palette.max(axis=1) - palette.min(axis=1)).min() >= 40
    assert np.linalg.norm(palette - _rgb(NONE_COLOUR), axis=1).min() >= 80
    distances = np.linalg.norm(palette[:, None, :] - palette[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 12  # distinct: no two classes share a colour


def test_continuous_modes_show_a_colour_bar_of_their_range_and_categories_none() -> None:
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    rng = np.random.default_rng(0)
    n = 30
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    latent = rng.normal(size=(n, 2)).astype(np.float32)
    pool_map = build_pool_map(
        np.arange(n), Predictions(probs, latent, probs.max(axis=1)), VOCABULARY, np.arange(n) % 3
    )
    labels = LabelSet(VOCABULARY, {0: "1"})
    view = LatentMapView(
        pool_map,
        colour_column(pool_map, USER_LABEL, labels),
        np.full(n, -1),
        lambda _: None,
        lambda _: None,
    )
    assert view.colour_bar in view.figure.right and not view.colour_bar.visible
    for mode in (CERTAINTY, ACQUISITION):
        column = colour_column(pool_map, mode, labels)
        view.recolour(column)
        assert view.colour_bar.visible and view.colour_bar.title == column.mode
        finite = column.values[np.isfinite(column.values)]
        assert (view.scale.low, view.scale.high) == (finite.min(), finite.max())
    for mode in (PREDICTED, TRUE_LABEL, USER_LABEL):
        view.recolour(colour_column(pool_map, mode, labels))
        assert not view.colour_bar.visible


def _view(n: int, seed: int = 0, mode: str = USER_LABEL) -> tuple[object, object, list[int]]:
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    latent = rng.normal(size=(n, 2)).astype(np.float32)
    pool_map = build_pool_map(
        np.arange(n) * 10 + 5, Predictions(probs, latent, probs.max(axis=1)), VOCABULARY
    )
    clicked: list[int] = []
    labels = LabelSet(VOCABULARY, {})
    view = LatentMapView(
        pool_map,
        colour_column(pool_map, mode, labels),
        np.full(n, -1),
        clicked.append,
        lambda _: None,
    )
    return view, pool_map, clicked


def _hover_serial(view: LatentMapView, x: float, y: float) -> float:
    """The serial the browser's hover shows at (x, y): the serial image's pixel, found as
    Bokeh finds an image's pixel under the pointer."""
    data = view.serial_source.data
    image = data["image"][0]
    height, width = image.shape
    column = int(np.floor((x - data["x"][0]) / data["dw"][0] * width))
    line = int(np.floor((y - data["y"][0]) / data["dh"][0] * height))
    return float(image[line, column])


def _tap(view: LatentMapView, x: float, y: float) -> None:
    from bokeh import events

    view._tapped(events.Tap(view.figure, x=x, y=y))


def test_the_hover_names_a_point_a_few_pixels_off_it_and_the_click_selects_it() -> None:
    view, pool_map, clicked = _view(1)
    x, y = pool_map.xy[0]
    pixel = view.serial_source.data["dw"][0] / view.serial_source.data["image"][0].shape[1]
    # Two pixels to the right of the point's own pixel: the pointer need not be exactly on it.
    assert _hover_serial(view, x + 2 * pixel, y) == 5
    _tap(view, x + 2 * pixel, y)
    assert clicked == [0]
    far = x + 20 * pixel  # far from every point: the hover names none, a click selects none
    assert np.isnan(_hover_serial(view, far, y))
    _tap(view, far, y)
    assert clicked == [0]


def test_the_hover_and_the_click_name_the_same_point_everywhere() -> None:
    view, pool_map, clicked = _view(400, seed=3)
    rng = np.random.default_rng(1)
    (x0, x1), (y0, y1) = view._view
    for x, y in zip(rng.uniform(x0, x1, 300), rng.uniform(y0, y1, 300), strict=True):
        shown = _hover_serial(view, x, y)
        before = len(clicked)
        _tap(view, x, y)
        if np.isnan(shown):
            assert len(clicked) == before
        else:
            assert int(pool_map.serials[clicked[-1]]) == shown


def test_the_pool_is_drawn_grey_by_user_label_and_in_class_colours_by_truth() -> None:
    view, pool_map, _ = _view(200, seed=2)
    drawn = view.source.data["image"][0]
    colours = {int(c) for c in np.unique(drawn) if c}
    rgba = np.array(sorted(colours), np.uint32).view(np.uint8).reshape(-1, 4)
    assert (rgba[:, :3] == _rgb(NONE_COLOUR)).all()  # every drawn pixel is the none grey
    codes = np.arange(len(pool_map)) % 3
    column = colour_column(
        attrs.evolve(pool_map, true_classes=codes), TRUE_LABEL, LabelSet(VOCABULARY, {})
    )
    view.recolour(column)
    drawn = view.source.data["image"][0]
    pixels = drawn[drawn != 0].view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float64)
    palette = np.array([_rgb(c) for c in category_palette(3)])
    # Where one class alone falls on a pixel its colour is drawn; blends lie between them.
    nearest = np.linalg.norm(pixels[:, None, :] - palette[None], axis=2).min(axis=0)
    assert (nearest < 1).all()
